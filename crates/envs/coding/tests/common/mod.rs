//! Shared helpers for the engine tests (real Python, real processes).
// Test helpers: a failed unwrap here is a test failure, as in the tests themselves.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use coding_env::{PythonRuntime, PythonSession, SessionConfig};

/// The interpreter for tests: `$CODING_ENV_PYTHON`, else (as root, where the sandbox drops
/// to uid 65534 and cannot enter /root) the system python, else `python3`.
pub(crate) fn python() -> PythonRuntime {
    let candidate = std::env::var("CODING_ENV_PYTHON").unwrap_or_else(|_| {
        if rustix::process::geteuid().is_root() && Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3".into()
        } else {
            "python3".into()
        }
    });
    PythonRuntime::probe(Path::new(&candidate)).expect("python")
}

pub(crate) fn config_with(f: impl FnOnce(&mut SessionConfig)) -> Arc<SessionConfig> {
    let mut c = SessionConfig::new(PathBuf::from(env!("CARGO_BIN_EXE_coding-env")), python());
    c.scratch_root = std::env::temp_dir().join(format!("coding-env-test-{}", std::process::id()));
    c.limits.address_space_bytes = 1 << 30;
    c.allow_without_landlock = std::env::var_os("CODING_ENV_ALLOW_NO_LANDLOCK").is_some();
    f(&mut c);
    Arc::new(c)
}

pub(crate) fn config() -> Arc<SessionConfig> {
    config_with(|_| {})
}

pub(crate) fn session() -> PythonSession {
    PythonSession::start(config()).expect("session starts")
}

/// A second session stepping concurrently while a test runs something hostile: each of its
/// steps must give the right answer quickly. Returns how many steps it completed.
pub(crate) struct Bystander {
    stop: Arc<AtomicBool>,
    progress: Arc<AtomicU64>,
    handle: Option<std::thread::JoinHandle<(u64, Duration)>>,
}

impl Bystander {
    pub(crate) fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let progress = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&progress);
        let handle = std::thread::spawn(move || {
            let mut s = session();
            s.step("n = 0", None).unwrap();
            let mut n = 0u64;
            let mut worst = Duration::ZERO;
            while !flag.load(Ordering::Relaxed) {
                let t = Instant::now();
                let out = s.step("n += 1\nn", Some(Duration::from_secs(20))).unwrap();
                worst = worst.max(t.elapsed());
                n += 1;
                counter.store(n, Ordering::Relaxed);
                assert_eq!(out.exit_code, 0, "bystander failed: {out:?}");
                assert_eq!(out.stdout, n.to_string(), "bystander lost state: {out:?}");
                std::thread::sleep(Duration::from_millis(20));
            }
            (n, worst)
        });
        Self {
            stop,
            progress,
            handle: Some(handle),
        }
    }

    /// Stop, and check the bystander kept working.
    pub(crate) fn finish(mut self) {
        let t = Instant::now();
        while self.progress.load(Ordering::Relaxed) < 3 && t.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop.store(true, Ordering::Relaxed);
        let (n, worst) = self
            .handle
            .take()
            .unwrap()
            .join()
            .expect("bystander panicked");
        assert!(n >= 1, "bystander made no progress");
        assert!(
            worst < Duration::from_secs(10),
            "bystander step took {worst:?}"
        );
        eprintln!("bystander: {n} steps, slowest {worst:?}");
    }
}

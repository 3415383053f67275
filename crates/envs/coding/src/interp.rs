//! One sandboxed Python process and the framed channel to its driver.

use std::io::{self, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Resource, Rlimit, Signal};
use serde::Deserialize;

use crate::config::SessionConfig;
use crate::error::EngineError;
use crate::sandbox::{REPORT_PREFIX, SandboxReport, SandboxSpec};

/// The driver, run with `python -c`.
const DRIVER: &str = include_str!("driver.py");

/// How long an interpreter may take to start (import the driver, report ready).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// How often the process budget (`RLIMIT_NPROC`) is recomputed, at most.
const NPROC_REFRESH: Duration = Duration::from_millis(250);

/// One census of the uid's tasks shared by all sessions of the worker, at most this old, so
/// many concurrent steps do not each scan `/proc`.
static CENSUS: Mutex<Option<(Instant, u32, Arc<crate::sandbox::Census>)>> = Mutex::new(None);

fn recent_census(uid: u32, max_age: Duration) -> Arc<crate::sandbox::Census> {
    let mut cached = lock(&CENSUS);
    if let Some((at, for_uid, census)) = cached.as_ref() {
        if *for_uid == uid && at.elapsed() < max_age {
            return Arc::clone(census);
        }
    }
    let census = Arc::new(crate::sandbox::census(uid));
    *cached = Some((Instant::now(), uid, Arc::clone(&census)));
    census
}

/// Bytes of the sandbox's own stderr kept for error messages.
const DIAG_KEEP: usize = 8 * 1024;

/// What the driver does with requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Run code in a persistent namespace.
    Exec,
    /// Only report whether code parses.
    Check,
}

/// Metadata part of a driver reply. Unknown fields are ignored: the driver runs next to
/// untrusted code, so nothing in a reply is trusted beyond its shape and size.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Meta {
    #[serde(default)]
    pub(crate) exit_code: i64,
    #[serde(default)]
    pub(crate) stdout_total: u64,
    #[serde(default)]
    pub(crate) stderr_total: u64,
    #[serde(default)]
    pub(crate) parses: bool,
}

/// A decoded reply.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) meta: Meta,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
}

/// Why a request got no reply.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The wall-clock limit passed; the process group has been killed.
    TimedOut,
    /// The interpreter died or broke the protocol; the text says how.
    Died(String),
}

/// A running sandboxed interpreter. Dropping it kills its whole process group.
pub(crate) struct Interpreter {
    child: Child,
    stdin: Option<ChildStdin>,
    replies: mpsc::Receiver<io::Result<Reply>>,
    diag: Arc<Mutex<Diag>>,
    killed: bool,
    /// The uid the code runs as, whose tasks `RLIMIT_NPROC` counts.
    uid: u32,
    /// Tasks the session may have (see [`crate::Limits::max_processes`]).
    max_processes: u64,
    /// When the budget was last refreshed.
    nproc_refreshed: Option<Instant>,
}

#[derive(Default)]
struct Diag {
    report: Option<SandboxReport>,
    tail: Vec<u8>,
}

impl Interpreter {
    /// Start `coding-env sandbox-exec` for `scratch` and wait until the driver is ready.
    pub(crate) fn spawn(
        config: &SessionConfig,
        scratch: &Path,
        mode: Mode,
    ) -> Result<Self, EngineError> {
        let mode_arg = match mode {
            Mode::Exec => "exec",
            Mode::Check => "check",
        };
        let mut read_paths = config.python.read_dirs.clone();
        read_paths.extend(config.extra_read_dirs.iter().cloned());
        let worker_pid = rustix::process::getpid();
        let mut protected_pids = vec![worker_pid.as_raw_pid(), 1];
        let mut protected_groups = vec![rustix::process::getpgrp().as_raw_pid()];
        if let Some(server) = rustix::process::getppid() {
            protected_pids.push(server.as_raw_pid());
            if let Ok(group) = rustix::process::getpgid(Some(server)) {
                protected_groups.push(group.as_raw_pid());
            }
        }
        let spec = SandboxSpec {
            program: config.python.executable.clone(),
            args: vec![
                "-I".into(),
                "-u".into(),
                "-X".into(),
                "utf8".into(),
                "-c".into(),
                DRIVER.into(),
                mode_arg.into(),
                config.max_output_bytes.to_string(),
            ],
            scratch: scratch.to_path_buf(),
            read_paths,
            limits: config.limits,
            run_as_if_root: config.root_fallback_ids,
            protected_pids,
            protected_groups,
            allow_without_landlock: config.allow_without_landlock,
            lifeline: Some(config.launcher.clone()),
        };
        let spec_json = serde_json::to_string(&spec).map_err(|e| EngineError::Spawn {
            detail: e.to_string(),
        })?;
        let mut child = Command::new(&config.launcher)
            .arg(crate::SANDBOX_EXEC_SUBCOMMAND)
            .arg(spec_json)
            .env_clear()
            .current_dir(scratch)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| EngineError::Spawn {
                detail: format!("{}: {e}", config.launcher.display()),
            })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(EngineError::Spawn {
                detail: "child pipes missing".into(),
            });
        };
        let max_part = config.max_output_bytes.saturating_add(64 * 1024);
        let (tx, replies) = mpsc::channel();
        std::thread::Builder::new()
            .name("coding-env-reply".into())
            .spawn(move || read_replies(stdout, max_part, &tx))
            .map_err(|e| EngineError::Spawn {
                detail: format!("reader thread: {e}"),
            })?;
        let diag = Arc::new(Mutex::new(Diag::default()));
        let diag_writer = Arc::clone(&diag);
        std::thread::Builder::new()
            .name("coding-env-diag".into())
            .spawn(move || read_diag(stderr, &diag_writer))
            .map_err(|e| EngineError::Spawn {
                detail: format!("diag thread: {e}"),
            })?;
        let mut interp = Self {
            child,
            stdin: Some(stdin),
            replies,
            diag,
            killed: false,
            uid: if rustix::process::geteuid().is_root() {
                config.root_fallback_ids.0
            } else {
                rustix::process::geteuid().as_raw()
            },
            max_processes: config.limits.max_processes,
            nproc_refreshed: None,
        };
        match interp.wait_reply(Instant::now() + STARTUP_TIMEOUT, false) {
            Ok(_) => Ok(interp),
            Err(failure) => {
                interp.kill();
                let detail = match failure {
                    Failure::TimedOut => "timed out waiting for the driver".to_string(),
                    Failure::Died(why) => why,
                };
                Err(EngineError::Spawn { detail })
            }
        }
    }

    /// Send `code` and wait for the reply for at most `timeout`. On any failure the
    /// process group is killed, so the caller only has to drop this interpreter.
    pub(crate) fn request(&mut self, code: &[u8], timeout: Duration) -> Result<Reply, Failure> {
        // Re-base the process budget on a fresh count *before* the code runs (others may
        // have grown since our last step); `wait_reply` keeps it current while it runs.
        self.refresh_nproc(Duration::ZERO);
        let sent = match self.stdin.as_mut() {
            Some(stdin) => write_request(stdin, code),
            None => Err(io::Error::other("channel closed")),
        };
        if let Err(e) = sent {
            self.kill();
            return Err(Failure::Died(
                self.death_note(&format!("request not delivered: {e}")),
            ));
        }
        let result = self.wait_reply(Instant::now() + timeout, true);
        if result.is_err() {
            self.kill();
        }
        result
    }

    /// Re-base the interpreter's `RLIMIT_NPROC` on the uid's current task count (see
    /// [`crate::sandbox`]); throttled, best effort.
    fn refresh_nproc(&mut self, max_age: Duration) {
        if self
            .nproc_refreshed
            .is_some_and(|at| at.elapsed() < max_age)
        {
            return;
        }
        self.nproc_refreshed = Some(Instant::now());
        let Some(pid) = i32::try_from(self.child.id()).ok().and_then(Pid::from_raw) else {
            return;
        };
        let census = recent_census(self.uid, max_age);
        let limit = census.limit_for(pid.as_raw_pid(), self.max_processes);
        // The interpreter inherited our hard limit and cannot change its limits itself.
        let hard = rustix::process::getrlimit(Resource::Nproc).maximum;
        let new = Rlimit {
            current: Some(hard.map_or(limit, |hard| limit.min(hard))),
            maximum: hard,
        };
        match rustix::process::prlimit(Some(pid), Resource::Nproc, new) {
            Ok(_) => tracing::trace!(
                pid = pid.as_raw_pid(),
                limit,
                ?census,
                "RLIMIT_NPROC re-based"
            ),
            Err(e) => tracing::debug!(error = %e, "could not re-base RLIMIT_NPROC"),
        }
    }

    /// Wait for the next reply until `deadline`; while waiting, keep the process budget
    /// current if `rebase_nproc`.
    fn wait_reply(&mut self, deadline: Instant, rebase_nproc: bool) -> Result<Reply, Failure> {
        loop {
            if rebase_nproc {
                self.refresh_nproc(NPROC_REFRESH);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let slice = if rebase_nproc {
                left.min(NPROC_REFRESH)
            } else {
                left
            };
            match self.replies.recv_timeout(slice) {
                Ok(Ok(reply)) => return Ok(reply),
                Ok(Err(e)) => {
                    self.kill();
                    let why = if e.kind() == io::ErrorKind::UnexpectedEof {
                        "the process exited".to_string()
                    } else {
                        e.to_string()
                    };
                    return Err(Failure::Died(self.death_note(&why)));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.kill();
                    return Err(Failure::Died(self.death_note("channel closed")));
                }
                Err(RecvTimeoutError::Timeout) if Instant::now() >= deadline => {
                    self.kill();
                    return Err(Failure::TimedOut);
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// Explain a death: exit status and the tail of the sandbox's stderr.
    fn death_note(&mut self, why: &str) -> String {
        let status = match self.child.try_wait() {
            Ok(Some(status)) => status.to_string(),
            _ => "still running".to_string(),
        };
        let tail = lock(&self.diag).tail.clone();
        let tail = String::from_utf8_lossy(&tail);
        let tail = tail.trim();
        if tail.is_empty() {
            format!("{why} ({status})")
        } else {
            format!("{why} ({status}): {tail}")
        }
    }

    /// What the sandbox reported it enforced (arrives just after start).
    pub(crate) fn report(&self) -> Option<SandboxReport> {
        lock(&self.diag).report.clone()
    }

    /// Kill the whole process group (the interpreter and everything it started; they cannot
    /// leave the group because seccomp forbids `setsid`/`setpgid`), then reap.
    pub(crate) fn kill(&mut self) {
        if self.killed {
            return;
        }
        self.killed = true;
        self.stdin = None;
        // The child's pid is also its process group id (`setsid` in sandbox-exec). It is
        // not reaped yet, so the id cannot have been reused.
        let raw = i32::try_from(self.child.id()).ok();
        if let Some(pid) = raw.and_then(Pid::from_raw) {
            let _ = rustix::process::kill_process_group(pid, Signal::KILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Interpreter {
    fn drop(&mut self) {
        self.kill();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write_request(stdin: &mut ChildStdin, code: &[u8]) -> io::Result<()> {
    let len = u32::try_from(code.len()).map_err(|_| io::Error::other("request too large"))?;
    let mut frame = Vec::with_capacity(code.len() + 4);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(code);
    stdin.write_all(&frame)?;
    stdin.flush()
}

fn read_part(r: &mut impl Read, max: usize) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(io::Error::other(format!(
            "driver sent a {len}-byte part, more than {max}"
        )));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)?;
    Ok(buf)
}

fn read_replies(mut r: impl Read, max_part: usize, tx: &mpsc::Sender<io::Result<Reply>>) {
    loop {
        let reply = (|| {
            let meta = read_part(&mut r, 64 * 1024)?;
            let meta: Meta = serde_json::from_slice(&meta)
                .map_err(|e| io::Error::other(format!("bad reply metadata: {e}")))?;
            let stdout = read_part(&mut r, max_part)?;
            let stderr = read_part(&mut r, max_part)?;
            Ok(Reply {
                meta,
                stdout,
                stderr,
            })
        })();
        let failed = reply.is_err();
        if tx.send(reply).is_err() || failed {
            return;
        }
    }
}

fn read_diag(r: impl Read, diag: &Mutex<Diag>) {
    use std::io::BufRead;
    let mut r = io::BufReader::new(r);
    let mut line = Vec::new();
    loop {
        line.clear();
        // Bounded: a line longer than DIAG_KEEP is read in pieces.
        match (&mut r).take(DIAG_KEEP as u64).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut d = lock(diag);
        if let Some(json) = line.strip_prefix(REPORT_PREFIX.as_bytes()) {
            if let Ok(report) = serde_json::from_slice::<SandboxReport>(json) {
                tracing::debug!(?report, "sandbox applied");
                d.report = Some(report);
                continue;
            }
        }
        d.tail.extend_from_slice(&line);
        if d.tail.len() > DIAG_KEEP {
            let cut = d.tail.len() - DIAG_KEEP;
            d.tail.drain(..cut);
        }
    }
}

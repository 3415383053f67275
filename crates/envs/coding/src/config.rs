//! Configuration: which Python, which limits, where scratch directories live.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::EngineError;

/// Per-interpreter resource limits, applied with `setrlimit` just before Python is executed.
///
/// rlimits are per process (NPROC is per uid, see [`Limits::max_processes`]), so each
/// session's interpreter gets its own budget and a runaway session cannot use more than this
/// however it behaves. A `None`-like "unlimited" is deliberately not offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// `RLIMIT_CPU` in seconds, for the interpreter's whole life (so it is a per-session CPU
    /// budget; a step is killed earlier by the wall-clock timeout). When it is exceeded the
    /// kernel kills the interpreter and the next step starts a fresh one.
    pub cpu_seconds: u64,
    /// `RLIMIT_AS` in bytes: a memory bomb gets `MemoryError` instead of exhausting the host.
    pub address_space_bytes: u64,
    /// How many *additional* tasks (processes and threads) the sandboxed code may create.
    /// `RLIMIT_NPROC` counts every task of the uid, including the server and other sessions,
    /// so the engine sets the soft limit to "tasks of the uid outside this session + this"
    /// when the interpreter starts and again before each step (the code cannot change its
    /// rlimits: seccomp). This bounds a fork bomb without breaking when many sessions run
    /// at once.
    pub max_processes: u64,
    /// `RLIMIT_FSIZE` in bytes: the largest file the code can write (also bounds the
    /// in-memory capture of a step's output, which lives in a memfd).
    pub max_file_size_bytes: u64,
    /// `RLIMIT_NOFILE`: open file descriptors.
    pub max_open_files: u64,
    /// Nice value (0..=19) for the sandboxed code, so busy sessions yield to the server.
    pub nice: i32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            cpu_seconds: 600,
            address_space_bytes: 2 << 30,
            max_processes: 64,
            max_file_size_bytes: 64 << 20,
            max_open_files: 256,
            nice: 10,
        }
    }
}

/// A Python installation the sandbox can execute and must be allowed to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PythonRuntime {
    /// The real interpreter binary (not a wrapper script such as a pyenv shim, because the
    /// sandbox scrubs the environment such shims need).
    pub executable: PathBuf,
    /// Directories the interpreter reads its standard library and packages from
    /// (`sys.prefix`, `sys.base_prefix`, `sys.exec_prefix`, ...); landlock grants read access
    /// to them.
    pub read_dirs: Vec<PathBuf>,
}

impl PythonRuntime {
    /// Find the interpreter: `$CODING_ENV_PYTHON` if set, else `python3` on `PATH`.
    ///
    /// The candidate is asked for its real `sys.executable` and prefixes, so a shim works
    /// for discovery while the sandbox executes the real binary.
    pub fn discover() -> Result<Self, EngineError> {
        let candidate = std::env::var_os("CODING_ENV_PYTHON").unwrap_or_else(|| "python3".into());
        Self::probe(Path::new(&candidate))
    }

    /// Ask `python` for its real executable and prefixes.
    pub fn probe(python: &Path) -> Result<Self, EngineError> {
        let script = "import sys, json; print(json.dumps([sys.executable, sorted({sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix})]))";
        let out = Command::new(python)
            .args(["-I", "-c", script])
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| EngineError::NoPython(format!("{}: {e}", python.display())))?;
        if !out.status.success() {
            return Err(EngineError::NoPython(format!(
                "{} exited with {}: {}",
                python.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let (executable, prefixes): (PathBuf, Vec<PathBuf>) =
            serde_json::from_slice(&out.stdout)
                .map_err(|e| EngineError::NoPython(format!("unexpected probe output: {e}")))?;
        let executable = executable
            .canonicalize()
            .map_err(|e| EngineError::NoPython(format!("{}: {e}", executable.display())))?;
        let mut read_dirs: Vec<PathBuf> = prefixes
            .into_iter()
            .filter_map(|p| p.canonicalize().ok())
            .collect();
        if let Some(dir) = executable.parent() {
            read_dirs.push(dir.to_path_buf());
        }
        read_dirs.sort();
        read_dirs.dedup();
        Ok(Self {
            executable,
            read_dirs,
        })
    }
}

/// Everything a [`crate::PythonSession`] needs; shared by all sessions of a worker.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The `coding-env` binary, which is re-executed as `coding-env sandbox-exec` to apply
    /// the sandbox before `exec`ing Python (std's `pre_exec` would need `unsafe`).
    pub launcher: PathBuf,
    /// The interpreter to run.
    pub python: PythonRuntime,
    /// Parent of the per-session scratch directories. Created with mode 0711 so sessions
    /// cannot list each other's (randomly named) directories even without landlock.
    pub scratch_root: PathBuf,
    /// Default wall-clock limit of one step (the reference's 30 s).
    pub step_timeout: Duration,
    /// Bytes kept of each of stdout and stderr per step; the rest is replaced by a marker.
    pub max_output_bytes: usize,
    /// Largest accepted code, in bytes.
    pub max_code_bytes: usize,
    /// rlimits and nice value.
    pub limits: Limits,
    /// When the worker runs as root (only in development), the sandbox switches to this
    /// uid/gid, because root ignores `RLIMIT_NPROC`. Ignored when not root.
    pub root_fallback_ids: (u32, u32),
    /// Run code even where landlock cannot be enforced at all, with only the seccomp and
    /// rlimit protections (see the crate docs for what that loses). Off by default: the
    /// sandbox then refuses to start, so a misconfigured host fails loudly instead of
    /// quietly exposing the server's and other sessions' files.
    pub allow_without_landlock: bool,
    /// Extra directories the code may read (e.g. a dataset). Everything else outside the
    /// scratch directory and the system/Python directories is unreadable under landlock.
    pub extra_read_dirs: Vec<PathBuf>,
}

impl SessionConfig {
    /// A configuration with the documented defaults for the given launcher and Python.
    pub fn new(launcher: PathBuf, python: PythonRuntime) -> Self {
        Self {
            launcher,
            python,
            scratch_root: std::env::temp_dir().join(format!("coding-env-{}", std::process::id())),
            step_timeout: Duration::from_secs(30),
            max_output_bytes: 64 * 1024,
            max_code_bytes: 1024 * 1024,
            limits: Limits::default(),
            root_fallback_ids: (65534, 65534),
            allow_without_landlock: false,
            extra_read_dirs: Vec::new(),
        }
    }
}

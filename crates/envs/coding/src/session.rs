//! [`PythonSession`]: one OpenEnv session's interpreter, scratch directory and limits.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::config::SessionConfig;
use crate::error::EngineError;
use crate::interp::{Failure, Interpreter, Mode, Reply};
use crate::sandbox::SandboxReport;

/// The result of one step, mapped like the reference coding env (see the crate docs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StepOutput {
    /// Captured output of the code (prints and subprocesses writing to fd 1), then
    /// `json.dumps`/`repr` of the last expression's value, joined by `"\n"`. Empty when the
    /// code raised. Invalid UTF-8 is replaced by U+FFFD.
    pub stdout: String,
    /// Captured `sys.stderr`/fd 2 output, then the traceback if the code raised, or an
    /// explanation if the interpreter timed out or died.
    pub stderr: String,
    /// 0 on success, 1 on an exception, timeout or crash, the code of `sys.exit(n)`.
    pub exit_code: i64,
    /// The wall-clock limit was hit and the interpreter was killed.
    pub timed_out: bool,
    /// `stdout` was cut to [`SessionConfig::max_output_bytes`] and a marker appended.
    pub stdout_truncated: bool,
    /// `stderr` was cut likewise.
    pub stderr_truncated: bool,
    /// The interpreter was killed or died during this step: variables, imports and
    /// background processes are gone; the next step gets a fresh interpreter (files in the
    /// scratch directory remain).
    pub state_lost: bool,
}

/// One OpenEnv session: a sandboxed CPython that keeps its namespace between steps, and a
/// private scratch directory (cwd, `HOME`, `TMPDIR`) removed when the session is dropped.
///
/// Sessions are independent processes, so any number can step concurrently from different
/// threads; each `PythonSession` itself is used by one thread at a time (`&mut self`).
pub struct PythonSession {
    config: Arc<SessionConfig>,
    scratch: Option<tempfile::TempDir>,
    interp: Option<Interpreter>,
    report: Option<SandboxReport>,
}

impl std::fmt::Debug for PythonSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PythonSession")
            .field(
                "scratch",
                &self.scratch.as_ref().map(tempfile::TempDir::path),
            )
            .field("running", &self.interp.is_some())
            .finish()
    }
}

/// Create the scratch root (mode 0711: traversable, not listable) and a fresh randomly
/// named 0700 directory in it, owned by the sandbox's uid.
pub(crate) fn make_scratch(config: &SessionConfig) -> Result<tempfile::TempDir, EngineError> {
    let root = &config.scratch_root;
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| EngineError::Scratch { path, source }
    };
    fs::create_dir_all(root).map_err(err(root))?;
    fs::set_permissions(root, fs::Permissions::from_mode(0o711)).map_err(err(root))?;
    let dir = tempfile::Builder::new()
        .prefix("s-")
        .rand_bytes(16)
        .permissions(fs::Permissions::from_mode(0o700))
        .tempdir_in(root)
        .map_err(err(root))?;
    if rustix::process::geteuid().is_root() {
        let (uid, gid) = config.root_fallback_ids;
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).map_err(err(dir.path()))?;
    }
    Ok(dir)
}

/// Remove a scratch directory even if the code made parts of it read-only.
pub(crate) fn remove_scratch(dir: tempfile::TempDir) {
    let path = dir.keep();
    if fs::remove_dir_all(&path).is_ok() {
        return;
    }
    make_writable(&path);
    if let Err(e) = fs::remove_dir_all(&path) {
        tracing::warn!(path = %path.display(), error = %e, "could not remove scratch directory");
    }
}

fn make_writable(path: &Path) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_dir() {
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o700));
        if let Ok(entries) = fs::read_dir(path) {
            for entry in entries.flatten() {
                make_writable(&entry.path());
            }
        }
    }
}

impl PythonSession {
    /// Create the scratch directory and start the interpreter, so the first step does not
    /// pay the start-up cost and a broken host fails at reset, not at step.
    pub fn start(config: Arc<SessionConfig>) -> Result<Self, EngineError> {
        let scratch = make_scratch(&config)?;
        let mut session = Self {
            config,
            scratch: Some(scratch),
            interp: None,
            report: None,
        };
        session.ensure_interpreter()?;
        Ok(session)
    }

    /// The session's private directory.
    pub fn scratch_dir(&self) -> Option<&Path> {
        self.scratch.as_ref().map(tempfile::TempDir::path)
    }

    /// What the sandbox enforced for the current (or last) interpreter, for logs and tests.
    pub fn isolation(&mut self) -> Option<SandboxReport> {
        if let Some(report) = self.interp.as_ref().and_then(Interpreter::report) {
            self.report = Some(report);
        }
        self.report.clone()
    }

    fn ensure_interpreter(&mut self) -> Result<&mut Interpreter, EngineError> {
        if self.interp.is_none() {
            let scratch: PathBuf =
                self.scratch_dir()
                    .map(Path::to_path_buf)
                    .ok_or_else(|| EngineError::Spawn {
                        detail: "session closed".into(),
                    })?;
            self.interp = Some(Interpreter::spawn(&self.config, &scratch, Mode::Exec)?);
        }
        self.interp.as_mut().ok_or_else(|| EngineError::Spawn {
            detail: "interpreter missing".into(),
        })
    }

    /// Run `code` in the session's namespace with a wall-clock limit (`None`: the
    /// configured default, 30 s). User-code failures are outputs, not errors; see
    /// [`StepOutput`]. Errors are only for oversized code or an interpreter that cannot
    /// be started.
    pub fn step(
        &mut self,
        code: &str,
        timeout: Option<Duration>,
    ) -> Result<StepOutput, EngineError> {
        if code.len() > self.config.max_code_bytes {
            return Err(EngineError::CodeTooLarge {
                len: code.len(),
                limit: self.config.max_code_bytes,
            });
        }
        let timeout = timeout.unwrap_or(self.config.step_timeout);
        let interp = self.ensure_interpreter()?;
        let result = interp.request(code.as_bytes(), timeout);
        if let Some(report) = interp.report() {
            self.report = Some(report);
        }
        let cap = self.config.max_output_bytes;
        match result {
            Ok(reply) => Ok(render(reply, cap)),
            Err(failure) => {
                self.interp = None;
                let timed_out = matches!(failure, Failure::TimedOut);
                let stderr = match failure {
                    Failure::TimedOut => format!(
                        "TimeoutError: code execution exceeded the time limit of {} seconds; \
                         the interpreter was killed and its state (variables, imports, \
                         background processes) is lost. The next step starts a fresh \
                         interpreter; files in the working directory remain.\n",
                        timeout.as_secs_f64()
                    ),
                    Failure::Died(why) => format!(
                        "InterpreterDied: the Python process ended during this step ({why}); \
                         its state is lost (a resource limit or os._exit may be the cause). \
                         The next step starts a fresh interpreter.\n"
                    ),
                };
                Ok(StepOutput {
                    stdout: String::new(),
                    stderr,
                    exit_code: 1,
                    timed_out,
                    stdout_truncated: false,
                    stderr_truncated: false,
                    state_lost: true,
                })
            }
        }
    }

    /// Kill the interpreter and remove the scratch directory now (also done on drop).
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(mut interp) = self.interp.take() {
            interp.kill();
        }
        if let Some(dir) = self.scratch.take() {
            remove_scratch(dir);
        }
    }
}

impl Drop for PythonSession {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Apply the output cap (again: the driver is not trusted) and the truncation marker.
fn cap_output(bytes: &[u8], total: u64, cap: usize) -> (String, bool) {
    let mut shown = &bytes[..bytes.len().min(cap)];
    let total = total.max(bytes.len() as u64);
    let truncated = total > shown.len() as u64;
    if truncated {
        // Do not show half a character where the cut fell inside one.
        if let Err(e) = std::str::from_utf8(shown) {
            if e.error_len().is_none() {
                shown = &shown[..e.valid_up_to()];
            }
        }
    }
    let mut text = String::from_utf8_lossy(shown).into_owned();
    if truncated {
        text.push_str(&format!(
            "\n[coding-env: output truncated: {total} bytes, first {} shown]\n",
            shown.len()
        ));
    }
    (text, truncated)
}

fn render(reply: Reply, cap: usize) -> StepOutput {
    let (stdout, stdout_truncated) = cap_output(&reply.stdout, reply.meta.stdout_total, cap);
    let (stderr, stderr_truncated) = cap_output(&reply.stderr, reply.meta.stderr_total, cap);
    StepOutput {
        stdout,
        stderr,
        exit_code: reply.meta.exit_code,
        timed_out: false,
        stdout_truncated,
        stderr_truncated,
        state_lost: false,
    }
}

/// Whether code parses, asked of a separate sandboxed interpreter that never runs code.
///
/// Rewards must not be computed inside the session's interpreter: earlier steps' code could
/// have replaced `compile`/`ast` there and so choose its own reward. One checker serves all
/// sessions of a worker (parsing is fast); it is restarted if it dies.
pub struct SyntaxChecker {
    config: Arc<SessionConfig>,
    inner: std::sync::Mutex<Option<(Interpreter, tempfile::TempDir)>>,
}

impl std::fmt::Debug for SyntaxChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyntaxChecker").finish_non_exhaustive()
    }
}

impl SyntaxChecker {
    /// A checker; its interpreter starts on first use.
    pub fn new(config: Arc<SessionConfig>) -> Self {
        Self {
            config,
            inner: std::sync::Mutex::new(None),
        }
    }

    /// `compile(code, ..., ast.PyCF_ONLY_AST)` succeeds, i.e. `ast.parse` would. Code that
    /// makes the parser raise something other than `SyntaxError` (NUL bytes: `ValueError`;
    /// absurd nesting: `RecursionError`/`MemoryError`) counts as not parsing, where the
    /// reference server would fail the request.
    pub fn parses(&self, code: &str) -> Result<bool, EngineError> {
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut last_error = String::new();
        for _ in 0..2 {
            if guard.is_none() {
                let dir = make_scratch(&self.config)?;
                let interp = Interpreter::spawn(&self.config, dir.path(), Mode::Check)?;
                *guard = Some((interp, dir));
            }
            if let Some((interp, _)) = guard.as_mut() {
                match interp.request(code.as_bytes(), Duration::from_secs(10)) {
                    Ok(reply) => return Ok(reply.meta.parses),
                    Err(Failure::TimedOut) => last_error = "timed out".into(),
                    Err(Failure::Died(why)) => last_error = why,
                }
            }
            if let Some((_, dir)) = guard.take() {
                remove_scratch(dir);
            }
        }
        Err(EngineError::Checker(last_error))
    }
}

impl Drop for SyntaxChecker {
    fn drop(&mut self) {
        let taken = self
            .inner
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some((mut interp, dir)) = taken {
            interp.kill();
            remove_scratch(dir);
        }
    }
}

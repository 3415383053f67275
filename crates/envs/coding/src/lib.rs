//! The coding environment's execution engine: real CPython under real OS isolation.
//!
//! The reference coding env (openenv-core 0.3.0, protocol notes §9) interprets Python in
//! process with smolagents' AST interpreter and forbids `os`, `open`, `subprocess` and
//! most imports. This engine runs the real interpreter and allows all of Python, because
//! isolation is the operating system's job here, not the language's.
//!
//! # Layout
//!
//! * [`PythonSession`] (`session`): one per OpenEnv session. Owns a sandboxed `python3`
//!   process that keeps one namespace between steps, and a private scratch directory.
//!   [`PythonSession::step`] returns a [`StepOutput`]. Reset = drop it and start another.
//! * [`SyntaxChecker`] (`session`): a separate sandboxed interpreter that only parses, for
//!   the reward (see [`reward`]).
//! * `interp`: the process and the framed channel to the driver script (`driver.py`,
//!   embedded with `include_str!` and run with `python -I -u -X utf8 -c`).
//! * [`sandbox`]: what `coding-env sandbox-exec` applies to itself before `exec`ing Python.
//! * [`config`]: [`SessionConfig`], [`Limits`], [`PythonRuntime`].
//!
//! # Output mapping (as the reference)
//!
//! `stdout` is `"\n".join` of the captured output (if non-empty) and `json.dumps(value)`
//! (falling back to `repr`) of the last statement's value when it is an expression or an
//! assignment (`a = ...`, `a += ...`, `a: T = ...`) and the value is not `None`:
//! `print('a')\nprint('b')\n42` gives `"a\nb\n\n42"`, `z = 1` gives `"1"`. If the code
//! raises, `stdout` is `""` (earlier prints are discarded, as the reference does), `stderr`
//! is whatever the code wrote to stderr followed by the traceback (user frames only), and
//! `exit_code` is 1. `sys.exit(n)` gives exit code `n` and keeps the session.
//!
//! # Channel and capture
//!
//! The driver moves its control pipe (the process's original stdin/stdout) to private
//! non-inheritable descriptors and points fds 0/1/2 at `/dev/null`. For each step it makes
//! two `memfd`s and `dup2`s them onto fds 1 and 2, so `print`, `sys.stderr`, C extensions
//! and subprocesses that inherit fd 1/2 are all captured, in order, without any pipe
//! that user code could corrupt. Output is bounded three ways: `RLIMIT_FSIZE` bounds the
//! memfd (writes beyond it fail with `EFBIG`), the driver sends at most
//! [`SessionConfig::max_output_bytes`] of each stream, and the Rust side enforces the cap
//! again and appends a truncation marker. Replies are length-prefixed parts (JSON metadata,
//! stdout bytes, stderr bytes), so output bytes never need to be valid UTF-8 or JSON;
//! invalid UTF-8 becomes U+FFFD. Nothing in a reply is trusted beyond its shape and size:
//! code can write to the control descriptor, but it can only forge its own observation.
//! Output written by background processes after a step ends is dropped.
//!
//! # Isolation
//!
//! `coding-env sandbox-exec SPEC` (the worker re-executes its own binary, because std's
//! `pre_exec` needs `unsafe`) applies, in order:
//!
//! 1. `setsid`: own session and process group, so a timeout kills the whole tree with one
//!    `killpg(SIGKILL)`; seccomp below forbids leaving the group. A small watcher
//!    (`coding-env lifeline`, double-forked so it is not the interpreter's child) joins the
//!    group and kills it when the session's request pipe hangs up, so nothing a session
//!    started outlives a crashed or killed worker.
//! 2. nice 10, and rlimits: CPU seconds, address space, processes, file size, open files,
//!    no core. `RLIMIT_NPROC` counts the whole uid's tasks, so its soft limit is set to
//!    "the uid's tasks outside this session + the session's budget" and re-based by the
//!    worker (`prlimit`) before each step and every 250 ms during it (a `/proc` scan,
//!    1-2 ms per step with 100 processes); the code cannot change rlimits (seccomp).
//! 3. If started as root (development only), switch to uid/gid 65534, because root ignores
//!    `RLIMIT_NPROC` and file permissions. The image runs unprivileged; root is never needed.
//! 4. `PR_SET_NO_NEW_PRIVS`.
//! 5. **Landlock** (best effort, ABI up to 6): read/execute only the system directories
//!    (`/usr`, `/lib*`, `/bin`, `/nix/store`, a few `/etc` files), the Python prefix and
//!    configured extra directories; read/write only the scratch directory and
//!    `/dev/{null,zero,full}`; no TCP bind/connect; signals and abstract unix sockets
//!    scoped to the sandbox. So the server's files, `/proc` (and with it other processes'
//!    environment and memory) and other sessions' scratch directories are unreadable, and
//!    `os.kill(os.getppid(), 9)` or `os.killpg(...)` fail with `EPERM`.
//! 6. **seccomp** (seccompiler, allow-by-default with a deny list): `socket()` for any
//!    family but `AF_UNIX`, io_uring, `ptrace`/`process_vm_*`/`pidfd_getfd`,
//!    `setsid`/`setpgid`, namespaces and mounts (including `clone` namespace flags;
//!    `clone3` gets `ENOSYS` so libc falls back to `clone`), BPF, perf, userfaultfd,
//!    keyrings, changing rlimits, and signals to `-1`, the worker, the server, init and
//!    their groups.
//! 7. `exec` Python with a scrubbed environment (`HOME`/`TMPDIR`/`PWD` = scratch, a fixed
//!    `PATH`, `LANG=C.UTF-8`) in the scratch directory.
//!
//! Why this combination: inside an unprivileged Docker container with Docker's default
//! seccomp profile, namespaces (`unshare`, user namespaces) are unavailable, so bubblewrap-
//! or nsjail-style isolation is out; seccomp filters under `no_new_privs` always work, and
//! landlock works when both the kernel and the container's seccomp profile allow its three
//! syscalls. Seccomp alone enforces "no network" everywhere. `coding-env probe` prints what
//! a host or container actually enforces.
//!
//! **Fallback without landlock** (old kernel, or a seccomp profile that rejects the landlock
//! syscalls): network, process-group, ptrace and rlimit protections still hold, and code
//! cannot write outside its scratch directory *only* as far as Unix permissions say (the
//! image's files are root-owned; `/tmp` is not). What still protects other sessions then:
//! the scratch root is mode 0711 (not listable) with 128-bit random directory names, the
//! worker and the drivers mark themselves non-dumpable (their `/proc/<pid>/{environ,mem,cwd}`
//! become unreadable to the same uid), the sandbox environment is scrubbed, and seccomp
//! blocks `ptrace`. What does *not* hold: a session that learns another's directory name
//! (e.g. from a dumpable subprocess's `/proc/<pid>/cwd`) can read and write it, and it can
//! signal other sessions' interpreters. Because of that, the sandbox **refuses to start**
//! when landlock cannot be enforced at all, unless the operator opts into this fallback
//! ([`SessionConfig::allow_without_landlock`], `CODING_ENV_ALLOW_NO_LANDLOCK=1`).
//! `coding-env probe` shows what a host enforces; [`SandboxReport`] is logged (debug) for
//! every interpreter.
//!
//! # Time limits and lost state
//!
//! Every step has a wall-clock limit (default 30 s, [`SessionConfig::step_timeout`], or
//! shorter per step). When it passes, the worker kills the interpreter's whole process
//! group and the step returns `exit_code` 1, `timed_out`, `state_lost` and an explanation
//! in `stderr`. **The session's variables, imports and background processes are lost**;
//! the next step starts a fresh interpreter in the same scratch directory (files remain).
//! The same happens when the interpreter dies (CPU rlimit, `os._exit`, a crash). Unlike
//! the reference, which only reports its 30 s timeout after the code finishes, the kill is
//! immediate, also for code stuck in C.
//!
//! # Probed on the development host (kernel 6.18, 2026-12-03)
//!
//! * Host, worker as root: landlock ABI 7, fully enforced; seccomp installed; the
//!   sandbox runs as uid 65534. All tests in `tests/` pass (see their docs).
//! * Docker 20.10 with its default seccomp profile, a `FROM scratch` image with the static
//!   binary and Debian's Python 3.11, `USER 65532`: `coding-env probe` reports landlock
//!   ABI 7 fully enforced, seccomp installed, INET sockets, reading `/`, writing `/tmp` and
//!   signalling the parent all denied. The same with `--read-only --cap-drop ALL
//!   --security-opt no-new-privileges`. The worker protocol works end to end there, with
//!   Python 3.11 and with Python 3.13.
//! * Docker with a seccomp profile that denies the landlock syscalls: landlock not
//!   enforced; the sandbox refuses to start unless `CODING_ENV_ALLOW_NO_LANDLOCK=1`, and
//!   with it network and signals to the worker stay blocked (seccomp) while `/` is
//!   readable (the documented fallback).
//!
//! # Not contained
//!
//! * CPU share between sessions is only nice 10 + `RLIMIT_CPU` (no cgroups without
//!   privileges): N busy sessions share the cores like N processes.
//! * Memory is bounded per process (`RLIMIT_AS`) times the process budget, not per session;
//!   the per-step output memfds live in RAM outside `RLIMIT_AS` (up to `RLIMIT_FSIZE` each).
//! * The process budget is relative to a census; between re-basings, other sessions'
//!   growth eats into it (a spawn may fail early), and leftover zombies count until reaped.
//! * With landlock ABI < 6 (kernel < 6.12) signals and abstract unix sockets are not
//!   scoped: sessions can signal each other's processes (not the worker: seccomp).
//! * `/dev/shm` and `/proc` are not available (so `multiprocessing` locks and `psutil`
//!   fail); UDP is stopped by seccomp only (landlock ABI 6 has no UDP rules).
//! * Code can write to its driver's control descriptor and so forge its own observation,
//!   but never its reward (computed outside the interpreter) or another session's.
//!
//! # Rewards
//!
//! See [`reward`]: exactly the reference's safety and quality transforms.

pub mod config;
pub mod error;
mod interp;
pub mod reward;
pub mod sandbox;
mod session;

pub use config::{Limits, PythonRuntime, SessionConfig};
pub use error::EngineError;
pub use sandbox::{ProbeReport, SandboxReport};
pub use session::{PythonSession, StepOutput, SyntaxChecker};

/// Name of the hidden subcommand that applies the sandbox and `exec`s Python. The binary
/// must dispatch it (see `main.rs`) before doing anything else.
pub const SANDBOX_EXEC_SUBCOMMAND: &str = "sandbox-exec";

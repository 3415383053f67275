//! `coding-env`: the coding environment worker binary.
//!
//! Subcommands:
//! * `sandbox-exec SPEC` (hidden): apply the sandbox to this process and `exec` Python.
//!   Sessions start it; it must be dispatched before anything else runs (it stays
//!   single-threaded so the per-thread credential calls affect the whole process).
//! * `lifeline [--watch]` (hidden): started by `sandbox-exec`; kills the session's process
//!   group when the session's request pipe hangs up.
//! * `probe`: apply the sandbox to itself and print, as JSON, what this host or container
//!   actually enforces (needs no Python).
//! * no subcommand: serve the environment over the worker protocol (`envtorch_sdk::serve`).
//!
//! The environment (as the reference `coding_env`, §9 of the protocol notes):
//! action `{code: str}` (unknown fields rejected), observation `{stdout, stderr, exit_code}`,
//! state `{episode_id, step_count, last_exit_code}`, rewards from [`coding_env::reward`],
//! `done` always false. Unlike the reference, several sessions may run at once (each has its
//! own interpreter process), and a step's `timeout_s` can shorten the step time limit.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use coding_env::{PythonRuntime, PythonSession, SessionConfig, SyntaxChecker, reward};
use envtorch_sdk::{
    Concurrency, EnvError, Environment, Manifest, Observation, ResetRequest, StepContext,
    ValidationIssue,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Parser)]
#[command(name = "coding-env", about = "envtorch coding environment worker")]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    #[command(flatten)]
    settings: Settings,
}

/// Operator settings; the server passes its environment to the worker, so each can be set
/// with the variable named beside it.
#[derive(clap::Args, Debug)]
struct Settings {
    /// Python interpreter (its real path is resolved at start).
    #[arg(long, env = "CODING_ENV_PYTHON", default_value = "python3")]
    python: PathBuf,
    /// Default wall-clock limit of one step, in seconds.
    #[arg(long, env = "CODING_ENV_STEP_TIMEOUT_SECS", default_value_t = 30.0)]
    step_timeout_secs: f64,
    /// Bytes kept of each of stdout and stderr per step.
    #[arg(long, env = "CODING_ENV_MAX_OUTPUT_BYTES", default_value_t = 64 * 1024)]
    max_output_bytes: usize,
    /// Largest accepted code, in bytes.
    #[arg(long, env = "CODING_ENV_MAX_CODE_BYTES", default_value_t = 1024 * 1024)]
    max_code_bytes: usize,
    /// CPU seconds per interpreter (RLIMIT_CPU).
    #[arg(long, env = "CODING_ENV_CPU_SECONDS", default_value_t = 600)]
    cpu_seconds: u64,
    /// Address space per process in bytes (RLIMIT_AS).
    #[arg(long, env = "CODING_ENV_MEMORY_BYTES", default_value_t = 2 << 30)]
    memory_bytes: u64,
    /// Extra processes/threads a session may create.
    #[arg(long, env = "CODING_ENV_MAX_PROCESSES", default_value_t = 64)]
    max_processes: u64,
    /// Largest file a session may write, in bytes (RLIMIT_FSIZE).
    #[arg(long, env = "CODING_ENV_MAX_FILE_BYTES", default_value_t = 64 << 20)]
    max_file_bytes: u64,
    /// Run code even where landlock is unavailable (seccomp-only fallback: other sessions'
    /// and the server's files are then protected only by Unix permissions).
    #[arg(long, env = "CODING_ENV_ALLOW_NO_LANDLOCK", value_parser = clap::builder::FalseyValueParser::new())]
    allow_no_landlock: bool,
    /// Where session scratch directories are created (default: a directory in $TMPDIR).
    #[arg(long, env = "CODING_ENV_SCRATCH_ROOT")]
    scratch_root: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Apply the sandbox described by SPEC (JSON) and exec the interpreter.
    #[command(name = "sandbox-exec", hide = true)]
    SandboxExec {
        /// The sandbox spec, as JSON.
        spec: String,
    },
    /// Kill the process group when stdin hangs up (started by sandbox-exec).
    #[command(name = "lifeline", hide = true)]
    Lifeline {
        /// Be the watcher (otherwise: start it and exit).
        #[arg(long)]
        watch: bool,
    },
    /// Print what the sandbox enforces here (landlock, seccomp, network, files, signals).
    Probe {
        /// Internal: be the sandboxed child (the probe runs in a child process, as sessions
        /// do, so it is not a process-group leader or PID 1).
        #[arg(long, hide = true)]
        child: bool,
    },
}

fn main() -> ExitCode {
    // Dispatch sandbox-exec first, before any logging setup or threads.
    let cli = Cli::parse();
    match cli.command {
        Some(Cmd::SandboxExec { spec }) => match coding_env::sandbox::sandbox_exec(&spec) {
            Ok(never) => match never {},
            Err(e) => {
                eprintln!("coding-env sandbox-exec: {e}");
                ExitCode::from(126)
            }
        },
        Some(Cmd::Lifeline { watch }) => match coding_env::sandbox::lifeline(watch) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("coding-env lifeline: {e}");
                ExitCode::FAILURE
            }
        },
        Some(Cmd::Probe { child: true }) => probe(),
        Some(Cmd::Probe { child: false }) => probe_parent(),
        None => serve(&cli.settings),
    }
}

/// The action: Python source to run in the session's interpreter.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CodeAction {
    /// Python code to execute
    code: String,
}

/// What the agent sees after a step.
#[derive(Debug, Serialize, JsonSchema)]
struct CodeObservation {
    /// Standard output from code execution
    stdout: String,
    /// Standard error from code execution
    stderr: String,
    /// Exit code from code execution
    exit_code: i64,
}

/// The session's state.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
struct CodeState {
    /// Unique identifier for the current episode
    episode_id: Option<String>,
    /// Number of steps taken in the current episode
    step_count: u64,
    /// Exit code from the last code execution
    last_exit_code: i64,
}

/// What every session of this worker shares: configuration and the syntax checker.
struct Shared {
    config: Arc<SessionConfig>,
    checker: SyntaxChecker,
}

/// One OpenEnv session: an interpreter (started at reset, or at the first step if the
/// client steps before resetting, as the reference allows) and its state.
struct CodingEnv {
    shared: Arc<Shared>,
    session: Option<PythonSession>,
    state: CodeState,
}

fn execution(e: impl std::fmt::Display) -> EnvError {
    EnvError::execution(e.to_string())
}

impl CodingEnv {
    fn session(&mut self) -> Result<&mut PythonSession, EnvError> {
        if self.session.is_none() {
            let session =
                PythonSession::start(Arc::clone(&self.shared.config)).map_err(execution)?;
            self.session = Some(session);
        }
        self.session
            .as_mut()
            .ok_or_else(|| EnvError::execution("no session"))
    }
}

impl Environment for CodingEnv {
    type Action = CodeAction;
    type Observation = CodeObservation;
    type State = CodeState;

    fn reset(&mut self, request: ResetRequest) -> Result<Observation<CodeObservation>, EnvError> {
        // A fresh interpreter and scratch directory: nothing survives a reset.
        if let Some(old) = self.session.take() {
            old.close();
        }
        self.session =
            Some(PythonSession::start(Arc::clone(&self.shared.config)).map_err(execution)?);
        self.state = CodeState {
            episode_id: request.episode_id_or_new(),
            step_count: 0,
            last_exit_code: 0,
        };
        let observation = CodeObservation {
            stdout: String::new(),
            stderr: String::new(),
            exit_code: 0,
        };
        Ok(Observation::new(observation).reward(reward::RESET_REWARD))
    }

    fn step(
        &mut self,
        action: CodeAction,
        ctx: &StepContext,
    ) -> Result<Observation<CodeObservation>, EnvError> {
        let code = action.code;
        let limit = self.shared.config.max_code_bytes;
        if code.len() > limit {
            return Err(EnvError::Validation(vec![
                ValidationIssue::new(
                    "string_too_long",
                    vec!["code".into()],
                    format!("String should have at most {limit} bytes"),
                    serde_json::Value::Null,
                )
                .with_url(),
            ]));
        }
        // `timeout_s` may shorten the configured limit, never extend it.
        let default = self.shared.config.step_timeout;
        let timeout = ctx
            .timeout_s
            .filter(|t| *t > 0.0)
            .and_then(|t| Duration::try_from_secs_f64(t).ok())
            .map_or(default, |t| t.min(default));
        let parses = self.shared.checker.parses(&code).map_err(execution)?;
        let out = self
            .session()?
            .step(&code, Some(timeout))
            .map_err(execution)?;
        self.state.step_count += 1;
        self.state.last_exit_code = out.exit_code;
        let observation = CodeObservation {
            stdout: out.stdout,
            stderr: out.stderr,
            exit_code: out.exit_code,
        };
        Ok(Observation::new(observation).reward(reward::step_reward(&code, parses)))
    }

    fn state(&self) -> CodeState {
        self.state.clone()
    }

    fn close(&mut self) {
        if let Some(session) = self.session.take() {
            session.close();
        }
    }
}

fn serve(settings: &Settings) -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    // Our /proc/<pid>/{environ,mem,...} become unreadable to same-uid processes (the
    // sandboxed code runs as our uid), in case landlock is unavailable.
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        tracing::warn!(error = %e, "could not mark the worker non-dumpable");
    }
    let config = match build_config(settings) {
        Ok(config) => Arc::new(config),
        Err(e) => {
            eprintln!("coding-env: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(python = %config.python.executable.display(), "coding env ready");
    let shared = Arc::new(Shared {
        checker: SyntaxChecker::new(Arc::clone(&config)),
        config,
    });
    // Start the checker now, so the first step does not pay for it and a host where the
    // sandboxed interpreter cannot start is reported at once.
    match shared.checker.parses("") {
        Ok(_) => tracing::info!("sandboxed interpreter works"),
        Err(e) => tracing::error!(error = %e, "sandboxed interpreter does not start"),
    }
    let manifest = Manifest::new("coding_env", "PythonCodeActEnv environment")
        .metadata_name("PythonCodeActEnv")
        .concurrency(Concurrency::ThreadPerSession)
        .action_schema(action_schema())
        .observation_schema(observation_schema())
        .state_schema(state_schema());
    envtorch_sdk::serve(manifest, move || {
        Ok(CodingEnv {
            shared: Arc::clone(&shared),
            session: None,
            state: CodeState::default(),
        })
    })
}

/// The reference's `CodeAction` schema, verbatim (protocol notes §3.6).
fn action_schema() -> serde_json::Value {
    serde_json::json!({"additionalProperties":false,"description":"Represents a single code execution request.","properties":{"metadata":{"additionalProperties":true,"description":"Additional metadata for the action","title":"Metadata","type":"object"},"code":{"title":"Code","type":"string"}},"required":["code"],"title":"CodeAction","type":"object"})
}

/// The reference's `CodeObservation` schema in pydantic's shape: the base observation
/// fields, then `stdout`/`stderr` (default "") and `exit_code` (default 0). The notes do not
/// quote it verbatim; the description is the reference model's docstring.
fn observation_schema() -> serde_json::Value {
    serde_json::json!({"additionalProperties":false,"description":"Result of executing code in the environment.","properties":{"done":{"default":false,"description":"Whether the episode has terminated","title":"Done","type":"boolean"},"reward":{"anyOf":[{"type":"boolean"},{"type":"integer"},{"type":"number"},{"type":"null"}],"default":null,"description":"Reward signal from the last action","title":"Reward"},"metadata":{"additionalProperties":true,"description":"Additional metadata for the observation","title":"Metadata","type":"object"},"stdout":{"default":"","title":"Stdout","type":"string"},"stderr":{"default":"","title":"Stderr","type":"string"},"exit_code":{"default":0,"title":"Exit Code","type":"integer"}},"title":"CodeObservation","type":"object"})
}

/// `/schema` shows the base `State` schema even for the coding env (notes §3.6), verbatim.
fn state_schema() -> serde_json::Value {
    serde_json::json!({"additionalProperties":true,"description":"Base class for environment state.\n\nRepresents internal environment state, separate from observations.","properties":{"episode_id":{"anyOf":[{"type":"string"},{"type":"null"}],"default":null,"description":"Unique identifier for the current episode","title":"Episode Id"},"step_count":{"default":0,"description":"Number of steps taken in the current episode","minimum":0,"title":"Step Count","type":"integer"}},"title":"State","type":"object"})
}

/// The interpreter to run code with. Started as root (development only), the sandbox drops to
/// an unprivileged uid, which cannot reach an interpreter under a private home such as
/// `/root/.pyenv`; then the system's `/usr/bin/python3` is used instead, if there is one.
fn python_runtime(settings: &Settings) -> Result<PythonRuntime, coding_env::EngineError> {
    let python = PythonRuntime::probe(&settings.python)?;
    let system = std::path::Path::new("/usr/bin/python3");
    if rustix::process::geteuid().is_root()
        && !reachable_by_others(&python.executable)
        && system.exists()
    {
        tracing::info!(
            unreachable = %python.executable.display(),
            "running as root: the sandbox's uid cannot execute this interpreter; using /usr/bin/python3"
        );
        return PythonRuntime::probe(system);
    }
    Ok(python)
}

/// Whether every directory above `path` is searchable, and `path` executable, by others.
fn reachable_by_others(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let executable = std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o001 != 0);
    executable
        && path
            .ancestors()
            .skip(1)
            .all(|dir| std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

fn build_config(settings: &Settings) -> Result<SessionConfig, coding_env::EngineError> {
    let python = python_runtime(settings)?;
    let launcher = std::env::current_exe().map_err(|e| coding_env::EngineError::Spawn {
        detail: format!("cannot find own executable: {e}"),
    })?;
    let mut config = SessionConfig::new(launcher, python);
    config.step_timeout =
        Duration::try_from_secs_f64(settings.step_timeout_secs).unwrap_or(config.step_timeout);
    config.max_output_bytes = settings.max_output_bytes;
    config.max_code_bytes = settings.max_code_bytes;
    config.limits.cpu_seconds = settings.cpu_seconds;
    config.limits.address_space_bytes = settings.memory_bytes;
    config.limits.max_processes = settings.max_processes;
    config.limits.max_file_size_bytes = settings.max_file_bytes;
    config.allow_without_landlock = settings.allow_no_landlock;
    if let Some(root) = &settings.scratch_root {
        config.scratch_root = root.clone();
    }
    Ok(config)
}

fn probe_parent() -> ExitCode {
    let status = std::env::current_exe().and_then(|exe| {
        std::process::Command::new(exe)
            .args(["probe", "--child"])
            .status()
    });
    match status {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("coding-env probe: child {status}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("coding-env probe: {e}");
            ExitCode::FAILURE
        }
    }
}

fn probe() -> ExitCode {
    let dir = match tempfile::Builder::new()
        .prefix("coding-env-probe-")
        .tempdir()
    {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("coding-env probe: scratch: {e}");
            return ExitCode::FAILURE;
        }
    };
    if rustix::process::geteuid().is_root() {
        let _ = std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534));
    }
    let result = coding_env::sandbox::probe(dir.path());
    match result.map(|r| serde_json::to_string_pretty(&r)) {
        Ok(Ok(json)) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("coding-env probe: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("coding-env probe: {e}");
            ExitCode::FAILURE
        }
    }
}

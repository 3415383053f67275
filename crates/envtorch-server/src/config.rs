//! Server configuration: command-line flags, each with the environment variable the
//! reference (or envtorch) reads for it.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// Which routes are served (`OPENENV_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Everything, including the stateless `POST /reset`, `POST /step`, `GET /state`.
    Simulation,
    /// No stateless simulation routes; `/ws` and `/mcp` still serve sessions.
    Production,
}

/// How sessions are placed on worker processes (`--isolation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IsolationArg {
    /// As the environment's manifest asks.
    Auto,
    /// Many sessions per worker, one worker per core.
    Shared,
    /// A worker process of its own for every session (and every stateless request).
    PerSession,
}

/// How to serve one environment.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// The environment binary to run as worker processes (required to serve; optional in
    /// the type so that `health` parses even where the serve variables are set).
    #[arg(long = "env", env = "ENVTORCH_ENV", value_name = "PATH")]
    pub env: Option<PathBuf>,

    /// Arguments passed to the environment binary.
    #[arg(long = "env-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub env_args: Vec<String>,

    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: String,

    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 8000)]
    pub port: u16,

    /// Most sessions at once (/ws, WS /mcp and MCP sessions together). Default: the
    /// environment's own default (echo: 8, like the reference).
    #[arg(long, env = "MAX_CONCURRENT_ENVS")]
    pub max_concurrent_envs: Option<usize>,

    /// Route set: simulation (default) or production.
    #[arg(
        long,
        env = "OPENENV_MODE",
        value_enum,
        ignore_case = true,
        default_value = "simulation"
    )]
    pub mode: Mode,

    /// Worker processes for environments that share workers. Default: one per core.
    #[arg(long, env = "ENVTORCH_WORKERS")]
    pub workers: Option<usize>,

    /// Session placement: `auto` (the environment's choice), `shared`, or `per-session`
    /// (one worker process per session, for environments whose sessions must not share a
    /// process).
    #[arg(long, env = "ENVTORCH_ISOLATION", value_enum, default_value = "auto")]
    pub isolation: IsolationArg,

    /// Seconds a worker may take to answer one request before it is considered hung,
    /// killed and restarted (its sessions fail). A step's own `timeout_s` may extend it.
    #[arg(long, env = "ENVTORCH_WORKER_TIMEOUT", default_value_t = 60.0)]
    pub worker_timeout: f64,

    /// Seconds a session may stay unused before it is closed; 0 keeps sessions until their
    /// client leaves (the reference's default).
    #[arg(long, env = "ENVTORCH_SESSION_IDLE_TIMEOUT", default_value_t = 0.0)]
    pub session_idle_timeout: f64,

    /// Seconds between WebSocket pings to clients (0 disables pings).
    #[arg(long, env = "ENVTORCH_WS_PING_INTERVAL", default_value_t = 20.0)]
    pub ws_ping_interval: f64,

    /// Seconds to wait for any frame after a ping before the connection is treated as dead
    /// (half-open) and its session freed.
    #[arg(long, env = "ENVTORCH_WS_PING_TIMEOUT", default_value_t = 20.0)]
    pub ws_ping_timeout: f64,

    /// Largest WebSocket message accepted, in bytes (the reference's uvicorn: 16 MiB).
    #[arg(long, env = "ENVTORCH_WS_MAX_MESSAGE", default_value_t = 16 * 1024 * 1024)]
    pub ws_max_message: usize,

    /// Seconds graceful shutdown may take before the process exits anyway.
    #[arg(long, env = "ENVTORCH_SHUTDOWN_TIMEOUT", default_value_t = 5.0)]
    pub shutdown_timeout: f64,
}

impl ServeConfig {
    /// A configuration with defaults for `env` (used by tests and embedders).
    pub fn for_env(env: impl Into<PathBuf>) -> Self {
        Self {
            env: Some(env.into()),
            env_args: Vec::new(),
            host: "127.0.0.1".into(),
            port: 0,
            max_concurrent_envs: None,
            mode: Mode::Simulation,
            workers: None,
            isolation: IsolationArg::Auto,
            worker_timeout: 60.0,
            session_idle_timeout: 0.0,
            ws_ping_interval: 20.0,
            ws_ping_timeout: 20.0,
            ws_max_message: 16 * 1024 * 1024,
            shutdown_timeout: 5.0,
        }
    }

    pub(crate) fn seconds(s: f64) -> Option<Duration> {
        (s.is_finite() && s > 0.0).then(|| Duration::from_secs_f64(s))
    }
}

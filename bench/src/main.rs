//! `envtorch-bench`: envtorch against the Python OpenEnv reference server, side by side.
//!
//! It starts both echo servers on 127.0.0.1 (the reference: `openenv-core` 0.3.0 under
//! uvicorn; envtorch: `envtorch-server --env echo-env`, release build), drives both with the
//! same load and the same action, interleaved (envtorch, reference, envtorch, …), and writes
//! a JSON result and a Markdown table. Every load loop is bounded in time and in count, and
//! every process it started is stopped before it exits. See `bench/README.md`.

mod diag;
mod held;
mod http;
mod load;
mod phases;
mod report;
mod server;
mod stats;
mod sys;
mod ws;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use server::Kind;

/// Benchmark envtorch against the Python reference (openenv-core 0.3.0) echo server.
#[derive(Debug, Clone, Parser)]
#[command(name = "envtorch-bench", version, about)]
pub(crate) struct Cli {
    /// A few seconds in all: every phase once, tiny windows, no targets asserted (for CI).
    #[arg(long)]
    pub(crate) smoke: bool,
    /// Where to write latest.json, latest.md and the server logs (default: bench/results,
    /// or target/bench-smoke with --smoke).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// The envtorch server binary.
    #[arg(long, default_value = "target/release/envtorch-server")]
    pub(crate) server_bin: PathBuf,
    /// The envtorch echo environment binary.
    #[arg(long, default_value = "target/release/echo-env")]
    pub(crate) echo_bin: PathBuf,
    /// The reference venv (openenv-core 0.3.0, made by scripts/setup-python.sh).
    #[arg(long, default_value = ".venv/openenv-core-0.3.0")]
    pub(crate) venv: PathBuf,
    /// The directory of the reference echo app (echo_app.py).
    #[arg(long, default_value = "tests/compat/reference")]
    pub(crate) app_dir: PathBuf,
    /// Which servers: both, envtorch, reference.
    #[arg(long, default_value = "both")]
    pub(crate) only: String,
    /// Phases to run (comma-separated): throughput, cold, held, diag.
    #[arg(
        long,
        default_value = "throughput,cold,held,diag",
        value_delimiter = ','
    )]
    pub(crate) phases: Vec<String>,
    /// Only these throughput scenarios (ids as in latest.json, e.g. ws_seq,http_step_1).
    #[arg(long, value_delimiter = ',')]
    pub(crate) scenarios: Option<Vec<String>>,
    /// Measured runs per scenario and server.
    #[arg(long)]
    pub(crate) runs: Option<usize>,
    /// Warm-up seconds before each measured window.
    #[arg(long)]
    pub(crate) warmup: Option<f64>,
    /// Seconds of each measured window.
    #[arg(long)]
    pub(crate) measure: Option<f64>,
    /// Most operations recorded per measured window.
    #[arg(long, default_value_t = 10_000_000)]
    pub(crate) max_ops: u64,
    /// Concurrent /ws sessions for the aggregate scenarios.
    #[arg(long, value_delimiter = ',')]
    pub(crate) ws_sessions: Option<Vec<usize>>,
    /// HTTP connections for POST /step and POST /reset.
    #[arg(long, value_delimiter = ',')]
    pub(crate) http_connections: Option<Vec<usize>>,
    /// Concurrent churn loops (open + reset + close).
    #[arg(long, value_delimiter = ',')]
    pub(crate) churn_loops: Option<Vec<usize>>,
    /// Cold starts per server.
    #[arg(long)]
    pub(crate) cold_starts: Option<usize>,
    /// Session counts of the held-sessions ramp.
    #[arg(long, value_delimiter = ',')]
    pub(crate) held_levels: Option<Vec<usize>>,
    /// Session counts at which the process-tree RSS is reported.
    #[arg(long, value_delimiter = ',')]
    pub(crate) memory_levels: Option<Vec<usize>>,
    /// Milliseconds between two steps of one held session.
    #[arg(long, default_value_t = 1000)]
    pub(crate) held_step_interval_ms: u64,
    /// The p99 step latency objective of the held-sessions ramp, in milliseconds.
    #[arg(long, default_value_t = 50)]
    pub(crate) held_slo_ms: u64,
    /// Seconds the held-sessions ramp may take per server.
    #[arg(long)]
    pub(crate) held_budget: Option<f64>,
    /// MAX_CONCURRENT_ENVS for both servers.
    #[arg(long, default_value_t = 20_000)]
    pub(crate) max_sessions: usize,
    /// ENVTORCH_WORKERS for envtorch (default: the server's own, one per core).
    #[arg(long)]
    pub(crate) workers: Option<usize>,
    /// RLIMIT_NOFILE wanted for the harness and both servers.
    #[arg(long, default_value_t = 65_536)]
    pub(crate) nofile: u64,
}

/// The effective settings, after the mode's defaults.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Settings {
    pub(crate) mode: &'static str,
    pub(crate) runs: usize,
    pub(crate) warmup_s: f64,
    pub(crate) measure_s: f64,
    pub(crate) max_ops: u64,
    pub(crate) ws_sessions: Vec<usize>,
    pub(crate) http_connections: Vec<usize>,
    pub(crate) churn_loops: Vec<usize>,
    pub(crate) cold_starts: usize,
    pub(crate) held_levels: Vec<usize>,
    pub(crate) memory_levels: Vec<usize>,
    pub(crate) held_step_interval_ms: u64,
    pub(crate) held_slo_ms: u64,
    pub(crate) held_budget_s: f64,
    pub(crate) max_sessions: usize,
    pub(crate) workers: Option<usize>,
    pub(crate) kinds: Vec<Kind>,
    pub(crate) phases: Vec<String>,
    pub(crate) scenarios: Option<Vec<String>>,
}

impl Settings {
    fn from(cli: &Cli, reference_available: bool) -> Self {
        let smoke = cli.smoke;
        let pick = |v: &Option<Vec<usize>>, full: &[usize], small: &[usize]| {
            v.clone()
                .unwrap_or_else(|| if smoke { small.to_vec() } else { full.to_vec() })
        };
        let mut kinds = match cli.only.as_str() {
            "envtorch" => vec![Kind::Ours],
            "reference" => vec![Kind::Reference],
            _ => vec![Kind::Ours, Kind::Reference],
        };
        if !reference_available {
            kinds.retain(|k| *k != Kind::Reference);
        }
        Self {
            mode: if smoke { "smoke" } else { "full" },
            runs: cli.runs.unwrap_or(if smoke { 1 } else { 5 }).max(1),
            warmup_s: cli.warmup.unwrap_or(if smoke { 0.2 } else { 1.0 }),
            measure_s: cli.measure.unwrap_or(if smoke { 0.5 } else { 3.0 }),
            max_ops: cli.max_ops,
            ws_sessions: pick(&cli.ws_sessions, &[16, 64, 256], &[16]),
            http_connections: pick(&cli.http_connections, &[1, 16, 64, 256], &[1, 16]),
            churn_loops: pick(&cli.churn_loops, &[1, 16], &[1]),
            cold_starts: cli.cold_starts.unwrap_or(if smoke { 1 } else { 10 }),
            held_levels: pick(
                &cli.held_levels,
                &[10, 100, 500, 1000, 2000, 5000, 10_000],
                &[100],
            ),
            memory_levels: pick(&cli.memory_levels, &[100, 1000, 10_000], &[100]),
            held_step_interval_ms: cli.held_step_interval_ms.max(1),
            held_slo_ms: cli.held_slo_ms,
            held_budget_s: cli.held_budget.unwrap_or(if smoke { 20.0 } else { 300.0 }),
            max_sessions: cli.max_sessions,
            workers: cli.workers,
            kinds,
            phases: cli.phases.clone(),
            scenarios: cli.scenarios.clone(),
        }
    }

    pub(crate) fn window(&self) -> load::Window {
        load::Window {
            warmup: Duration::from_secs_f64(self.warmup_s),
            measure: Duration::from_secs_f64(self.measure_s),
            max_ops: self.max_ops,
            op_timeout: Duration::from_secs(10),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("envtorch-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(report::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("envtorch-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

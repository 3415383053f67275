//! `envtorch-server`: serve an environment, or check a server's health.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use envtorch_server::config::ServeConfig;
use envtorch_server::{Server, health_check, shutdown_signal};

/// Serve an OpenEnv environment from an envtorch environment binary.
#[derive(Debug, Parser)]
#[command(
    name = "envtorch-server",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeConfig,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a server's health (the container health check): exit 0 if `GET /health` is 200.
    Health {
        /// Server base URL. Default: http://127.0.0.1:$PORT.
        #[arg(long)]
        url: Option<String>,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 3.0)]
        timeout: f64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Health { url, timeout }) => {
            let url = url.unwrap_or_else(|| {
                format!(
                    "http://127.0.0.1:{}",
                    std::env::var("PORT").unwrap_or_else(|_| "8000".into())
                )
            });
            match health_check::check(&url, Duration::from_secs_f64(timeout.max(0.1))) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
        None if cli.serve.env.is_none() => {
            eprintln!("envtorch-server: no environment given; pass --env PATH or set ENVTORCH_ENV");
            ExitCode::from(2)
        }
        None => serve(cli.serve),
    }
}

fn serve(config: ServeConfig) -> ExitCode {
    // Environment code runs as the same user in some deployments: a non-dumpable server
    // cannot be ptraced by it, nor its /proc/<pid>/environ and memory read.
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("envtorch-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let server = match Server::start(&config).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        match server.run(shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("server error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

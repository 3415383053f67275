//! `envtorch run IMAGE`: start an environment container through the Docker provider, wait
//! until it serves sessions, print its URL, and remove it on Ctrl-C / SIGTERM (or, with
//! `--session`, when stdin ends).

use std::time::Duration;

use clap::Args;
use envtorch_docker::{DockerError, DockerProvider, StartOptions};

use crate::remote::{RemoteError, runtime, session_loop};

/// Errors of `envtorch run`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    /// Docker failed (missing image, daemon, port, readiness).
    #[error(transparent)]
    Docker(#[from] DockerError),
    /// The session or the runtime failed.
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// A bad argument.
    #[error("{0}")]
    Usage(String),
}

/// `envtorch run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The image, e.g. echo-env:test. It must be present locally (nothing is pulled).
    pub(crate) image: String,
    /// Environment variable for the container, KEY=VALUE (repeatable), e.g. -e MAX_CONCURRENT_ENVS=4.
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub(crate) env: Vec<String>,
    /// Host port to publish the server on (default: a free port chosen by Docker).
    #[arg(short = 'p', long)]
    pub(crate) port: Option<u16>,
    /// Host address to publish on.
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) host_ip: String,
    /// Seconds to wait until the server answers a /ws round trip.
    #[arg(long, default_value_t = 60.0)]
    pub(crate) ready_timeout: f64,
    /// Container name (default: <image>-<millis>-<pid>-<n>).
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Open a session right away and read commands from stdin (see `envtorch session
    /// --help`); the container is removed when stdin ends.
    #[arg(long)]
    pub(crate) session: bool,
}

/// Runs `envtorch run`.
pub(crate) fn run(args: &RunArgs) -> Result<(), RunError> {
    let mut env = Vec::new();
    for kv in &args.env {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| RunError::Usage(format!("-e {kv:?}: expected KEY=VALUE")))?;
        env.push((k.to_owned(), v.to_owned()));
    }
    let options = StartOptions {
        host_port: args.port,
        host_ip: args.host_ip.clone(),
        ready_timeout: Duration::from_secs_f64(args.ready_timeout.max(0.1)),
        name: args.name.clone(),
        ..StartOptions::default()
    };
    runtime()?.block_on(async {
        // Signals are caught from the start, so Ctrl-C while the image starts still removes
        // the container (dropping `start` drops its guard).
        let mut signals = Signals::new()?;
        let docker = DockerProvider::connect().await?;
        let started = tokio::select! {
            started = docker.start(&args.image, &env, &options) => started?,
            () = signals.recv() => {
                eprintln!("envtorch: interrupted while starting {}", args.image);
                return Ok(());
            }
        };
        let mut container = started;
        eprintln!(
            "envtorch: {} ready at {} (container {}); {}",
            args.image,
            container.url(),
            container.name(),
            if args.session {
                "reading commands from stdin"
            } else {
                "Ctrl-C stops and removes it"
            }
        );
        let outcome = if args.session {
            let client = container.client();
            tokio::select! {
                r = session_loop(&client) => r.map_err(RunError::from),
                () = signals.recv() => Ok(()),
            }
        } else {
            // The URL alone on stdout, for scripts.
            println!("{}", container.url());
            signals.recv().await;
            Ok(())
        };
        eprintln!("envtorch: stopping and removing {}", container.name());
        container.close().await?;
        outcome
    })
}

/// SIGINT and SIGTERM, installed once.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Self, RunError> {
        use tokio::signal::unix::{SignalKind, signal};
        let install =
            |kind| signal(kind).map_err(|e| RunError::Usage(format!("cannot handle signals: {e}")));
        Ok(Self {
            interrupt: install(SignalKind::interrupt())?,
            terminate: install(SignalKind::terminate())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

//! The envtorch core server.
//!
//! It serves one environment over the OpenEnv protocol (`openenv-core` 0.3.0 and `openenv`
//! 0.10.0 clients, unchanged) and runs the environment itself as worker processes that speak
//! the envtorch worker protocol on stdin/stdout (`docs/worker-protocol.md`).
//!
//! # Layout
//! - [`config`]: flags and environment variables.
//! - [`worker`]: worker processes, their supervision and session placement.
//! - [`session`]: sessions, capacity, attachment, reaping.
//! - [`http`]: routes: REST, `/ws`, `/mcp`.
//! - [`openapi`]: the `/openapi.json` document.
//! - [`health_check`]: the `health` subcommand.
//!
//! [`Server::start`] and [`Server::run`] split startup (spawn workers, bind) from serving, so
//! tests can start a server on an ephemeral port and embedders can choose the listener.

pub mod config;
pub mod health_check;
pub mod http;
pub mod openapi;
pub mod session;
pub mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use config::ServeConfig;
use http::{AppState, WsSettings};
use session::Sessions;
use worker::{WorkerPool, WorkerSpec};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No environment binary was given.
    #[error("no environment given; pass --env PATH or set ENVTORCH_ENV")]
    NoEnvironment,
    /// The environment binary failed to start or to complete the handshake.
    #[error(transparent)]
    Worker(#[from] worker::process::SpawnError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// A started server: workers running, socket bound, not yet serving.
pub struct Server {
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown_timeout: Duration,
}

impl Server {
    /// Starts the workers and binds the listener.
    pub async fn start(config: &ServeConfig) -> Result<Self, StartError> {
        let program = config.env.clone().ok_or(StartError::NoEnvironment)?;
        let shutdown = CancellationToken::new();
        let spec = WorkerSpec {
            program,
            args: config.env_args.clone(),
            handshake_timeout: Duration::from_secs(30),
            request_timeout: ServeConfig::seconds(config.worker_timeout)
                .unwrap_or(Duration::from_secs(60)),
        };
        let isolation = match config.isolation {
            config::IsolationArg::Auto => None,
            config::IsolationArg::Shared => Some(envtorch_worker_protocol::Isolation::Shared),
            config::IsolationArg::PerSession => {
                Some(envtorch_worker_protocol::Isolation::PerSession)
            }
        };
        let pool =
            WorkerPool::start(spec, config.workers, isolation, shutdown.child_token()).await?;
        let manifest = pool.manifest().clone();
        let max = config
            .max_concurrent_envs
            .unwrap_or(manifest.capabilities.default_max_sessions as usize)
            .max(1);
        let sessions = Arc::new(Sessions::new(
            Arc::clone(&pool),
            max,
            ServeConfig::seconds(config.session_idle_timeout),
        ));
        let schema = serde_json::json!({
            "action": manifest.schemas.action,
            "observation": manifest.schemas.observation,
            "reset_observation": manifest.schemas.reset_observation,
            "state": manifest.schemas.state,
        });
        let state = Arc::new(AppState {
            openapi: openapi::document(&manifest, config.mode).to_string(),
            schema: schema.to_string(),
            metadata: manifest.metadata.to_string(),
            pool,
            sessions,
            mode: config.mode,
            shutdown,
            ws: WsSettings {
                ping_interval: ServeConfig::seconds(config.ws_ping_interval),
                ping_timeout: ServeConfig::seconds(config.ws_ping_timeout)
                    .unwrap_or(Duration::from_secs(20)),
                max_message: config.ws_max_message,
            },
        });
        let addr = format!("{}:{}", config.host, config.port);
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        tracing::info!(
            env = %manifest.name,
            addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            max_sessions = max,
            placement = ?state.pool.placement(),
            "envtorch server ready"
        );
        Ok(Self {
            listener,
            state,
            shutdown_timeout: ServeConfig::seconds(config.shutdown_timeout)
                .unwrap_or(Duration::from_secs(5)),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The shared state (sessions, pool), for tests and diagnostics.
    pub fn state(&self) -> Arc<AppState> {
        Arc::clone(&self.state)
    }

    /// Serves until `signal` resolves, then shuts down: stops accepting, tells sockets to
    /// close, closes sessions, stops workers, within the shutdown timeout.
    pub async fn run(
        self,
        signal: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let state = Arc::clone(&self.state);
        let token = state.shutdown.clone();
        let reaper = tokio::spawn(reap_loop(Arc::clone(&state)));
        let router = http::router(Arc::clone(&state))
            .layer(axum::extract::DefaultBodyLimit::max(state.ws.max_message));
        // Method fixes must wrap the router from outside: inside it, method dispatch has
        // already happened.
        let app = tower::ServiceExt::map_response(
            tower::ServiceExt::map_request(router, http::reply::head_is_not_get),
            http::reply::allow_without_head,
        );
        let make_service = axum::ServiceExt::<axum::extract::Request>::into_make_service(app);
        let serve_token = token.clone();
        let server = axum::serve(self.listener, make_service).with_graceful_shutdown(async move {
            tokio::select! {
                _ = signal => {}
                _ = serve_token.cancelled() => {}
            }
            tracing::info!("shutting down");
            serve_token.cancel();
        });
        let timeout = self.shutdown_timeout;
        let served = server.into_future();
        let result = tokio::select! {
            r = served => r,
            _ = async { token.cancelled().await; tokio::time::sleep(timeout).await } => {
                tracing::warn!("shutdown timeout reached; closing remaining connections");
                Ok(())
            }
        };
        reaper.abort();
        // Upgraded sockets are not tracked by the HTTP server: give them a moment to send
        // their close frames and end their sessions themselves.
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while !state.sessions.is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        let cleanup = async {
            state.sessions.destroy_all().await;
            state.pool.retire_all();
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), cleanup).await;
        result
    }
}

/// Destroys dead and idle sessions every second, so capacity comes back without waiting for
/// a client to notice.
async fn reap_loop(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        state.sessions.reap().await;
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

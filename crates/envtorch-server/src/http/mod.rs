//! The HTTP surface: routes, and the shared state handlers see.
//!
//! - [`rest`]: `/health`, the stateless `/reset` `/step` `/state`, `/metadata`, `/schema`,
//!   `/openapi.json`, the Task API.
//! - [`jsonrpc`]: the JSON-RPC subset of `/mcp`, shared by `POST /mcp`, `WS /mcp` and `/ws`
//!   `type:"mcp"` messages.
//! - [`ws`]: the `/ws` session protocol.
//! - [`ws_mcp`]: `WS /mcp`, bare JSON-RPC over a socket.
//! - [`reply`]: response builders in FastAPI's shapes.

pub mod jsonrpc;
pub mod reply;
pub mod rest;
pub mod ws;
pub mod ws_mcp;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

use crate::config::Mode;
use crate::session::Sessions;
use crate::worker::WorkerPool;
use envtorch_worker_protocol::EnvManifest;

/// Everything a handler needs. One per server, shared.
pub struct AppState {
    /// The environment's workers.
    pub pool: Arc<WorkerPool>,
    /// The sessions.
    pub sessions: Arc<Sessions>,
    /// Route set.
    pub mode: Mode,
    /// Cancelled when the server shuts down; long-lived sockets watch it.
    pub shutdown: CancellationToken,
    /// WebSocket settings.
    pub ws: WsSettings,
    /// `/openapi.json`, rendered once.
    pub openapi: String,
    /// `/schema`, rendered once.
    pub schema: String,
    /// `/metadata`, rendered once.
    pub metadata: String,
}

/// WebSocket settings.
#[derive(Debug, Clone)]
pub struct WsSettings {
    /// Ping interval; `None` disables pings.
    pub ping_interval: Option<Duration>,
    /// How long after a ping silence means the peer is gone.
    pub ping_timeout: Duration,
    /// Largest message accepted.
    pub max_message: usize,
}

impl AppState {
    /// The environment's handshake.
    pub fn manifest(&self) -> &EnvManifest {
        self.pool.manifest()
    }
}

/// The router for `state`.
pub fn router(state: Arc<AppState>) -> Router {
    let mut app = Router::new()
        .route("/health", get(rest::health))
        .route("/metadata", get(rest::metadata))
        .route("/schema", get(rest::schema))
        .route("/openapi.json", get(rest::openapi))
        .route("/mcp", post(jsonrpc::http_mcp).get(ws_mcp::upgrade))
        .route("/ws", get(ws::upgrade))
        .route("/list_environments", get(rest::list_environments))
        .route("/{env_name}/splits", get(rest::task_splits))
        .route("/{env_name}/tasks", post(rest::task_list))
        .route("/{env_name}/num_tasks", post(rest::task_count))
        .route("/{env_name}/task", post(rest::task_get))
        .route("/{env_name}/task_range", post(rest::task_range));
    if state.mode == Mode::Simulation {
        app = app
            .route("/reset", post(rest::reset))
            .route("/step", post(rest::step))
            .route("/state", get(rest::state));
    }
    app.fallback(reply::not_found)
        .method_not_allowed_fallback(reply::method_not_allowed)
        .with_state(state)
}

//! Async Rust client for envtorch and OpenEnv servers.
//!
//! An OpenEnv server serves one environment; a client opens a **session** over `WS /ws` (one
//! environment instance per socket) and drives it with `reset`, `step` and `state`, then
//! `close`s it. Three HTTP routes describe the server: `GET /health`, `GET /schema` (the
//! action, observation and state JSON schemas) and `GET /metadata`. This crate speaks exactly
//! that, against envtorch's server and the Python reference server (openenv-core 0.3.0 and
//! openenv 0.10.0) alike.
//!
//! ```no_run
//! # async fn demo() -> Result<(), envtorch_client::ClientError> {
//! use envtorch_client::{EnvClient, ResetOptions};
//! use serde_json::json;
//!
//! let client = EnvClient::new("http://127.0.0.1:8000")?;
//! client.health().await?;
//! let mut session = client.connect().await?;
//! session.reset(&ResetOptions::new().seed(7).episode_id("ep-1")).await?;
//! let result = session
//!     .step_json(json!({"type": "call_tool", "tool_name": "echo_message",
//!                       "arguments": {"message": "hi"}}))
//!     .await?;
//! println!("{} reward={:?} done={}", result.observation, result.reward, result.done);
//! session.close().await?;
//! # Ok(()) }
//! ```
//!
//! # Typed and untyped
//!
//! Every call has an untyped form on [`serde_json::Value`] ([`Session::step_json`],
//! [`Session::state_json`]) for tools that do not know the environment, and a typed form
//! through serde generics ([`Session::step`], [`Session::reset_as`], [`Session::state`], or a
//! [`TypedSession`] that fixes the three types once).
//!
//! # Errors and timeouts
//!
//! Error frames become [`ClientError::Server`] carrying a [`ServerError`] with the OpenEnv
//! code ([`ErrorCode`]), message and the frame's extra data. Connecting (TCP + WebSocket
//! handshake) is bounded by [`ClientConfig::connect_timeout`], and every reply by
//! [`ClientConfig::reply_timeout`]; after a reply timeout or a lost connection the session is
//! closed, because the protocol has no request ids and a late reply would otherwise be read
//! as the answer to the next request.
//!
//! # Transport choices
//!
//! WebSocket: tokio-tungstenite over a plain `TcpStream`. HTTP: hyper's low-level HTTP/1.1
//! client, one connection per call (see `http.rs`). No TLS: environments run next to the
//! trainer (local containers, a cluster network), and leaving TLS out keeps the crate free
//! of a crypto stack; `https`/`wss` URLs are rejected with a clear error.

mod error;
mod http;
mod session;
mod url;

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub use envtorch_wire::ws::ErrorCode;
pub use error::{ClientError, ServerError, parse_code};
pub use session::{ResetOptions, Session, StepResult, TypedSession};
pub use url::ServerUrl;

/// Timeouts and limits of a client. The defaults are the reference client's.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Longest a TCP connect plus WebSocket (or HTTP) handshake may take. Default 10 s.
    pub connect_timeout: Duration,
    /// Longest any single reply may take (a reset, a step, an HTTP GET). Default 60 s.
    pub reply_timeout: Duration,
    /// Largest WebSocket message accepted from the server. Default 100 MiB.
    pub max_message_size: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            reply_timeout: Duration::from_secs(60),
            max_message_size: 100 * 1024 * 1024,
        }
    }
}

/// `GET /health`'s body (`{"status":"healthy"}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Health {
    /// `healthy`, `unhealthy` or `degraded`.
    pub status: String,
}

/// `GET /metadata`'s body: what the environment says about itself.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Metadata {
    /// The environment's name.
    pub name: String,
    /// One-line description.
    pub description: String,
    /// README text, if the environment ships one.
    #[serde(default)]
    pub readme_content: Option<String>,
    /// Version string.
    #[serde(default)]
    pub version: Option<String>,
    /// Author.
    #[serde(default)]
    pub author: Option<String>,
    /// Documentation link.
    #[serde(default)]
    pub documentation_url: Option<String>,
}

/// A server to talk to. Cheap to clone; holds no connection (each [`EnvClient::connect`]
/// opens a new session, each HTTP call its own connection).
#[derive(Debug, Clone)]
pub struct EnvClient {
    url: ServerUrl,
    config: ClientConfig,
}

impl EnvClient {
    /// A client for `url` (`http://host:port`, `ws://host:port/ws` or `host:port`) with the
    /// default timeouts.
    pub fn new(url: &str) -> Result<Self, ClientError> {
        Ok(Self::with_config(
            ServerUrl::parse(url)?,
            ClientConfig::default(),
        ))
    }

    /// A client with explicit timeouts and limits.
    pub fn with_config(url: ServerUrl, config: ClientConfig) -> Self {
        Self { url, config }
    }

    /// The server's address.
    pub fn url(&self) -> &ServerUrl {
        &self.url
    }

    /// The timeouts and limits in use.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// `GET /health`: `Ok` only for a 2xx answer (the body is returned for the status).
    pub async fn health(&self) -> Result<Health, ClientError> {
        let body = self.get_json("/health").await?;
        serde_json::from_value(body).map_err(|source| ClientError::Decode {
            what: "health response",
            source,
        })
    }

    /// `GET /schema`: `{"action", "observation", "state"}` JSON schemas (plus
    /// `reset_observation` on openenv 0.10 servers).
    pub async fn schema(&self) -> Result<Value, ClientError> {
        self.get_json("/schema").await
    }

    /// `GET /metadata`, typed.
    pub async fn metadata(&self) -> Result<Metadata, ClientError> {
        let body = self.get_json("/metadata").await?;
        serde_json::from_value(body).map_err(|source| ClientError::Decode {
            what: "metadata",
            source,
        })
    }

    /// `GET <route>` returning the JSON body, for routes this crate has no method for.
    pub async fn get_json(&self, route: &str) -> Result<Value, ClientError> {
        http::get_json(
            &self.url,
            route,
            self.config.connect_timeout + self.config.reply_timeout,
        )
        .await
    }

    /// Opens a `/ws` session. The server creates the environment instance when it accepts the
    /// socket; if it is full, the first request fails with `CAPACITY_REACHED`.
    pub async fn connect(&self) -> Result<Session, ClientError> {
        let url = self.url.ws_url();
        let timeout = self.config.connect_timeout;
        let connecting = async {
            let connect_err = |reason: String| ClientError::Connect {
                url: url.clone(),
                reason,
            };
            let stream = TcpStream::connect(self.url.dial_addr())
                .await
                .map_err(|e| connect_err(e.to_string()))?;
            let _ = stream.set_nodelay(true);
            let request = url
                .as_str()
                .into_client_request()
                .map_err(|e| connect_err(e.to_string()))?;
            let config = WebSocketConfig::default()
                .max_message_size(Some(self.config.max_message_size))
                .max_frame_size(Some(self.config.max_message_size));
            let (ws, _response) =
                tokio_tungstenite::client_async_with_config(request, stream, Some(config))
                    .await
                    .map_err(|e| connect_err(e.to_string()))?;
            Ok(ws)
        };
        match tokio::time::timeout(timeout, connecting).await {
            Ok(Ok(ws)) => Ok(Session::new(ws, self.config.reply_timeout)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ClientError::ConnectTimeout {
                url: url.clone(),
                after: timeout,
            }),
        }
    }
}

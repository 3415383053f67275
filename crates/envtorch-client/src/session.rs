//! One `/ws` session: a WebSocket bound to one environment instance on the server.
//!
//! The protocol has no request ids: the server answers each message with exactly one frame,
//! in order. So a [`Session`] sends one request and waits for one reply (`&mut self` makes
//! that structural), and if a reply does not come in time it closes the socket rather than
//! risk reading a late reply as the answer to the next request.

use std::marker::PhantomData;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::error::{ClientError, ServerError};

/// What reset and step return: the observation envelope, with the observation decoded as `O`
/// (a [`serde_json::Value`] for the untyped form).
#[derive(Debug, Clone, PartialEq)]
pub struct StepResult<O> {
    /// The environment's observation.
    pub observation: O,
    /// The reward; `None` when the environment gives none (OpenEnv allows ints, floats and
    /// bools on the wire; all become `f64`).
    pub reward: Option<f64>,
    /// Whether the episode ended. Servers do not enforce it: stepping after `done` is allowed.
    pub done: bool,
    /// The envelope's top-level `metadata` (openenv 0.10 servers send it when non-empty).
    pub metadata: Option<Map<String, Value>>,
}

impl StepResult<Value> {
    /// Decodes the observation as `O`, keeping reward, done and metadata.
    pub fn decode<O: DeserializeOwned>(self) -> Result<StepResult<O>, ClientError> {
        Ok(StepResult {
            observation: serde_json::from_value(self.observation).map_err(|source| {
                ClientError::Decode {
                    what: "observation",
                    source,
                }
            })?,
            reward: self.reward,
            done: self.done,
            metadata: self.metadata,
        })
    }

    fn from_envelope(data: Value) -> Result<Self, ClientError> {
        let Value::Object(mut map) = data else {
            return Err(ClientError::Protocol(format!(
                "an observation reply's data is not an object: {data}"
            )));
        };
        let observation = map
            .remove("observation")
            .unwrap_or_else(|| Value::Object(Map::new()));
        let reward = match map.remove("reward") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(if b { 1.0 } else { 0.0 }),
            Some(Value::Number(n)) => n.as_f64(),
            Some(other) => {
                return Err(ClientError::Protocol(format!(
                    "reward is not a number: {other}"
                )));
            }
        };
        let done = map
            .remove("done")
            .and_then(|d| d.as_bool())
            .unwrap_or(false);
        let metadata = match map.remove("metadata") {
            Some(Value::Object(m)) => Some(m),
            _ => None,
        };
        Ok(Self {
            observation,
            reward,
            done,
            metadata,
        })
    }
}

/// Arguments of `reset`: the two OpenEnv ones plus anything the environment accepts.
///
/// The server passes `data` to the environment's reset as keyword arguments, so `extra` is
/// how environment-specific options (a difficulty, a task id, …) travel.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ResetOptions {
    /// Seed for the episode's randomness.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The id the episode should have (the server makes one up otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub episode_id: Option<String>,
    /// Further options, sent as extra keys of `data`.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResetOptions {
    /// No options: the environment's default reset.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Sets the episode id.
    pub fn episode_id(mut self, id: impl Into<String>) -> Self {
        self.episode_id = Some(id.into());
        self
    }

    /// Adds an environment-specific option.
    pub fn option(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }

    fn to_data(&self) -> Result<Value, ClientError> {
        serde_json::to_value(self).map_err(|source| ClientError::Encode {
            what: "reset options",
            source,
        })
    }
}

/// An open `/ws` session. Obtain one with [`crate::EnvClient::connect`].
///
/// Dropping it without [`Session::close`] just drops the TCP connection; the server frees the
/// slot either way, but `close` says goodbye properly and waits for the close handshake.
pub struct Session {
    ws: Option<WebSocketStream<TcpStream>>,
    reply_timeout: Duration,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("open", &self.ws.is_some())
            .field("reply_timeout", &self.reply_timeout)
            .finish()
    }
}

impl Session {
    pub(crate) fn new(ws: WebSocketStream<TcpStream>, reply_timeout: Duration) -> Self {
        Self {
            ws: Some(ws),
            reply_timeout,
        }
    }

    /// Whether the session can still be used (not closed, not broken by a timeout or a lost
    /// connection).
    pub fn is_open(&self) -> bool {
        self.ws.is_some()
    }

    /// Changes how long each reply may take from now on (e.g. for a long-running step).
    pub fn set_reply_timeout(&mut self, timeout: Duration) {
        self.reply_timeout = timeout;
    }

    /// Starts a new episode; the observation stays untyped JSON.
    pub async fn reset(
        &mut self,
        options: &ResetOptions,
    ) -> Result<StepResult<Value>, ClientError> {
        let data = options.to_data()?;
        let reply = self
            .request("reset", json!({"type": "reset", "data": data}))
            .await?;
        StepResult::from_envelope(reply)
    }

    /// Starts a new episode and decodes the observation as `O`.
    pub async fn reset_as<O: DeserializeOwned>(
        &mut self,
        options: &ResetOptions,
    ) -> Result<StepResult<O>, ClientError> {
        self.reset(options).await?.decode()
    }

    /// Sends one action given as JSON (an object, e.g. `{"type":"call_tool",…}`).
    pub async fn step_json(&mut self, action: Value) -> Result<StepResult<Value>, ClientError> {
        let reply = self
            .request("step", json!({"type": "step", "data": action}))
            .await?;
        StepResult::from_envelope(reply)
    }

    /// Sends one typed action and decodes the observation as `O`.
    pub async fn step<A: Serialize + ?Sized, O: DeserializeOwned>(
        &mut self,
        action: &A,
    ) -> Result<StepResult<O>, ClientError> {
        let action = serde_json::to_value(action).map_err(|source| ClientError::Encode {
            what: "action",
            source,
        })?;
        self.step_json(action).await?.decode()
    }

    /// The environment's state as JSON (`episode_id`, `step_count` and the env's own fields).
    pub async fn state_json(&mut self) -> Result<Value, ClientError> {
        self.request("state", json!({"type": "state"})).await
    }

    /// The environment's state decoded as `S`.
    pub async fn state<S: DeserializeOwned>(&mut self) -> Result<S, ClientError> {
        serde_json::from_value(self.state_json().await?).map_err(|source| ClientError::Decode {
            what: "state",
            source,
        })
    }

    /// Sends a JSON-RPC request on this session's environment (`{"type":"mcp"}` frames, e.g.
    /// `tools/list`) and returns the JSON-RPC response object.
    pub async fn mcp(&mut self, request: Value) -> Result<Value, ClientError> {
        self.request("mcp", json!({"type": "mcp", "data": request}))
            .await
    }

    /// Ends the session: sends `{"type":"close"}` (the server destroys the environment and
    /// closes with 1000), then completes the WebSocket close handshake. Bounded by the reply
    /// timeout; closing an already-closed session is a no-op.
    pub async fn close(&mut self) -> Result<(), ClientError> {
        let Some(mut ws) = self.ws.take() else {
            return Ok(());
        };
        let timeout = self.reply_timeout;
        let goodbye = async {
            ws.send(Message::text(r#"{"type":"close"}"#))
                .await
                .map_err(closed)?;
            // The server closes after `close`; answer its close frame, ignore anything else.
            let _ = ws
                .close(Some(CloseFrame {
                    code: CloseCode::Normal,
                    reason: "".into(),
                }))
                .await;
            while let Some(msg) = ws.next().await {
                if msg.is_err() {
                    break;
                }
            }
            Ok(())
        };
        match tokio::time::timeout(timeout, goodbye).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::ReplyTimeout {
                request: "close".into(),
                after: timeout,
            }),
        }
    }

    /// Sends one message and returns the reply's `data`, or the error frame as an error.
    async fn request(&mut self, kind: &str, message: Value) -> Result<Value, ClientError> {
        let timeout = self.reply_timeout;
        let ws = self.ws.as_mut().ok_or(ClientError::SessionClosed)?;
        let exchange = async {
            ws.send(Message::text(message.to_string()))
                .await
                .map_err(closed)?;
            next_reply(ws).await
        };
        let outcome = match tokio::time::timeout(timeout, exchange).await {
            Ok(outcome) => outcome,
            Err(_) => Err(ClientError::ReplyTimeout {
                request: kind.to_owned(),
                after: timeout,
            }),
        };
        match outcome {
            Ok(frame) => self.interpret(kind, frame),
            Err(e) => {
                // Unusable after a timeout or a lost connection: drop the socket.
                self.ws = None;
                Err(e)
            }
        }
    }

    fn interpret(&mut self, kind: &str, frame: Value) -> Result<Value, ClientError> {
        let Value::Object(mut frame) = frame else {
            // A server that answers out of protocol cannot be trusted to stay in step.
            self.ws = None;
            return Err(ClientError::Protocol(format!(
                "a reply is not a JSON object: {frame}"
            )));
        };
        let reply_type = frame
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let data = frame.remove("data").unwrap_or(Value::Null);
        if reply_type == "error" {
            let error = ServerError::from_data(data);
            if error.ends_session() {
                self.ws = None;
            }
            return Err(ClientError::Server(error));
        }
        let expected = match kind {
            "reset" | "step" => "observation",
            other => other,
        };
        if reply_type != expected {
            self.ws = None;
            return Err(ClientError::Protocol(format!(
                "expected a {expected:?} reply to {kind}, got {reply_type:?}"
            )));
        }
        Ok(data)
    }
}

/// Reads frames until a text frame arrives (pings are answered by tungstenite itself).
async fn next_reply(ws: &mut WebSocketStream<TcpStream>) -> Result<Value, ClientError> {
    loop {
        match ws.next().await {
            None => {
                return Err(ClientError::Closed {
                    code: None,
                    reason: "connection ended".into(),
                });
            }
            Some(Err(e)) => return Err(closed(e)),
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(text.as_str()).map_err(|e| {
                    ClientError::Protocol(format!("a reply is not JSON ({e}): {}", text.as_str()))
                });
            }
            Some(Ok(Message::Close(frame))) => {
                return Err(ClientError::Closed {
                    code: frame.as_ref().map(|f| u16::from(f.code)),
                    reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                });
            }
            Some(Ok(Message::Binary(_))) => {
                return Err(ClientError::Protocol(
                    "the server sent a binary frame".into(),
                ));
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
        }
    }
}

fn closed(e: tokio_tungstenite::tungstenite::Error) -> ClientError {
    ClientError::Closed {
        code: None,
        reason: e.to_string(),
    }
}

/// Marker for the type parameters: sends `A`, yields `O` and `S` (so `TypedSession` is `Send`
/// and `Sync` whatever they are).
type Types<A, O, S> = fn(&A) -> (O, S);

/// A session with fixed Rust types for actions (`A`), observations (`O`) and state (`S`), so
/// call sites need no turbofish.
///
/// ```no_run
/// # async fn demo() -> Result<(), envtorch_client::ClientError> {
/// use envtorch_client::{EnvClient, ResetOptions, TypedSession};
/// #[derive(serde::Serialize)]
/// struct CodeAction { code: String }
/// #[derive(serde::Deserialize)]
/// struct CodeObservation { stdout: String, stderr: String, exit_code: i64 }
/// #[derive(serde::Deserialize)]
/// struct CodeState { episode_id: Option<String>, step_count: u64 }
///
/// let client = EnvClient::new("http://127.0.0.1:8000")?;
/// let mut env: TypedSession<CodeAction, CodeObservation, CodeState> =
///     client.connect().await?.typed();
/// env.reset(&ResetOptions::new()).await?;
/// let r = env.step(&CodeAction { code: "print(1 + 1)".into() }).await?;
/// assert_eq!(r.observation.stdout, "2\n");
/// env.close().await?;
/// # Ok(()) }
/// ```
pub struct TypedSession<A, O, S> {
    inner: Session,
    _types: PhantomData<Types<A, O, S>>,
}

impl<A, O, S> std::fmt::Debug for TypedSession<A, O, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl Session {
    /// Fixes the action, observation and state types of this session.
    pub fn typed<A, O, S>(self) -> TypedSession<A, O, S> {
        TypedSession {
            inner: self,
            _types: PhantomData,
        }
    }
}

impl<A: Serialize, O: DeserializeOwned, S: DeserializeOwned> TypedSession<A, O, S> {
    /// See [`Session::reset`].
    pub async fn reset(&mut self, options: &ResetOptions) -> Result<StepResult<O>, ClientError> {
        self.inner.reset_as(options).await
    }

    /// See [`Session::step`].
    pub async fn step(&mut self, action: &A) -> Result<StepResult<O>, ClientError> {
        self.inner.step(action).await
    }

    /// See [`Session::state`].
    pub async fn state(&mut self) -> Result<S, ClientError> {
        self.inner.state().await
    }

    /// See [`Session::close`].
    pub async fn close(&mut self) -> Result<(), ClientError> {
        self.inner.close().await
    }

    /// The untyped session underneath.
    pub fn untyped(&mut self) -> &mut Session {
        &mut self.inner
    }
}

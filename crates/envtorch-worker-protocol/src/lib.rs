//! The protocol between the envtorch server and an environment worker process.
//!
//! The server starts an environment binary as a child process and talks to it over the
//! child's stdin (requests) and stdout (replies). The child's stderr is its log. The full
//! description, with examples, is `docs/worker-protocol.md`; in short:
//!
//! - **Framing**: one compact JSON object per line (`\n`-terminated, UTF-8). JSON text never
//!   contains a raw newline, so a line is a message.
//! - **Handshake**: the worker's first line is a [`Hello`]: protocol version, environment
//!   name, metadata, JSON schemas and capabilities. The server refuses a version it does not
//!   speak.
//! - **Requests** carry an `id` and, for session operations, a `session` id, so one worker
//!   hosts many sessions and replies may come back in any order. A request without `session`
//!   runs on a fresh environment that is closed afterwards (the stateless HTTP routes).
//! - **Replies** echo the `id` with either `ok` (the result) or `err` ([`WorkerError`]).
//!
//! Payloads (actions, observations) are carried as raw JSON ([`RawValue`]) so that neither
//! side rebuilds them on the way through.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

/// The protocol version this crate speaks. Bumped on any incompatible change.
pub const PROTOCOL_VERSION: u32 = 1;

/// The worker's first line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    /// The worker's protocol version; must equal [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// What the environment is and can do.
    pub env: EnvManifest,
}

/// Static facts about an environment, served by the server without asking the worker again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvManifest {
    /// The environment name used in URLs and listings (`echo_env`).
    pub name: String,
    /// The environment's version (its crate version).
    pub version: String,
    /// The `GET /metadata` object (`EnvironmentMetadata`: name, description, …).
    pub metadata: Value,
    /// JSON schemas for `GET /schema`.
    pub schemas: Schemas,
    /// What the environment supports.
    pub capabilities: Capabilities,
}

/// JSON schemas of the environment's types.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Schemas {
    /// The action schema.
    pub action: Value,
    /// The observation schema (with `done`, `reward`, `metadata`).
    pub observation: Value,
    /// The schema of the observation reset returns.
    pub reset_observation: Value,
    /// The state schema.
    pub state: Value,
}

/// What an environment supports; the server uses it to route requests and set defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Capabilities {
    /// The environment exposes MCP tools (`list_tools` / `call_tool` ops).
    pub mcp: bool,
    /// The environment serves the Task API (`task` op).
    pub tasks: bool,
    /// Sessions of this environment may share a worker process.
    pub concurrent_sessions: bool,
    /// `MAX_CONCURRENT_ENVS` when the operator sets none.
    pub default_max_sessions: u32,
    /// How the server should place sessions on workers.
    pub isolation: Isolation,
}

/// How sessions are placed on worker processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// Many sessions per worker; a few workers spread over the cores.
    Shared,
    /// One worker process per session, killed when the session ends.
    PerSession,
}

/// What a request asks the worker to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Create the environment for `session`. Reply: `{}`.
    Open,
    /// Close and drop the environment of `session`. Reply: `{}`.
    Close,
    /// `reset(**data)`. Reply: an [observation reply](#observation-replies).
    Reset,
    /// `step(data)`. Reply: an observation reply.
    Step,
    /// The full state object.
    State,
    /// MCP `tools/list`. Reply: `{"tools":[…]}` (MCP tool objects).
    ListTools,
    /// MCP `tools/call` of `name` with `data` as arguments. Reply: an MCP `CallToolResult`.
    CallTool,
    /// A Task API call; `name` is the method (`list_splits`, `list_tasks`, `num_tasks`,
    /// `get_task`, `get_task_range`) and `data` its arguments.
    Task,
}

/// A request line. Borrowed so the server can forward client payloads without copying them
/// into a tree.
#[derive(Debug, Serialize, Deserialize)]
pub struct Request<'a> {
    /// Correlates the reply.
    pub id: u64,
    /// The operation.
    pub op: Op,
    /// The session; absent means a fresh environment just for this request.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Cow<'a, str>>,
    /// The payload: reset kwargs, the action, tool arguments, task arguments.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub data: Option<&'a RawValue>,
    /// A step deadline the client asked for (HTTP `timeout_s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<f64>,
    /// Tool or task method name.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Cow<'a, str>>,
}

impl<'a> Request<'a> {
    /// A request with only an id, an op and maybe a session.
    pub fn new(id: u64, op: Op, session: Option<&'a str>) -> Self {
        Self {
            id,
            op,
            session: session.map(Cow::Borrowed),
            data: None,
            timeout_s: None,
            name: None,
        }
    }

    /// Serializes the request as one line, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        line(self)
    }
}

/// A reply line, as the worker writes it.
#[derive(Debug, Serialize)]
pub struct ReplyOut<'a> {
    /// The request's id.
    pub id: u64,
    /// The result, on success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ok: Option<&'a RawValue>,
    /// The failure, otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub err: Option<&'a WorkerError>,
}

/// A reply line, as the server reads it (owned, so it can travel to the waiting task).
#[derive(Debug, Deserialize)]
pub struct Reply {
    /// The request's id.
    pub id: u64,
    /// The result, on success.
    #[serde(default)]
    pub ok: Option<Box<RawValue>>,
    /// The failure, otherwise.
    #[serde(default)]
    pub err: Option<WorkerError>,
}

/// Why a request failed, in terms the server maps onto the protocol's error shapes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerError {
    /// The class of failure.
    pub kind: ErrorKind,
    /// A message for people.
    pub message: String,
    /// Pydantic-shaped validation issues (`kind == validation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Value>,
}

/// Classes of request failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The input failed validation: `/ws` `VALIDATION_ERROR`, HTTP 422.
    Validation,
    /// The environment failed: `/ws` `EXECUTION_ERROR`, HTTP 500, JSON-RPC -32603.
    Execution,
    /// The environment could not be created: `FACTORY_ERROR`, JSON-RPC -32000.
    Factory,
    /// No such session in this worker.
    UnknownSession,
    /// The environment does not support the operation (no MCP, no tasks).
    Unsupported,
    /// Bad tool or task parameters: JSON-RPC -32602, Task API 400.
    InvalidParams,
}

impl WorkerError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            errors: None,
        }
    }
}

/// Serializes any message as one protocol line.
pub fn line<T: Serialize>(message: &T) -> Vec<u8> {
    // Serializing these types cannot fail: every key is a string and every value is JSON.
    let mut out = serde_json::to_vec(message).unwrap_or_else(|_| b"{}".to_vec());
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_are_compact_and_round_trip() {
        let data = RawValue::from_string(r#"{"message":"hi"}"#.to_owned()).unwrap();
        let mut req = Request::new(7, Op::Step, Some("s-1"));
        req.data = Some(&data);
        let text = String::from_utf8(req.to_line()).unwrap();
        assert_eq!(
            text,
            "{\"id\":7,\"op\":\"step\",\"session\":\"s-1\",\"data\":{\"message\":\"hi\"}}\n"
        );
        let back: Request<'_> = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(back.op, Op::Step);
        assert_eq!(back.data.unwrap().get(), r#"{"message":"hi"}"#);
    }

    #[test]
    fn replies_carry_ok_or_err() {
        let r: Reply = serde_json::from_str(
            r#"{"id":1,"err":{"kind":"validation","message":"Invalid message","errors":[]}}"#,
        )
        .unwrap();
        assert_eq!(r.err.unwrap().kind, ErrorKind::Validation);
        let r: Reply = serde_json::from_str(r#"{"id":2,"ok":{"a":1}}"#).unwrap();
        assert_eq!(r.ok.unwrap().get(), r#"{"a":1}"#);
    }
}

//! The [`Environment`] trait and the values it exchanges.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::action::Action;
use crate::mcp::ToolProvider;
use envtorch_wire::ValidationIssue;

/// One RL environment instance; the server creates one per session through the factory given
/// to [`serve`](crate::serve()).
///
/// Lifecycle: created (factory) → any number of `reset`/`step`/`state` calls, in any order
/// (step before reset is allowed, as in the reference) → `close` → dropped. Calls for one
/// instance never overlap.
pub trait Environment: Send + 'static {
    /// What the agent sends each step. Validated against its JSON Schema before `step` sees it.
    type Action: Action;
    /// What the agent sees after reset and step (without reward/done/metadata, which are
    /// carried by [`Observation`]).
    type Observation: Serialize + JsonSchema;
    /// The environment's state as `state` returns it; by convention it has `episode_id` and
    /// `step_count`.
    type State: Serialize + JsonSchema;

    /// Starts a new episode.
    fn reset(&mut self, request: ResetRequest) -> Result<Observation<Self::Observation>, EnvError>;

    /// Applies one action.
    fn step(
        &mut self,
        action: Self::Action,
        ctx: &StepContext,
    ) -> Result<Observation<Self::Observation>, EnvError>;

    /// The current state.
    fn state(&self) -> Self::State;

    /// Releases resources when the session ends (child processes, files). Called once.
    fn close(&mut self) {}

    /// The MCP tools of this instance, if the environment has any. Environments that return
    /// `Some` must say so with [`Manifest::mcp`](crate::Manifest::mcp).
    fn tools(&mut self) -> Option<&mut dyn ToolProvider> {
        None
    }

    /// Answers a Task API call (`list_splits`, `list_tasks`, `num_tasks`, `get_task`,
    /// `get_task_range`). Only called when the manifest declares tasks.
    fn task(&mut self, method: &str, args: &Map<String, Value>) -> Result<Value, EnvError> {
        let _ = args;
        Err(EnvError::unsupported(format!(
            "{method} is not supported for this environment"
        )))
    }
}

/// The arguments of a reset: the reference passes every key of the request as a keyword
/// argument, so all of them are kept in [`ResetRequest::raw`].
#[derive(Debug, Clone, Default)]
pub struct ResetRequest {
    /// Every key the client sent.
    pub raw: Map<String, Value>,
}

impl ResetRequest {
    /// The `seed`, if present and a non-negative integer.
    ///
    /// `/ws` does not validate reset arguments (the reference does not either), so an invalid
    /// seed reaches the environment; this returns a validation error for it.
    pub fn seed(&self) -> Result<Option<u64>, EnvError> {
        match self.raw.get("seed") {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                EnvError::Validation(vec![
                    ValidationIssue::new(
                        "greater_than_equal",
                        vec!["seed".into()],
                        "Input should be a non-negative integer",
                        v.clone(),
                    )
                    .with_url(),
                ])
            }),
        }
    }

    /// The `episode_id`, if present and a string.
    pub fn episode_id(&self) -> Option<String> {
        self.raw
            .get("episode_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    /// The `episode_id`, or a fresh UUID-like id when the client gave none.
    pub fn episode_id_or_new(&self) -> Option<String> {
        Some(self.episode_id().unwrap_or_else(new_episode_id))
    }

    /// Any other argument by name.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.raw.get(key)
    }
}

/// A random version-4 UUID string, for episode ids.
pub fn new_episode_id() -> String {
    let mut bytes = [0u8; 16];
    fill_random(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let h: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Fills `buf` from the OS's random source; falls back to a time-and-counter mix if
/// `/dev/urandom` cannot be read (ids need to be unique, not secret).
fn fill_random(buf: &mut [u8]) {
    use std::io::Read;
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .is_ok()
    {
        return;
    }
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut x = nanos
        ^ COUNTER.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
        ^ u64::from(std::process::id());
    for b in buf.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
}

/// Per-step context the client may send.
#[derive(Debug, Clone, Default)]
pub struct StepContext {
    /// The client's requested deadline (HTTP `timeout_s`), if any.
    pub timeout_s: Option<f64>,
}

/// A reward: integers stay integers on `/ws`, as in the reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reward {
    /// An integer reward (e.g. points merged in 2048).
    Int(i64),
    /// A floating-point reward.
    Float(f64),
}

impl From<f64> for Reward {
    fn from(v: f64) -> Self {
        Reward::Float(v)
    }
}

impl From<i64> for Reward {
    fn from(v: i64) -> Self {
        Reward::Int(v)
    }
}

impl Serialize for Reward {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Reward::Int(i) => s.serialize_i64(*i),
            Reward::Float(f) if f.is_finite() => s.serialize_f64(*f),
            Reward::Float(_) => s.serialize_none(),
        }
    }
}

/// An observation with its reward, done flag and metadata.
#[derive(Debug, Clone)]
pub struct Observation<O> {
    /// The environment-specific fields.
    pub observation: O,
    /// The reward, or none (`null`).
    pub reward: Option<Reward>,
    /// Whether the episode ended. The server does not enforce it.
    pub done: bool,
    /// Free-form metadata; sent inside the observation and, when non-empty, beside it.
    pub metadata: Map<String, Value>,
}

impl<O> Observation<O> {
    /// An observation with no reward, not done, empty metadata.
    pub fn new(observation: O) -> Self {
        Self {
            observation,
            reward: None,
            done: false,
            metadata: Map::new(),
        }
    }

    /// Sets the reward.
    pub fn reward(mut self, reward: impl Into<Reward>) -> Self {
        self.reward = Some(reward.into());
        self
    }

    /// Sets `done`.
    pub fn done(mut self, done: bool) -> Self {
        self.done = done;
        self
    }

    /// Adds a metadata entry.
    pub fn meta(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.metadata.insert(key.to_owned(), value.into());
        self
    }
}

/// Why a call failed; the server turns it into the protocol's error shape.
#[derive(Debug, Clone, PartialEq)]
pub enum EnvError {
    /// Bad input: `VALIDATION_ERROR` on `/ws`, 422 on HTTP.
    Validation(Vec<ValidationIssue>),
    /// The environment failed: `EXECUTION_ERROR` on `/ws`, 500 on HTTP.
    Execution(String),
    /// Bad tool or task parameters: JSON-RPC -32602, Task API 400.
    InvalidParams(String),
    /// The operation is not offered: 501 on the Task API.
    Unsupported(String),
}

impl EnvError {
    /// An execution error with `message` (what the client sees).
    pub fn execution(message: impl Into<String>) -> Self {
        EnvError::Execution(message.into())
    }

    /// An unsupported-operation error.
    pub fn unsupported(message: impl Into<String>) -> Self {
        EnvError::Unsupported(message.into())
    }
}

impl std::fmt::Display for EnvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnvError::Validation(issues) => write!(f, "{} validation error(s)", issues.len()),
            EnvError::Execution(m) | EnvError::InvalidParams(m) | EnvError::Unsupported(m) => {
                f.write_str(m)
            }
        }
    }
}

impl std::error::Error for EnvError {}

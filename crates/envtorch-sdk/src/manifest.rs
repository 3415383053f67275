//! The static description of an environment, sent to the server in the worker handshake.

use serde_json::{Value, json};

pub use envtorch_worker_protocol::Isolation;

/// How the worker runs environment calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// Every call runs on the worker's main thread, one after another. Best for environments
    /// whose calls take microseconds (echo, games): no thread hand-off at all. The server
    /// spreads sessions over several workers to use every core.
    Inline,
    /// Each session gets its own thread, so a slow call (running a program, waiting on a
    /// subprocess) never delays the worker's other sessions.
    ThreadPerSession,
}

/// What the server needs to know about an environment before any session exists.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub(crate) name: String,
    pub(crate) metadata: Value,
    pub(crate) mcp: bool,
    pub(crate) tasks: bool,
    pub(crate) concurrency: Concurrency,
    pub(crate) isolation: Isolation,
    pub(crate) default_max_sessions: u32,
    pub(crate) action_schema: Option<Value>,
    pub(crate) observation_schema: Option<Value>,
    pub(crate) reset_observation_schema: Option<Value>,
    pub(crate) state_schema: Option<Value>,
}

impl Manifest {
    /// An environment called `name` (used in URLs, e.g. `echo_env`) described by
    /// `description`. `/metadata` reports `name` and `description` unless changed with
    /// [`Manifest::metadata_name`].
    pub fn new(name: &str, description: &str) -> Self {
        Self {
            name: name.to_owned(),
            metadata: json!({
                "name": name,
                "description": description,
                "readme_content": null,
                "version": "1.0.0",
                "author": null,
                "documentation_url": null,
            }),
            mcp: false,
            tasks: false,
            concurrency: Concurrency::Inline,
            isolation: Isolation::Shared,
            default_max_sessions: 8,
            action_schema: None,
            observation_schema: None,
            reset_observation_schema: None,
            state_schema: None,
        }
    }

    fn set_meta(mut self, key: &str, value: Value) -> Self {
        if let Value::Object(m) = &mut self.metadata {
            m.insert(key.to_owned(), value);
        }
        self
    }

    /// The `name` `/metadata` reports (the reference reports the class name, e.g.
    /// `EchoEnvironment`).
    pub fn metadata_name(self, name: &str) -> Self {
        self.set_meta("name", json!(name))
    }

    /// The `version` `/metadata` reports (default `1.0.0`, like the reference).
    pub fn version(self, version: &str) -> Self {
        self.set_meta("version", json!(version))
    }

    /// The `author` `/metadata` reports.
    pub fn author(self, author: &str) -> Self {
        self.set_meta("author", json!(author))
    }

    /// The `documentation_url` `/metadata` reports.
    pub fn documentation_url(self, url: &str) -> Self {
        self.set_meta("documentation_url", json!(url))
    }

    /// The `readme_content` `/metadata` reports.
    pub fn readme(self, markdown: &str) -> Self {
        self.set_meta("readme_content", json!(markdown))
    }

    /// Declares MCP tools ([`Environment::tools`](crate::Environment::tools) returns `Some`).
    pub fn mcp(mut self) -> Self {
        self.mcp = true;
        self
    }

    /// Declares the Task API ([`Environment::task`](crate::Environment::task) is implemented).
    pub fn tasks(mut self) -> Self {
        self.tasks = true;
        self
    }

    /// How calls run inside the worker (default [`Concurrency::Inline`]).
    pub fn concurrency(mut self, concurrency: Concurrency) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// How the server places sessions on workers (default [`Isolation::Shared`]).
    pub fn isolation(mut self, isolation: Isolation) -> Self {
        self.isolation = isolation;
        self
    }

    /// The session limit when the operator sets no `MAX_CONCURRENT_ENVS` (default 8, the
    /// reference echo app's default).
    pub fn default_max_sessions(mut self, n: u32) -> Self {
        self.default_max_sessions = n;
        self
    }

    /// Replaces the derived action schema (e.g. to match a reference schema byte for byte).
    pub fn action_schema(mut self, schema: Value) -> Self {
        self.action_schema = Some(schema);
        self
    }

    /// Replaces the derived observation schema.
    pub fn observation_schema(mut self, schema: Value) -> Self {
        self.observation_schema = Some(schema);
        self
    }

    /// Sets a reset observation schema different from the observation schema.
    pub fn reset_observation_schema(mut self, schema: Value) -> Self {
        self.reset_observation_schema = Some(schema);
        self
    }

    /// Replaces the derived state schema.
    pub fn state_schema(mut self, schema: Value) -> Self {
        self.state_schema = Some(schema);
        self
    }
}

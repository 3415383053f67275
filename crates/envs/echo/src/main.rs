//! The echo environment: the reference echo env of OpenEnv, behaviour for behaviour.
//!
//! It is a pure MCP environment with two tools, `echo_message` and `echo_with_length`. It
//! exists to prove the protocol: every client of the reference echo server must work against
//! it unchanged. Semantics (from the reference):
//! - reset sets `episode_id` (given or a new UUID) and `step_count = 0`, and returns an empty
//!   observation with reward `0.0` and metadata `{"status":"ready","message":"Echo environment ready!"}`;
//! - every step counts, including `list_tools`, unknown tools and tool errors; rewards are
//!   `null` and `done` is `false`;
//! - a fresh instance already has a random `episode_id`.

use std::process::ExitCode;
use std::sync::OnceLock;

use envtorch_sdk::mcp::{
    self, McpAction, McpObservation, Tool, ToolError, ToolOutput, ToolProvider,
};
use envtorch_sdk::schemars::{self, JsonSchema};
use envtorch_sdk::{EnvError, Environment, Manifest, Observation, ResetRequest, StepContext};
use serde::Serialize;
use serde_json::{Map, Value, json};

/// The echo environment's state: the OpenEnv base state.
#[derive(Debug, Clone, Serialize, JsonSchema)]
struct EchoState {
    episode_id: Option<String>,
    step_count: u64,
}

/// One echo session.
struct EchoEnv {
    state: EchoState,
}

impl EchoEnv {
    fn new() -> Self {
        Self {
            state: EchoState {
                episode_id: Some(envtorch_sdk::env::new_episode_id()),
                step_count: 0,
            },
        }
    }
}

/// The two tools, built once per worker.
fn echo_tools() -> Vec<Tool> {
    vec![
        Tool {
            name: "echo_message".into(),
            description: "Echo back the provided message.".into(),
            input_schema: message_schema(),
            output_schema: Some(
                json!({"properties":{"result":{"type":"string"}},"required":["result"],"type":"object","x-fastmcp-wrap-result":true}),
            ),
        },
        Tool {
            name: "echo_with_length".into(),
            description: "Echo back the message with its length.".into(),
            input_schema: message_schema(),
            output_schema: Some(json!({"additionalProperties":true,"type":"object"})),
        },
    ]
}

fn message_schema() -> Value {
    json!({"type":"object","additionalProperties":false,"properties":{"message":{"type":"string","description":"The message to echo back"}},"required":["message"]})
}

impl ToolProvider for EchoEnv {
    fn list_tools(&self) -> &[Tool] {
        static TOOLS: OnceLock<Vec<Tool>> = OnceLock::new();
        TOOLS.get_or_init(echo_tools)
    }

    fn call_tool(
        &mut self,
        name: &str,
        arguments: &Map<String, Value>,
    ) -> Result<ToolOutput, ToolError> {
        let message = arguments
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match name {
            "echo_message" => Ok(ToolOutput::Text(message.to_owned())),
            "echo_with_length" => Ok(ToolOutput::Json(
                json!({"message": message, "length": message.chars().count()}),
            )),
            other => Err(ToolError::new(
                mcp::ToolErrorType::ToolNotFound,
                format!("Unknown tool: '{other}'"),
            )),
        }
    }
}

impl Environment for EchoEnv {
    type Action = McpAction;
    type Observation = McpObservation;
    type State = EchoState;

    fn reset(&mut self, request: ResetRequest) -> Result<Observation<McpObservation>, EnvError> {
        self.state = EchoState {
            episode_id: request.episode_id_or_new(),
            step_count: 0,
        };
        Ok(Observation::new(McpObservation::Empty)
            .reward(0.0)
            .meta("status", "ready")
            .meta("message", "Echo environment ready!"))
    }

    fn step(
        &mut self,
        action: McpAction,
        _ctx: &StepContext,
    ) -> Result<Observation<McpObservation>, EnvError> {
        self.state.step_count += 1;
        Ok(Observation::new(mcp::step(self, action)))
    }

    fn state(&self) -> EchoState {
        self.state.clone()
    }

    fn tools(&mut self) -> Option<&mut dyn ToolProvider> {
        Some(self)
    }
}

/// The reference's base `State` schema, verbatim.
fn state_schema() -> Value {
    json!({"additionalProperties":true,"description":"Base class for environment state.\n\nRepresents internal environment state, separate from observations.","properties":{"episode_id":{"anyOf":[{"type":"string"},{"type":"null"}],"default":null,"description":"Unique identifier for the current episode","title":"Episode Id"},"step_count":{"default":0,"description":"Number of steps taken in the current episode","minimum":0,"title":"Step Count","type":"integer"}},"title":"State","type":"object"})
}

fn main() -> ExitCode {
    let manifest = Manifest::new("echo_env", "EchoEnvironment environment")
        .metadata_name("EchoEnvironment")
        .mcp()
        .default_max_sessions(8)
        .state_schema(state_schema());
    envtorch_sdk::serve(manifest, || Ok(EchoEnv::new()))
}

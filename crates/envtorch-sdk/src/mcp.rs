//! MCP tools for environments that expose them.
//!
//! An MCP environment (like the reference echo env) offers named tools. Clients reach them two
//! ways, and both are served from one [`ToolProvider`]:
//! - as steps: actions `{"type":"list_tools"}` and
//!   `{"type":"call_tool","tool_name":…,"arguments":{…}}` ([`McpAction`]), answered with an
//!   [`McpObservation`]; tool failures are reported inside the observation;
//! - as JSON-RPC `tools/list` / `tools/call` on `/mcp`, which are not steps.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::{Map, Value, json};

use envtorch_wire::ValidationIssue;
use envtorch_wire::issue::render_validation_text;

use crate::action::Action;

/// A tool's description.
#[derive(Debug, Clone)]
pub struct Tool {
    /// The tool name.
    pub name: String,
    /// What it does (shown to agents).
    pub description: String,
    /// JSON Schema of its arguments object.
    pub input_schema: Value,
    /// JSON Schema of its result, if declared.
    pub output_schema: Option<Value>,
}

/// What a tool returned. Strings and objects are wrapped differently by MCP, so the
/// difference is kept.
#[derive(Debug, Clone)]
pub enum ToolOutput {
    /// A string result.
    Text(String),
    /// A structured (JSON) result.
    Json(Value),
}

/// The error categories of the OpenEnv `ToolError`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolErrorType {
    /// The tool raised.
    ExecutionError,
    /// The arguments did not validate.
    InvalidArgs,
    /// Transport failure.
    TransportError,
    /// No tool of that name.
    ToolNotFound,
    /// The tool took too long.
    Timeout,
}

impl ToolErrorType {
    fn as_str(self) -> &'static str {
        match self {
            ToolErrorType::ExecutionError => "execution_error",
            ToolErrorType::InvalidArgs => "invalid_args",
            ToolErrorType::TransportError => "transport_error",
            ToolErrorType::ToolNotFound => "tool_not_found",
            ToolErrorType::Timeout => "timeout",
        }
    }
}

/// A tool failure.
#[derive(Debug, Clone)]
pub struct ToolError {
    /// The category.
    pub kind: ToolErrorType,
    /// The message.
    pub message: String,
}

impl ToolError {
    /// A tool error of `kind`.
    pub fn new(kind: ToolErrorType, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// A set of tools. Implemented by the environment (tools usually need its state).
pub trait ToolProvider {
    /// The tools, in a stable order. Called on every tool call (to validate arguments), so
    /// build the list once and return it from a field or a `static`.
    fn list_tools(&self) -> &[Tool];

    /// Runs tool `name`. Arguments were already validated against its `input_schema` by
    /// [`call_tool`].
    fn call_tool(
        &mut self,
        name: &str,
        arguments: &Map<String, Value>,
    ) -> Result<ToolOutput, ToolError>;
}

/// Validates arguments, then calls the tool; the one path for both steps and `/mcp`.
pub fn call_tool(
    provider: &mut dyn ToolProvider,
    name: &str,
    arguments: &Map<String, Value>,
) -> Result<ToolOutput, ToolError> {
    let Some(tool) = provider.list_tools().iter().find(|t| t.name == name) else {
        return Err(ToolError::new(
            ToolErrorType::ToolNotFound,
            format!("Unknown tool: '{name}'"),
        ));
    };
    let args = Value::Object(arguments.clone());
    let issues = crate::validate::validate(&tool.input_schema, &args);
    if !issues.is_empty() {
        let issues: Vec<ValidationIssue> = issues.into_iter().map(as_argument_issue).collect();
        return Err(ToolError::new(
            ToolErrorType::InvalidArgs,
            render_validation_text(&format!("call[{name}]"), &issues),
        ));
    }
    provider.call_tool(name, arguments)
}

/// Function-call validation words, as pydantic's `validate_call` reports them.
fn as_argument_issue(mut issue: ValidationIssue) -> ValidationIssue {
    match issue.kind.as_str() {
        "missing" => {
            issue.kind = "missing_argument".into();
            issue.msg = "Missing required argument".into();
        }
        "extra_forbidden" => {
            issue.kind = "unexpected_keyword_argument".into();
            issue.msg = "Unexpected keyword argument".into();
        }
        _ => {}
    }
    issue
}

/// The MCP `CallToolResult` for a tool output, as `/mcp` and the step path return it.
pub fn call_tool_result(output: &ToolOutput) -> Value {
    match output {
        ToolOutput::Text(text) => json!({
            "content": [{"type": "text", "text": text, "annotations": null, "meta": null}],
            "structured_content": {"result": text},
            "meta": {"fastmcp": {"wrap_result": true}},
            "data": text,
            "is_error": false,
        }),
        ToolOutput::Json(value) => json!({
            "content": [{"type": "text", "text": value.to_string(), "annotations": null, "meta": null}],
            "structured_content": value,
            "meta": null,
            "data": value,
            "is_error": false,
        }),
    }
}

/// The `tools/list` result over `/mcp` (MCP's camelCase tool objects).
pub fn list_tools_result(tools: &[Tool]) -> Value {
    let tools: Vec<Value> = tools
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "title": null,
                "description": t.description,
                "inputSchema": t.input_schema,
                "outputSchema": t.output_schema,
                "icons": null,
                "annotations": null,
                "meta": {"fastmcp": {"tags": []}},
                "execution": null,
            })
        })
        .collect();
    json!({ "tools": tools })
}

/// An MCP action, dispatched on `type` like the reference's `deserialize_action`.
#[derive(Debug, Clone)]
pub enum McpAction {
    /// `{"type":"list_tools"}`.
    ListTools,
    /// `{"type":"call_tool","tool_name":…,"arguments":{…}}`; `type` may be omitted.
    CallTool {
        /// The tool to call.
        tool_name: String,
        /// Its arguments.
        arguments: Map<String, Value>,
    },
}

fn list_tools_action_schema() -> &'static Value {
    static SCHEMA: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(|| json!({"additionalProperties":false,"description":"Request list of available tools from the environment.\n\nThis action triggers MCP's tools/list operation and returns\nall available tools with their schemas.","properties":{"metadata":{"additionalProperties":true,"description":"Additional metadata for the action","title":"Metadata","type":"object"},"type":{"const":"list_tools","default":"list_tools","description":"Action type discriminator","title":"Type","type":"string"}},"title":"ListToolsAction","type":"object"}))
}

impl Action for McpAction {
    /// The reference echo schema: `CallToolAction`.
    fn schema() -> Value {
        json!({"additionalProperties":false,"description":"Call a specific tool via MCP.\n\nThis action triggers MCP's tools/call operation with the\nspecified tool name and arguments.","properties":{"metadata":{"additionalProperties":true,"description":"Additional metadata for the action","title":"Metadata","type":"object"},"type":{"const":"call_tool","default":"call_tool","description":"Action type discriminator","title":"Type","type":"string"},"tool_name":{"description":"Name of the tool to call","title":"Tool Name","type":"string"},"arguments":{"additionalProperties":true,"description":"Arguments to pass to the tool","title":"Arguments","type":"object"}},"required":["tool_name"],"title":"CallToolAction","type":"object"})
    }

    fn parse(value: Value, schema: &Value) -> Result<Self, Vec<ValidationIssue>> {
        let is_list = value.get("type").and_then(Value::as_str) == Some("list_tools");
        let schema = if is_list {
            list_tools_action_schema()
        } else {
            schema
        };
        let issues = crate::validate::validate(schema, &value);
        if !issues.is_empty() {
            return Err(issues.into_iter().map(ValidationIssue::with_url).collect());
        }
        if is_list {
            return Ok(McpAction::ListTools);
        }
        let tool_name = value
            .get("tool_name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let arguments = value
            .get("arguments")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        Ok(McpAction::CallTool {
            tool_name,
            arguments,
        })
    }
}

/// The observation of an MCP step.
#[derive(Debug, Clone)]
pub enum McpObservation {
    /// `{}`: what an MCP environment's reset returns (its metadata travels beside it).
    Empty,
    /// `{"tools":[{"name","description","input_schema"}]}`.
    ListTools(Vec<Tool>),
    /// `{"tool_name","result","error"}`.
    CallTool {
        /// The tool that was called.
        tool_name: String,
        /// The `CallToolResult`, or `None` on error.
        result: Option<Value>,
        /// The failure, if any.
        error: Option<ToolError>,
    },
}

/// Runs an MCP action against a provider: the whole step of an MCP environment.
pub fn step(provider: &mut dyn ToolProvider, action: McpAction) -> McpObservation {
    match action {
        McpAction::ListTools => McpObservation::ListTools(provider.list_tools().to_vec()),
        McpAction::CallTool {
            tool_name,
            arguments,
        } => match call_tool(provider, &tool_name, &arguments) {
            Ok(output) => McpObservation::CallTool {
                tool_name,
                result: Some(call_tool_result(&output)),
                error: None,
            },
            Err(error) => McpObservation::CallTool {
                tool_name,
                result: None,
                error: Some(error),
            },
        },
    }
}

impl Serialize for McpObservation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            McpObservation::Empty => s.serialize_map(Some(0))?.end(),
            McpObservation::ListTools(tools) => {
                let tools: Vec<Value> = tools
                    .iter()
                    .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.input_schema}))
                    .collect();
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("tools", &tools)?;
                m.end()
            }
            McpObservation::CallTool {
                tool_name,
                result,
                error,
            } => {
                let mut m = s.serialize_map(Some(3))?;
                m.serialize_entry("tool_name", tool_name)?;
                m.serialize_entry("result", result)?;
                let error = error
                    .as_ref()
                    .map(|e| json!({"error_type": e.kind.as_str(), "message": e.message}));
                m.serialize_entry("error", &error)?;
                m.end()
            }
        }
    }
}

impl JsonSchema for McpObservation {
    fn schema_name() -> Cow<'static, str> {
        "CallToolObservation".into()
    }

    /// The reference echo observation schema, verbatim.
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let value = json!({"$defs":{"ToolError":{"additionalProperties":false,"description":"Structured error for tool execution failures.\n\nThis is used for transport/framework errors, NOT for errors returned\nby the tool itself (those go in the result field).","properties":{"error_type":{"$ref":"#/$defs/ToolErrorType","description":"Category of the error"},"message":{"description":"Human-readable error message","title":"Message","type":"string"}},"required":["error_type","message"],"title":"ToolError","type":"object"},"ToolErrorType":{"description":"Types of errors that can occur during tool execution.","enum":["execution_error","invalid_args","transport_error","tool_not_found","timeout"],"title":"ToolErrorType","type":"string"}},"additionalProperties":false,"description":"Response from tool execution.\n\nContains the tool's result or an error if the call failed.\nTool-specific errors (from the tool itself) are included in the result.\nTransport/framework errors use the error field.","properties":{"done":{"default":false,"description":"Whether the episode has terminated","title":"Done","type":"boolean"},"reward":{"anyOf":[{"type":"boolean"},{"type":"integer"},{"type":"number"},{"type":"null"}],"default":null,"description":"Reward signal from the last action","title":"Reward"},"metadata":{"additionalProperties":true,"description":"Additional metadata for the observation","title":"Metadata","type":"object"},"tool_name":{"description":"Name of the tool that was called","title":"Tool Name","type":"string"},"result":{"default":null,"description":"Tool-specific result (may include tool errors)","title":"Result"},"error":{"anyOf":[{"$ref":"#/$defs/ToolError"},{"type":"null"}],"default":null,"description":"Transport/framework error if call failed"}},"required":["tool_name"],"title":"CallToolObservation","type":"object"});
        Schema::try_from(value).unwrap_or_default()
    }
}

//! How actions are described and parsed.
//!
//! The reference validates actions with pydantic (`extra="forbid"`), and clients see its
//! issue lists. [`Action`] gives every action type a JSON Schema and a parser that reports
//! issues in that shape. Any `Deserialize + JsonSchema` type is an action; MCP actions
//! ([`McpAction`](crate::mcp::McpAction)) have their own dispatch on `type`.

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

use envtorch_wire::ValidationIssue;

/// An action type: its schema, and validation of a JSON value into it.
pub trait Action: Sized + Send {
    /// The action's JSON Schema as `/schema` shows it (with the optional `metadata` object
    /// every OpenEnv action accepts).
    fn schema() -> Value;

    /// Validates and converts `value`. `schema` is [`Action::schema`], computed once by the
    /// caller. Issues carry pydantic's `url`.
    fn parse(value: Value, schema: &Value) -> Result<Self, Vec<ValidationIssue>>;
}

impl<T: DeserializeOwned + JsonSchema + Send> Action for T {
    fn schema() -> Value {
        crate::schema::action_schema::<T>()
    }

    fn parse(value: Value, schema: &Value) -> Result<Self, Vec<ValidationIssue>> {
        parse_with_schema(value, schema)
    }
}

/// Validates `value` against `schema`, drops the action `metadata` (the reference validates
/// it as an object and ignores it), then deserializes.
pub fn parse_with_schema<T: DeserializeOwned>(
    mut value: Value,
    schema: &Value,
) -> Result<T, Vec<ValidationIssue>> {
    let issues = crate::validate::validate(schema, &value);
    if !issues.is_empty() {
        return Err(issues.into_iter().map(ValidationIssue::with_url).collect());
    }
    if let Value::Object(map) = &mut value {
        map.remove("metadata");
    }
    serde_json::from_value(value.clone()).map_err(|e| {
        vec![
            ValidationIssue::new(
                "value_error",
                Vec::new(),
                format!("Value error, {e}"),
                value,
            )
            .with_url(),
        ]
    })
}

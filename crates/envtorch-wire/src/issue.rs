//! Pydantic-shaped validation issues.
//!
//! The reference reports validation failures as pydantic's `e.errors()` list, e.g.
//! `{"type":"missing","loc":["tool_name"],"msg":"Field required","input":{…},"url":"https://errors.pydantic.dev/2.14/v/missing"}`.
//! Clients show these to people and some tests compare them, so both the server (message
//! shapes, HTTP request fields) and the SDK (actions) build them with this one type.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The documentation URL prefix pydantic 2.14 puts in `url`.
pub const PYDANTIC_URL_PREFIX: &str = "https://errors.pydantic.dev/2.14/v/";

/// One element of a `loc` path: an object key or an array index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Loc {
    /// An object key.
    Key(String),
    /// An array index (or, for JSON syntax errors, a character position).
    Index(u64),
}

impl From<&str> for Loc {
    fn from(key: &str) -> Self {
        Loc::Key(key.to_owned())
    }
}

impl From<String> for Loc {
    fn from(key: String) -> Self {
        Loc::Key(key)
    }
}

impl From<usize> for Loc {
    fn from(index: usize) -> Self {
        Loc::Index(index as u64)
    }
}

/// One validation failure, serialized with pydantic's key order: `type, loc, msg, input, ctx, url`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationIssue {
    /// Pydantic's error type, e.g. `missing`, `extra_forbidden`, `dict_type`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Where in the input the failure is.
    pub loc: Vec<Loc>,
    /// The human-readable message, in pydantic's words.
    pub msg: String,
    /// The offending input value.
    pub input: Value,
    /// Extra context, e.g. `{"ge":0}`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ctx: Option<Value>,
    /// pydantic's documentation link; present on model-level errors, absent on FastAPI
    /// request-body errors.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub url: Option<String>,
}

impl ValidationIssue {
    /// An issue of pydantic type `kind` at `loc`.
    pub fn new(kind: &str, loc: Vec<Loc>, msg: impl Into<String>, input: Value) -> Self {
        Self {
            kind: kind.to_owned(),
            loc,
            msg: msg.into(),
            input,
            ctx: None,
            url: None,
        }
    }

    /// `missing`: a required field is absent. `input` is the enclosing object.
    pub fn missing(loc: Vec<Loc>, input: Value) -> Self {
        Self::new("missing", loc, "Field required", input)
    }

    /// `extra_forbidden`: a key the model does not declare.
    pub fn extra_forbidden(loc: Vec<Loc>, input: Value) -> Self {
        Self::new(
            "extra_forbidden",
            loc,
            "Extra inputs are not permitted",
            input,
        )
    }

    /// `dict_type`: an object was expected.
    pub fn dict_type(loc: Vec<Loc>, input: Value) -> Self {
        Self::new(
            "dict_type",
            loc,
            "Input should be a valid dictionary",
            input,
        )
    }

    /// The pydantic issue for a value of the wrong JSON type, by the expected JSON Schema type.
    pub fn wrong_type(expected: &str, loc: Vec<Loc>, input: Value) -> Self {
        let (kind, msg) = match expected {
            "string" => ("string_type", "Input should be a valid string"),
            "integer" => ("int_type", "Input should be a valid integer"),
            "number" => ("float_type", "Input should be a valid number"),
            "boolean" => ("bool_type", "Input should be a valid boolean"),
            "array" => ("list_type", "Input should be a valid list"),
            "object" => ("dict_type", "Input should be a valid dictionary"),
            "null" => ("none_required", "Input should be None"),
            _ => ("type_error", "Input has the wrong type"),
        };
        Self::new(kind, loc, msg, input)
    }

    /// Sets `ctx`.
    pub fn with_ctx(mut self, ctx: Value) -> Self {
        self.ctx = Some(ctx);
        self
    }

    /// Adds pydantic's documentation `url`, as model-level (not request-level) errors carry.
    pub fn with_url(mut self) -> Self {
        self.url = Some(format!("{PYDANTIC_URL_PREFIX}{}", self.kind));
        self
    }
}

/// Renders issues the way `str(pydantic.ValidationError)` does, e.g. for MCP tool errors:
/// `1 validation error for call[echo_message]\nmessage\n  Missing required argument [type=missing_argument, input_value={}, input_type=dict]`.
pub fn render_validation_text(title: &str, issues: &[ValidationIssue]) -> String {
    let n = issues.len();
    let mut out = format!(
        "{n} validation error{} for {title}",
        if n == 1 { "" } else { "s" }
    );
    for issue in issues {
        let loc = issue
            .loc
            .iter()
            .map(|l| match l {
                Loc::Key(k) => k.clone(),
                Loc::Index(i) => i.to_string(),
            })
            .collect::<Vec<_>>()
            .join(".");
        out.push('\n');
        out.push_str(&loc);
        out.push_str("\n  ");
        out.push_str(&issue.msg);
        out.push_str(&format!(
            " [type={}, input_value={}, input_type={}]",
            issue.kind,
            crate::pyjson::py_repr(&issue.input),
            crate::pyjson::py_type_name(&issue.input)
        ));
        out.push_str(&format!(
            "\n    For further information visit {PYDANTIC_URL_PREFIX}{}",
            issue.kind
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn serializes_in_pydantic_key_order() {
        let issue =
            ValidationIssue::missing(vec!["tool_name".into()], json!({"message":"hi"})).with_url();
        assert_eq!(
            serde_json::to_string(&issue).unwrap(),
            r#"{"type":"missing","loc":["tool_name"],"msg":"Field required","input":{"message":"hi"},"url":"https://errors.pydantic.dev/2.14/v/missing"}"#
        );
    }

    #[test]
    fn ctx_comes_before_url_and_indices_are_numbers() {
        let issue = ValidationIssue::new(
            "json_invalid",
            vec!["body".into(), 1usize.into()],
            "JSON decode error",
            json!({}),
        )
        .with_ctx(json!({"error":"Expecting value"}));
        assert_eq!(
            serde_json::to_string(&issue).unwrap(),
            r#"{"type":"json_invalid","loc":["body",1],"msg":"JSON decode error","input":{},"ctx":{"error":"Expecting value"}}"#
        );
    }
}

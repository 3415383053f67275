//! The `/ws` protocol: client messages, server frames, error codes.
//!
//! A client sends text frames holding one JSON object each: `reset`, `step`, `state`, `close`
//! or `mcp`. The server answers each with exactly one frame, in order (`close` gets none).
//! Errors are frames too, `{"type":"error","data":{"message","code",…}}`; some codes keep the
//! socket open and some close it with 1000 (see [`ErrorCode::closes_socket`]).

use serde_json::Value;
use serde_json::value::RawValue;

use crate::issue::ValidationIssue;
use crate::object::{NotAnObject, RawObject, is_object, raw_to_value};
use crate::pyjson::PyJsonError;

/// The `data.code` of an error frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The frame is not JSON. Socket stays open.
    InvalidJson,
    /// `type` is missing or unknown. Socket stays open.
    UnknownType,
    /// The message or the action is malformed. Socket stays open.
    ValidationError,
    /// The environment failed while handling the message. Socket stays open.
    ExecutionError,
    /// No session slot was free at connect. Socket is closed.
    CapacityReached,
    /// The environment could not be created. Socket is closed.
    FactoryError,
    /// Anything else that ends the session. Socket is closed.
    SessionError,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "INVALID_JSON",
            ErrorCode::UnknownType => "UNKNOWN_TYPE",
            ErrorCode::ValidationError => "VALIDATION_ERROR",
            ErrorCode::ExecutionError => "EXECUTION_ERROR",
            ErrorCode::CapacityReached => "CAPACITY_REACHED",
            ErrorCode::FactoryError => "FACTORY_ERROR",
            ErrorCode::SessionError => "SESSION_ERROR",
        }
    }

    /// Whether the server closes the socket (code 1000) after sending this error.
    pub fn closes_socket(self) -> bool {
        matches!(
            self,
            ErrorCode::CapacityReached | ErrorCode::FactoryError | ErrorCode::SessionError
        )
    }
}

/// Renders `{"type":"error","data":{"message":…,"code":…,<extra>}}`.
///
/// `extra` holds additional `data` keys in order (e.g. `errors`, `active_sessions`).
pub fn error_frame(code: ErrorCode, message: &str, extra: &[(&str, Value)]) -> String {
    let mut data = serde_json::Map::new();
    data.insert("message".into(), Value::String(message.to_owned()));
    data.insert("code".into(), Value::String(code.as_str().to_owned()));
    for (k, v) in extra {
        data.insert((*k).to_owned(), v.clone());
    }
    let mut frame = serde_json::Map::new();
    frame.insert("type".into(), Value::String("error".into()));
    frame.insert("data".into(), Value::Object(data));
    Value::Object(frame).to_string()
}

/// A `VALIDATION_ERROR` frame carrying pydantic-shaped `errors`.
pub fn validation_error_frame(issues: &[ValidationIssue]) -> String {
    let errors = serde_json::to_value(issues).unwrap_or(Value::Array(Vec::new()));
    error_frame(
        ErrorCode::ValidationError,
        "Invalid message",
        &[("errors", errors)],
    )
}

/// A `VALIDATION_ERROR` frame whose `errors` list is already serialized (from a worker).
pub fn validation_error_frame_raw(errors: &RawValue) -> String {
    format!(
        r#"{{"type":"error","data":{{"message":"Invalid message","code":"VALIDATION_ERROR","errors":{}}}}}"#,
        errors.get()
    )
}

/// Wraps an already-serialized payload: `{"type":<kind>,"data":<data>}`.
pub fn data_frame(kind: &str, data: &str) -> String {
    let mut out = String::with_capacity(data.len() + kind.len() + 20);
    out.push_str(r#"{"type":""#);
    out.push_str(kind);
    out.push_str(r#"","data":"#);
    out.push_str(data);
    out.push('}');
    out
}

/// A parsed client message. Payloads stay raw: they go to the environment as they came.
#[derive(Debug)]
pub enum ClientMessage<'a> {
    /// `{"type":"reset","data"?:{…}}`; `None` means no `data` (same as `{}`).
    Reset(Option<&'a RawValue>),
    /// `{"type":"step","data":{…action…}}`.
    Step(&'a RawValue),
    /// `{"type":"state"}`.
    State,
    /// `{"type":"close"}`.
    Close,
    /// `{"type":"mcp","data":{JSON-RPC request}}`.
    Mcp(&'a RawValue),
}

/// Why a frame is not a valid [`ClientMessage`], with the reply the reference gives.
#[derive(Debug)]
pub enum MessageError {
    /// Not JSON: `INVALID_JSON`, socket stays open.
    InvalidJson(String),
    /// JSON but not an object: `SESSION_ERROR`, socket closes.
    NotAnObject(String),
    /// `type` missing or unknown: `UNKNOWN_TYPE`.
    UnknownType(String),
    /// Shape errors: `VALIDATION_ERROR` with these issues.
    Invalid(Vec<ValidationIssue>),
}

impl MessageError {
    /// The error frame to send back, and whether the socket must then be closed.
    pub fn to_frame(&self) -> (String, bool) {
        match self {
            MessageError::InvalidJson(m) => (error_frame(ErrorCode::InvalidJson, m, &[]), false),
            MessageError::NotAnObject(m) => (error_frame(ErrorCode::SessionError, m, &[]), true),
            MessageError::UnknownType(m) => (error_frame(ErrorCode::UnknownType, m, &[]), false),
            MessageError::Invalid(issues) => (validation_error_frame(issues), false),
        }
    }
}

impl<'a> ClientMessage<'a> {
    /// Parses and validates one text frame as the reference does (pydantic models with
    /// `extra="forbid"`, `data` required for step/mcp and forbidden for state/close).
    pub fn parse(text: &'a str) -> Result<Self, MessageError> {
        let obj = match RawObject::parse(text) {
            Ok(obj) => obj,
            Err(NotAnObject::Syntax(e)) => {
                return Err(MessageError::InvalidJson(format!(
                    "Invalid JSON: {}",
                    PyJsonError::from_serde(&e, text)
                )));
            }
            Err(NotAnObject::OtherValue(py_type)) => {
                return Err(MessageError::NotAnObject(format!(
                    "'{py_type}' object has no attribute 'get'"
                )));
            }
            Err(NotAnObject::TooDeep) => {
                return Err(MessageError::NotAnObject(
                    "maximum recursion depth exceeded while decoding a JSON document".to_owned(),
                ));
            }
        };
        let kind = match obj.get("type") {
            None => String::new(),
            Some(raw) => match serde_json::from_str::<String>(raw.get()) {
                Ok(s) => s,
                Err(_) => crate::pyjson::py_repr(&raw_to_value(raw))
                    .trim_matches('\'')
                    .to_owned(),
            },
        };
        let data = obj.get("data");
        let (allowed, data_rule): (&[&str], DataRule) = match kind.as_str() {
            "reset" => (&["type", "data"], DataRule::Optional),
            "step" | "mcp" => (&["type", "data"], DataRule::Required),
            "state" | "close" => (&["type"], DataRule::Forbidden),
            _ => {
                return Err(MessageError::UnknownType(format!(
                    "Unknown message type: {kind}"
                )));
            }
        };
        let mut issues = Vec::new();
        match (data_rule, data) {
            (DataRule::Required, None) => {
                issues
                    .push(ValidationIssue::missing(vec!["data".into()], obj.to_value()).with_url());
            }
            (DataRule::Required | DataRule::Optional, Some(d)) if !is_object(d) => {
                issues.push(
                    ValidationIssue::dict_type(vec!["data".into()], raw_to_value(d)).with_url(),
                );
            }
            _ => {}
        }
        for (key, value) in obj.extra_keys(allowed) {
            issues.push(
                ValidationIssue::extra_forbidden(vec![key.into()], raw_to_value(value)).with_url(),
            );
        }
        if !issues.is_empty() {
            return Err(MessageError::Invalid(issues));
        }
        Ok(match kind.as_str() {
            "reset" => ClientMessage::Reset(data),
            "step" => ClientMessage::Step(data.ok_or_else(|| MessageError::Invalid(Vec::new()))?),
            "mcp" => ClientMessage::Mcp(data.ok_or_else(|| MessageError::Invalid(Vec::new()))?),
            "state" => ClientMessage::State,
            _ => ClientMessage::Close,
        })
    }
}

#[derive(Clone, Copy)]
enum DataRule {
    Optional,
    Required,
    Forbidden,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(text: &str) -> (String, bool) {
        ClientMessage::parse(text).unwrap_err().to_frame()
    }

    #[test]
    fn reference_error_frames_byte_for_byte() {
        assert_eq!(
            reply("{not json").0,
            r#"{"type":"error","data":{"message":"Invalid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)","code":"INVALID_JSON"}}"#
        );
        assert_eq!(
            reply(r#"{"type": "bogus"}"#).0,
            r#"{"type":"error","data":{"message":"Unknown message type: bogus","code":"UNKNOWN_TYPE"}}"#
        );
        assert_eq!(
            reply(r#"{"data": {}}"#).0,
            r#"{"type":"error","data":{"message":"Unknown message type: ","code":"UNKNOWN_TYPE"}}"#
        );
        assert_eq!(
            reply(r#"{"type": "step"}"#).0,
            r#"{"type":"error","data":{"message":"Invalid message","code":"VALIDATION_ERROR","errors":[{"type":"missing","loc":["data"],"msg":"Field required","input":{"type":"step"},"url":"https://errors.pydantic.dev/2.14/v/missing"}]}}"#
        );
        assert_eq!(
            reply(r#"{"type": "reset", "data": {}, "extra": 1}"#).0,
            r#"{"type":"error","data":{"message":"Invalid message","code":"VALIDATION_ERROR","errors":[{"type":"extra_forbidden","loc":["extra"],"msg":"Extra inputs are not permitted","input":1,"url":"https://errors.pydantic.dev/2.14/v/extra_forbidden"}]}}"#
        );
        assert_eq!(
            reply(r#"{"type": "state", "data": {}}"#).0,
            r#"{"type":"error","data":{"message":"Invalid message","code":"VALIDATION_ERROR","errors":[{"type":"extra_forbidden","loc":["data"],"msg":"Extra inputs are not permitted","input":{},"url":"https://errors.pydantic.dev/2.14/v/extra_forbidden"}]}}"#
        );
        assert_eq!(
            reply(r#"{"type": "reset", "data": "notadict"}"#).0,
            r#"{"type":"error","data":{"message":"Invalid message","code":"VALIDATION_ERROR","errors":[{"type":"dict_type","loc":["data"],"msg":"Input should be a valid dictionary","input":"notadict","url":"https://errors.pydantic.dev/2.14/v/dict_type"}]}}"#
        );
    }

    #[test]
    fn non_objects_close_the_session() {
        let (frame, closes) = reply("[1,2]");
        assert!(closes);
        assert_eq!(
            frame,
            r#"{"type":"error","data":{"message":"'list' object has no attribute 'get'","code":"SESSION_ERROR"}}"#
        );
        assert!(reply("null").1);
        assert!(!reply("{bad").1);
    }

    #[test]
    fn valid_messages_keep_raw_payloads() {
        match ClientMessage::parse(
            r#"{"type": "step", "data": {"type": "call_tool", "tool_name": "x"}}"#,
        )
        .unwrap()
        {
            ClientMessage::Step(d) => {
                assert_eq!(d.get(), r#"{"type": "call_tool", "tool_name": "x"}"#);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            ClientMessage::parse(r#"{"type":"reset"}"#).unwrap(),
            ClientMessage::Reset(None)
        ));
        assert!(matches!(
            ClientMessage::parse(r#"{"type":"close"}"#).unwrap(),
            ClientMessage::Close
        ));
    }
}

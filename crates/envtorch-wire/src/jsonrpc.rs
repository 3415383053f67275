//! The JSON-RPC 2.0 subset served on `POST /mcp`, `WS /mcp` and `/ws` `type:"mcp"`.
//!
//! Requests are `{"jsonrpc":"2.0","method":str,"params"?:object,"id"?:str|int|null}` with no
//! other keys. Every request gets a response, even without an id. Error codes follow the
//! reference: -32700 parse error, -32600 invalid request, -32601 unknown method, -32602 bad
//! params, -32603 internal/tool error, -32000 server (capacity, factory) errors.

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::issue::{ValidationIssue, render_validation_text};
use crate::object::{NotAnObject, RawObject, is_object, raw_to_value};
use crate::pyjson::PyJsonError;

/// JSON-RPC parse error.
pub const PARSE_ERROR: i64 = -32700;
/// The request object is not a valid request.
pub const INVALID_REQUEST: i64 = -32600;
/// Unknown method.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Bad or missing parameters, unknown session id.
pub const INVALID_PARAMS: i64 = -32602;
/// Internal error; also what tool failures map to.
pub const INTERNAL_ERROR: i64 = -32603;
/// Server error: capacity reached, environment creation failed.
pub const SERVER_ERROR: i64 = -32000;

/// A validated request; `params` stays raw.
#[derive(Debug)]
pub struct Request<'a> {
    /// The method name, e.g. `tools/call`.
    pub method: String,
    /// The params object (`{}` when absent).
    pub params: Option<&'a RawValue>,
    /// The request id, echoed in the response (`null` when absent).
    pub id: Value,
}

/// A JSON-RPC error, rendered as `{"code","message","data"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// The error code.
    pub code: i64,
    /// The message.
    pub message: String,
    /// Extra data; `null` when there is none (the key is always present).
    pub data: Value,
}

impl RpcError {
    /// An error without data.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: Value::Null,
        }
    }

    /// Sets `data`.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = data;
        self
    }
}

/// Why a text could not become a [`Request`]: the error and the id to answer with.
#[derive(Debug)]
pub struct RequestError {
    /// The id to echo (`null` when the request was not understood).
    pub id: Value,
    /// The error to send.
    pub error: RpcError,
}

impl<'a> Request<'a> {
    /// Parses a request. `detailed_parse_error` adds Python's decoder message to -32700, as
    /// `WS /mcp` does (`POST /mcp` says only `Parse error`).
    pub fn parse(text: &'a str, detailed_parse_error: bool) -> Result<Self, RequestError> {
        let obj = match RawObject::parse(text) {
            Ok(obj) => obj,
            Err(NotAnObject::Syntax(e)) => {
                let message = if detailed_parse_error {
                    format!("Parse error: {}", PyJsonError::from_serde(&e, text))
                } else {
                    "Parse error".to_owned()
                };
                return Err(RequestError {
                    id: Value::Null,
                    error: RpcError::new(PARSE_ERROR, message),
                });
            }
            // The reference answers any body that is not a JSON object with -32700.
            Err(NotAnObject::OtherValue(_) | NotAnObject::TooDeep) => {
                return Err(RequestError {
                    id: Value::Null,
                    error: RpcError::new(PARSE_ERROR, "Parse error"),
                });
            }
        };
        Self::from_object(&obj)
    }

    /// Validates an already-parsed object (the `data` of a `/ws` `mcp` message).
    pub fn from_object(obj: &RawObject<'a>) -> Result<Self, RequestError> {
        let mut issues = Vec::new();
        match obj.get("jsonrpc") {
            None => issues.push(ValidationIssue::missing(
                vec!["jsonrpc".into()],
                obj.to_value(),
            )),
            Some(v) if v.get() != "\"2.0\"" => issues.push(
                ValidationIssue::new(
                    "literal_error",
                    vec!["jsonrpc".into()],
                    "Input should be '2.0'",
                    raw_to_value(v),
                )
                .with_ctx(json!({"expected": "'2.0'"})),
            ),
            Some(_) => {}
        }
        let method = match obj.get("method") {
            None => {
                issues.push(ValidationIssue::missing(
                    vec!["method".into()],
                    obj.to_value(),
                ));
                String::new()
            }
            Some(v) => match serde_json::from_str::<String>(v.get()) {
                Ok(m) => m,
                Err(_) => {
                    issues.push(ValidationIssue::wrong_type(
                        "string",
                        vec!["method".into()],
                        raw_to_value(v),
                    ));
                    String::new()
                }
            },
        };
        let params = obj.get("params").filter(|p| p.get() != "null");
        if let Some(p) = params {
            if !is_object(p) {
                issues.push(ValidationIssue::dict_type(
                    vec!["params".into()],
                    raw_to_value(p),
                ));
            }
        }
        let id = match obj.get("id") {
            None => Value::Null,
            Some(v) => {
                let value = raw_to_value(v);
                let ok = matches!(&value, Value::Null | Value::String(_))
                    || value.as_i64().is_some()
                    || value.as_u64().is_some();
                if !ok {
                    issues.push(ValidationIssue::new(
                        "union_type",
                        vec!["id".into()],
                        "Input should be a valid string or integer",
                        value,
                    ));
                    Value::Null
                } else {
                    value
                }
            }
        };
        for (key, value) in obj.extra_keys(&["jsonrpc", "method", "params", "id"]) {
            issues.push(ValidationIssue::extra_forbidden(
                vec![key.into()],
                raw_to_value(value),
            ));
        }
        if !issues.is_empty() {
            return Err(invalid(&issues));
        }
        Ok(Request { method, params, id })
    }
}

fn invalid(issues: &[ValidationIssue]) -> RequestError {
    RequestError {
        id: Value::Null,
        error: RpcError::new(
            INVALID_REQUEST,
            format!(
                "Invalid request: {}",
                render_validation_text("JsonRpcRequest", issues)
            ),
        ),
    }
}

/// `{"jsonrpc":"2.0","id":…,"result":…}` with an already-serialized result.
pub fn result_response(id: &Value, result: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#)
}

/// `{"jsonrpc":"2.0","id":…,"error":{"code","message","data"}}`.
pub fn error_response(id: &Value, error: &RpcError) -> String {
    #[derive(Serialize)]
    struct Err<'e> {
        code: i64,
        message: &'e str,
        data: &'e Value,
    }
    let body = serde_json::to_string(&Err {
        code: error.code,
        message: &error.message,
        data: &error.data,
    })
    .unwrap_or_else(|_| "null".to_owned());
    format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{body}}}"#)
}

/// Re-serializes compact JSON the way Python's `json.dumps` writes it (`", "`, `": "`,
/// non-ASCII escaped), which is what `WS /mcp` frames look like in the reference.
pub fn python_dumps(compact: &str) -> String {
    let Ok(value) = serde_json::from_str::<Value>(compact) else {
        return compact.to_owned();
    };
    let mut out = Vec::with_capacity(compact.len() + compact.len() / 4);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PyFormatter);
    if value.serialize(&mut ser).is_err() {
        return compact.to_owned();
    }
    String::from_utf8(out).unwrap_or_else(|_| compact.to_owned())
}

struct PyFormatter;

impl serde_json::ser::Formatter for PyFormatter {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
    fn write_f64<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        value: f64,
    ) -> std::io::Result<()> {
        w.write_all(crate::pyjson::py_float_repr(value).as_bytes())
    }
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        for c in fragment.chars() {
            if c.is_ascii() {
                w.write_all(&[c as u8])?;
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(w, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_error_and_invalid_request() {
        let e = Request::parse("{oops", false).unwrap_err();
        assert_eq!(
            error_response(&e.id, &e.error),
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error","data":null}}"#
        );
        let e = Request::parse("{}", false).unwrap_err();
        assert_eq!(e.error.code, INVALID_REQUEST);
        assert!(e.error.message.starts_with("Invalid request: 2 validation errors for JsonRpcRequest\njsonrpc\n  Field required [type=missing"), "{}", e.error.message);
    }

    #[test]
    fn accepts_requests_without_params_or_id() {
        let r = Request::parse(r#"{"jsonrpc":"2.0","method":"tools/list"}"#, false).unwrap();
        assert_eq!(r.method, "tools/list");
        assert!(r.params.is_none());
        assert_eq!(r.id, Value::Null);
    }

    #[test]
    fn python_spacing() {
        assert_eq!(
            python_dumps(r#"{"a":[1,2.5],"b":"é"}"#),
            r#"{"a": [1, 2.5], "b": "\u00e9"}"#
        );
    }
}

//! FastAPI-shaped HTTP bodies and request validation.
//!
//! The reference's HTTP errors are FastAPI's: `{"detail":"Not Found"}`,
//! `{"detail":"Method Not Allowed"}`, and 422 `{"detail":[issue, …]}` where request-level issues
//! have `loc` starting with `"body"` and no `url`. The request models are `ResetRequest`
//! (`seed`, `episode_id`, extras allowed) and `StepRequest` (`action`, `timeout_s`,
//! `request_id`, extras allowed); [`validate_reset`] and [`validate_step`] check them the way
//! pydantic's lax mode does.

use serde_json::{Map, Value, json};

use crate::issue::{Loc, ValidationIssue};
use crate::pyjson::PyJsonError;

/// `{"detail":"Not Found"}`.
pub const NOT_FOUND: &str = r#"{"detail":"Not Found"}"#;
/// `{"detail":"Method Not Allowed"}`.
pub const METHOD_NOT_ALLOWED: &str = r#"{"detail":"Method Not Allowed"}"#;
/// FastAPI's body for a body it could not decode at all (e.g. invalid UTF-8).
pub const BODY_PARSE_ERROR: &str = r#"{"detail":"There was an error parsing the body"}"#;

/// `{"detail":"<message>"}`.
pub fn detail(message: &str) -> String {
    json!({ "detail": message }).to_string()
}

/// A 422 body: `{"detail":[issues]}`.
pub fn validation_detail(issues: &[ValidationIssue]) -> String {
    json!({ "detail": issues }).to_string()
}

/// What a request body turned out to be.
#[derive(Debug)]
pub enum Body {
    /// No body at all.
    Empty,
    /// A JSON document (any type; the model decides what it accepts).
    Json(Value),
    /// A body sent with a non-JSON content type: FastAPI hands the model the raw text.
    Text(String),
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// 422 with this issue (JSON syntax error).
    Invalid(ValidationIssue),
    /// 400 [`BODY_PARSE_ERROR`] (undecodable bytes).
    Undecodable,
}

/// Reads a request body as FastAPI does: JSON when the content type is JSON or absent.
pub fn read_body(content_type: Option<&str>, bytes: &[u8]) -> Result<Body, BodyError> {
    if bytes.is_empty() {
        return Ok(Body::Empty);
    }
    let is_json = match content_type {
        None => true,
        Some(ct) => {
            let essence = ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            essence == "application/json"
                || (essence.starts_with("application/") && essence.ends_with("+json"))
        }
    };
    let text = std::str::from_utf8(bytes).map_err(|_| BodyError::Undecodable)?;
    if !is_json {
        return Ok(Body::Text(text.to_owned()));
    }
    match crate::object::parse_deep::<Value>(text) {
        Ok(v) => Ok(Body::Json(v)),
        // Python's decoder raises RecursionError, which FastAPI answers with a 400.
        Err(crate::object::DeepParseError::TooDeep) => Err(BodyError::Undecodable),
        Err(crate::object::DeepParseError::Json(e)) => {
            let py = PyJsonError::from_serde(&e, text);
            Err(BodyError::Invalid(
                ValidationIssue::new(
                    "json_invalid",
                    vec!["body".into(), Loc::Index(py.pos as u64)],
                    "JSON decode error",
                    json!({}),
                )
                .with_ctx(json!({ "error": py.msg })),
            ))
        }
    }
}

/// The body as a model input object, or the issue pydantic raises for a non-object.
fn model_object(body: Body, required: bool) -> Result<Map<String, Value>, Vec<ValidationIssue>> {
    match body {
        Body::Empty if required => Err(vec![ValidationIssue::missing(
            vec!["body".into()],
            Value::Null,
        )]),
        Body::Empty => Ok(Map::new()),
        Body::Json(Value::Object(map)) => Ok(map),
        Body::Json(other) => Err(vec![attributes_type(other)]),
        Body::Text(text) => Err(vec![attributes_type(Value::String(text))]),
    }
}

fn attributes_type(input: Value) -> ValidationIssue {
    ValidationIssue::new(
        "model_attributes_type",
        vec!["body".into()],
        "Input should be a valid dictionary or object to extract fields from",
        input,
    )
}

/// A validated `POST /reset` body: every key is forwarded to the environment.
pub type ResetBody = Map<String, Value>;

/// Validates a `ResetRequest`: `seed` int ≥ 0 or null, `episode_id` str ≤ 255 or null.
pub fn validate_reset(body: Body) -> Result<ResetBody, Vec<ValidationIssue>> {
    let mut map = model_object(body, false)?;
    let mut issues = Vec::new();
    if let Some(v) = map.get("seed").cloned() {
        match lax_int(&v, &["body", "seed"]) {
            Ok(Some(i)) if i < 0 => issues.push(
                ValidationIssue::new(
                    "greater_than_equal",
                    loc(&["body", "seed"]),
                    "Input should be greater than or equal to 0",
                    v,
                )
                .with_ctx(json!({"ge": 0})),
            ),
            Ok(Some(i)) => {
                map.insert("seed".into(), json!(i));
            }
            Ok(None) => {}
            Err(issue) => issues.push(issue),
        }
    }
    if let Some(v) = map.get("episode_id") {
        issues.extend(short_string(v, &["body", "episode_id"]));
    }
    if issues.is_empty() {
        Ok(map)
    } else {
        Err(issues)
    }
}

/// A validated `POST /step` body.
#[derive(Debug)]
pub struct StepBody {
    /// The action object, still to be validated by the environment.
    pub action: Map<String, Value>,
    /// The per-step timeout, when given.
    pub timeout_s: Option<f64>,
    /// Every other key (request_id, extras), forwarded to the environment.
    pub extra: Map<String, Value>,
}

/// Validates a `StepRequest`: `action` object (required), `timeout_s` > 0 or null,
/// `request_id` str ≤ 255 or null.
pub fn validate_step(body: Body) -> Result<StepBody, Vec<ValidationIssue>> {
    let mut map = model_object(body, true)?;
    let mut issues = Vec::new();
    let action = match map.remove("action") {
        None => {
            issues.push(ValidationIssue::missing(
                loc(&["body", "action"]),
                Value::Object(map.clone()),
            ));
            Map::new()
        }
        Some(Value::Object(a)) => a,
        Some(other) => {
            issues.push(ValidationIssue::dict_type(loc(&["body", "action"]), other));
            Map::new()
        }
    };
    let mut timeout_s = None;
    if let Some(v) = map.remove("timeout_s") {
        match lax_float(&v, &["body", "timeout_s"]) {
            Ok(Some(f)) if f <= 0.0 => issues.push(
                ValidationIssue::new(
                    "greater_than",
                    loc(&["body", "timeout_s"]),
                    "Input should be greater than 0",
                    v,
                )
                .with_ctx(json!({"gt": 0.0})),
            ),
            Ok(f) => timeout_s = f,
            Err(issue) => issues.push(issue),
        }
    }
    if let Some(v) = map.get("request_id") {
        issues.extend(short_string(v, &["body", "request_id"]));
    }
    if issues.is_empty() {
        Ok(StepBody {
            action,
            timeout_s,
            extra: map,
        })
    } else {
        Err(issues)
    }
}

/// A Task API body field check: `split` (required string).
pub fn require_string(map: &Map<String, Value>, field: &str) -> Result<String, ValidationIssue> {
    match map.get(field) {
        None => Err(ValidationIssue::missing(
            loc(&["body", field]),
            Value::Object(map.clone()),
        )),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(ValidationIssue::wrong_type(
            "string",
            loc(&["body", field]),
            other.clone(),
        )),
    }
}

/// An optional integer body field (Task API `index`, `start`, `stop`).
pub fn optional_int(map: &Map<String, Value>, field: &str) -> Result<Option<i64>, ValidationIssue> {
    match map.get(field) {
        None => Ok(None),
        Some(v) => lax_int(v, &["body", field]),
    }
}

/// Reads a body as an object for a model with the given fields, rejecting extra keys.
pub fn strict_object(
    body: Body,
    fields: &[&str],
) -> Result<Map<String, Value>, Vec<ValidationIssue>> {
    let map = model_object(body, true)?;
    let issues: Vec<_> = map
        .iter()
        .filter(|(k, _)| !fields.contains(&k.as_str()))
        .map(|(k, v)| ValidationIssue::extra_forbidden(loc(&["body", k]), v.clone()))
        .collect();
    if issues.is_empty() {
        Ok(map)
    } else {
        Err(issues)
    }
}

fn loc(parts: &[&str]) -> Vec<Loc> {
    parts.iter().map(|p| Loc::from(*p)).collect()
}

/// Pydantic lax-mode `Optional[int]`.
fn lax_int(v: &Value, at: &[&str]) -> Result<Option<i64>, ValidationIssue> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(i64::from(*b))),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(Some(i))
            } else {
                match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(Some(f as i64)),
                    Some(_) => Err(ValidationIssue::new(
                        "int_from_float",
                        loc(at),
                        "Input should be a valid integer, got a number with a fractional part",
                        v.clone(),
                    )),
                    None => Err(ValidationIssue::wrong_type("integer", loc(at), v.clone())),
                }
            }
        }
        Value::String(s) => s.trim().parse::<i64>().map(Some).map_err(|_| {
            ValidationIssue::new(
                "int_parsing",
                loc(at),
                "Input should be a valid integer, unable to parse string as an integer",
                v.clone(),
            )
        }),
        _ => Err(ValidationIssue::wrong_type("integer", loc(at), v.clone())),
    }
}

/// Pydantic lax-mode `Optional[float]`.
fn lax_float(v: &Value, at: &[&str]) -> Result<Option<f64>, ValidationIssue> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(if *b { 1.0 } else { 0.0 })),
        Value::Number(n) => Ok(n.as_f64()),
        Value::String(s) => s.trim().parse::<f64>().map(Some).map_err(|_| {
            ValidationIssue::new(
                "float_parsing",
                loc(at),
                "Input should be a valid number, unable to parse string as a number",
                v.clone(),
            )
        }),
        _ => Err(ValidationIssue::wrong_type("number", loc(at), v.clone())),
    }
}

/// `Optional[str]` with `max_length=255`.
fn short_string(v: &Value, at: &[&str]) -> Option<ValidationIssue> {
    match v {
        Value::Null => None,
        Value::String(s) if s.chars().count() > 255 => Some(
            ValidationIssue::new(
                "string_too_long",
                loc(at),
                "String should have at most 255 characters",
                v.clone(),
            )
            .with_ctx(json!({"max_length": 255})),
        ),
        Value::String(_) => None,
        _ => Some(ValidationIssue::wrong_type("string", loc(at), v.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reset_err(body: &str) -> String {
        let b = read_body(Some("application/json"), body.as_bytes()).unwrap();
        validation_detail(&validate_reset(b).unwrap_err())
    }

    fn step_err(ct: Option<&str>, body: &str) -> String {
        match read_body(ct, body.as_bytes()) {
            Ok(b) => validation_detail(&validate_step(b).unwrap_err()),
            Err(BodyError::Invalid(i)) => validation_detail(&[i]),
            Err(BodyError::Undecodable) => BODY_PARSE_ERROR.to_owned(),
        }
    }

    #[test]
    fn reset_matrix_matches_reference() {
        assert_eq!(
            reset_err(r#"{"seed":-1}"#),
            r#"{"detail":[{"type":"greater_than_equal","loc":["body","seed"],"msg":"Input should be greater than or equal to 0","input":-1,"ctx":{"ge":0}}]}"#
        );
        assert_eq!(
            reset_err(r#"{"seed":"abc"}"#),
            r#"{"detail":[{"type":"int_parsing","loc":["body","seed"],"msg":"Input should be a valid integer, unable to parse string as an integer","input":"abc"}]}"#
        );
        assert_eq!(
            reset_err("[]"),
            r#"{"detail":[{"type":"model_attributes_type","loc":["body"],"msg":"Input should be a valid dictionary or object to extract fields from","input":[]}]}"#
        );
        let b = read_body(Some("text/plain"), b"{}").unwrap();
        assert_eq!(
            validation_detail(&validate_reset(b).unwrap_err()),
            r#"{"detail":[{"type":"model_attributes_type","loc":["body"],"msg":"Input should be a valid dictionary or object to extract fields from","input":"{}"}]}"#
        );
        assert!(validate_reset(read_body(None, br#"{"foo":"bar"}"#).unwrap()).is_ok());
    }

    #[test]
    fn step_matrix_matches_reference() {
        assert_eq!(
            step_err(None, ""),
            r#"{"detail":[{"type":"missing","loc":["body"],"msg":"Field required","input":null}]}"#
        );
        assert_eq!(
            step_err(None, "{}"),
            r#"{"detail":[{"type":"missing","loc":["body","action"],"msg":"Field required","input":{}}]}"#
        );
        assert_eq!(
            step_err(None, r#"{"action":"str"}"#),
            r#"{"detail":[{"type":"dict_type","loc":["body","action"],"msg":"Input should be a valid dictionary","input":"str"}]}"#
        );
        assert_eq!(
            step_err(None, r#"{"action":{},"timeout_s":0}"#),
            r#"{"detail":[{"type":"greater_than","loc":["body","timeout_s"],"msg":"Input should be greater than 0","input":0,"ctx":{"gt":0.0}}]}"#
        );
        assert_eq!(
            step_err(Some("application/json"), "{bad json"),
            r#"{"detail":[{"type":"json_invalid","loc":["body",1],"msg":"JSON decode error","input":{},"ctx":{"error":"Expecting property name enclosed in double quotes"}}]}"#
        );
    }
}

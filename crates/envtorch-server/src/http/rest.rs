//! Plain HTTP routes.
//!
//! `/reset`, `/step` and `/state` are stateless, as in the reference: each request runs on a
//! fresh environment that is closed afterwards. Sessions live on `/ws` and `/mcp`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use envtorch_wire::envelope::ObservationReply;
use envtorch_wire::http::{self as wire_http, Body, BodyError};
use envtorch_worker_protocol::{ErrorKind, Op, WorkerError};

use super::AppState;
use super::reply::{self, internal_error, ok};

/// `GET /health`: constant, never touches the environment.
pub async fn health() -> Response {
    ok(r#"{"status":"healthy"}"#.to_owned())
}

/// `GET /metadata`.
pub async fn metadata(State(app): State<Arc<AppState>>) -> Response {
    ok(app.metadata.clone())
}

/// `GET /schema`.
pub async fn schema(State(app): State<Arc<AppState>>) -> Response {
    ok(app.schema.clone())
}

/// `GET /openapi.json`.
pub async fn openapi(State(app): State<Arc<AppState>>) -> Response {
    ok(app.openapi.clone())
}

fn read(headers: &HeaderMap, body: &Bytes) -> Result<Body, Response> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    wire_http::read_body(content_type, body).map_err(|e| match e {
        BodyError::Invalid(issue) => unprocessable(&wire_http::validation_detail(&[issue])),
        BodyError::Undecodable => reply::json(
            StatusCode::BAD_REQUEST,
            wire_http::BODY_PARSE_ERROR.to_owned(),
        ),
    })
}

fn unprocessable(body: &str) -> Response {
    reply::json(StatusCode::UNPROCESSABLE_ENTITY, body.to_owned())
}

/// Runs one stateless operation on a fresh environment.
async fn stateless(
    app: &AppState,
    op: Op,
    data: Option<&RawValue>,
    name: Option<&str>,
    timeout_s: Option<f64>,
) -> Result<Box<RawValue>, Response> {
    let lease = app.pool.for_request().await.map_err(|e| {
        tracing::error!(error = %e, "no worker for a stateless request");
        internal_error()
    })?;
    match lease
        .worker()
        .request(op, None, data, name, timeout_s)
        .await
    {
        Ok(Ok(raw)) => Ok(raw),
        Ok(Err(err)) => Err(env_error_response(&err)),
        Err(failure) => {
            tracing::error!(error = %failure, "worker failed during a stateless request");
            Err(internal_error())
        }
    }
}

/// The HTTP answer to an environment error: 422 for validation, 500 otherwise (the
/// reference's unhandled exception).
fn env_error_response(err: &WorkerError) -> Response {
    match err.kind {
        ErrorKind::Validation => {
            let errors = err.errors.clone().unwrap_or(Value::Array(Vec::new()));
            unprocessable(&json!({ "detail": errors }).to_string())
        }
        _ => {
            tracing::warn!(kind = ?err.kind, message = %err.message, "environment error on a stateless request");
            internal_error()
        }
    }
}

fn render_observation(raw: &RawValue) -> Response {
    match serde_json::from_str::<ObservationReply<'_>>(raw.get()) {
        Ok(obs) => ok(obs.render_http()),
        Err(e) => {
            tracing::error!(error = %e, "worker sent a malformed observation");
            internal_error()
        }
    }
}

fn to_raw(value: &Value) -> Option<Box<RawValue>> {
    serde_json::value::to_raw_value(value).ok()
}

/// `POST /reset`.
pub async fn reset(State(app): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match read(&headers, &body) {
        Ok(b) => b,
        Err(res) => return res,
    };
    let kwargs = match wire_http::validate_reset(body) {
        Ok(k) => k,
        Err(issues) => return unprocessable(&wire_http::validation_detail(&issues)),
    };
    let data = to_raw(&Value::Object(kwargs));
    match stateless(&app, Op::Reset, data.as_deref(), None, None).await {
        Ok(raw) => render_observation(&raw),
        Err(res) => res,
    }
}

/// `POST /step`.
pub async fn step(State(app): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match read(&headers, &body) {
        Ok(b) => b,
        Err(res) => return res,
    };
    let step = match wire_http::validate_step(body) {
        Ok(s) => s,
        Err(issues) => return unprocessable(&wire_http::validation_detail(&issues)),
    };
    let data = to_raw(&Value::Object(step.action));
    match stateless(&app, Op::Step, data.as_deref(), None, step.timeout_s).await {
        Ok(raw) => render_observation(&raw),
        Err(res) => res,
    }
}

/// `GET /state`: the initial state of a fresh environment.
pub async fn state(State(app): State<Arc<AppState>>) -> Response {
    match stateless(&app, Op::State, None, None, None).await {
        Ok(raw) => ok(raw.get().to_owned()),
        Err(res) => res,
    }
}

/// `GET /list_environments`.
pub async fn list_environments(State(app): State<Arc<AppState>>) -> Response {
    ok(json!([app.manifest().name]).to_string())
}

/// The Task API methods and the routes that call them.
#[derive(Clone, Copy)]
enum TaskCall {
    Splits,
    List,
    Count,
    Get,
    Range,
}

impl TaskCall {
    fn method(self) -> &'static str {
        match self {
            TaskCall::Splits => "list_splits",
            TaskCall::List => "list_tasks",
            TaskCall::Count => "num_tasks",
            TaskCall::Get => "get_task",
            TaskCall::Range => "get_task_range",
        }
    }

    fn fields(self) -> &'static [&'static str] {
        match self {
            TaskCall::Splits => &[],
            TaskCall::List | TaskCall::Count => &["split"],
            TaskCall::Get => &["split", "index"],
            TaskCall::Range => &["split", "start", "stop"],
        }
    }
}

/// `GET /{env}/splits`.
pub async fn task_splits(
    State(app): State<Arc<AppState>>,
    Path(env_name): Path<String>,
) -> Response {
    task(&app, &env_name, TaskCall::Splits, None).await
}

/// `POST /{env}/tasks`.
pub async fn task_list(
    State(app): State<Arc<AppState>>,
    Path(env_name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    task(&app, &env_name, TaskCall::List, Some((headers, body))).await
}

/// `POST /{env}/num_tasks`.
pub async fn task_count(
    State(app): State<Arc<AppState>>,
    Path(env_name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    task(&app, &env_name, TaskCall::Count, Some((headers, body))).await
}

/// `POST /{env}/task`.
pub async fn task_get(
    State(app): State<Arc<AppState>>,
    Path(env_name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    task(&app, &env_name, TaskCall::Get, Some((headers, body))).await
}

/// `POST /{env}/task_range`.
pub async fn task_range(
    State(app): State<Arc<AppState>>,
    Path(env_name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    task(&app, &env_name, TaskCall::Range, Some((headers, body))).await
}

async fn task(
    app: &AppState,
    env_name: &str,
    call: TaskCall,
    body: Option<(HeaderMap, Bytes)>,
) -> Response {
    let args = match body {
        None => Map::new(),
        Some((headers, bytes)) => {
            let body = match read(&headers, &bytes) {
                Ok(b) => b,
                Err(res) => return res,
            };
            let map = match wire_http::strict_object(body, call.fields()) {
                Ok(m) => m,
                Err(issues) => return unprocessable(&wire_http::validation_detail(&issues)),
            };
            let mut issues = Vec::new();
            if let Err(i) = wire_http::require_string(&map, "split") {
                issues.push(i);
            }
            for field in call.fields().iter().filter(|f| **f != "split") {
                if *field == "index" && !map.contains_key("index") {
                    issues.push(envtorch_wire::ValidationIssue::missing(
                        vec!["body".into(), "index".into()],
                        Value::Object(map.clone()),
                    ));
                } else if let Err(i) = wire_http::optional_int(&map, field) {
                    issues.push(i);
                }
            }
            if !issues.is_empty() {
                return unprocessable(&wire_http::validation_detail(&issues));
            }
            map
        }
    };
    let manifest = app.manifest();
    if !env_name.eq_ignore_ascii_case(&manifest.name) {
        return reply::json(
            StatusCode::NOT_FOUND,
            wire_http::detail(&format!("unknown environment '{env_name}'")),
        );
    }
    if !manifest.capabilities.tasks {
        return reply::json(
            StatusCode::NOT_IMPLEMENTED,
            wire_http::detail(&format!(
                "{} is not supported for this environment",
                call.method()
            )),
        );
    }
    let data = to_raw(&Value::Object(args));
    let Ok(lease) = app.pool.for_request().await else {
        return internal_error();
    };
    let result = match lease
        .worker()
        .request(Op::Task, None, data.as_deref(), Some(call.method()), None)
        .await
    {
        Ok(Ok(raw)) => serde_json::from_str::<Value>(raw.get()).unwrap_or(Value::Null),
        Ok(Err(err)) => {
            return match err.kind {
                ErrorKind::InvalidParams => reply::json(
                    StatusCode::BAD_REQUEST,
                    wire_http::detail("Invalid task index"),
                ),
                ErrorKind::Unsupported => reply::json(
                    StatusCode::NOT_IMPLEMENTED,
                    wire_http::detail(&format!(
                        "{} is not supported for this environment",
                        call.method()
                    )),
                ),
                _ => env_error_response(&err),
            };
        }
        Err(_) => return internal_error(),
    };
    let body = match call {
        TaskCall::Splits => Value::Array(
            result
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|s| match s {
                    Value::String(name) => {
                        let kind = if ["train", "validation", "test"].contains(&name.as_str()) {
                            name.clone()
                        } else {
                            "validation".to_owned()
                        };
                        json!({"name": name, "type": kind})
                    }
                    other => other,
                })
                .collect(),
        ),
        TaskCall::List => json!({"tasks": result, "env_name": manifest.name}),
        TaskCall::Count => json!({"num_tasks": result}),
        TaskCall::Get => json!({"task": result}),
        TaskCall::Range => json!({"tasks": result}),
    };
    ok(body.to_string())
}

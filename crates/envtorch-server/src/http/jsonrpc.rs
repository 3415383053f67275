//! The JSON-RPC 2.0 subset of `/mcp`: `tools/list`, `tools/call`,
//! `openenv/session/create`, `openenv/session/close`.
//!
//! One handler serves three transports: `POST /mcp` (stateless, or bound to a session by
//! `params.session_id`), `WS /mcp` and `/ws` `type:"mcp"` (bound to the socket's session).
//! Tool calls here are not steps: they do not count in `step_count`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use envtorch_wire::jsonrpc::{
    INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, Request, RpcError,
    SERVER_ERROR, error_response, result_response,
};
use envtorch_wire::object::RawObject;
use envtorch_worker_protocol::{ErrorKind, Op, WorkerError};

use super::AppState;
use super::reply::ok;
use crate::session::{CloseOutcome, CreateError, Session};

/// `POST /mcp`: always HTTP 200 with a JSON-RPC response.
pub async fn http_mcp(State(app): State<Arc<AppState>>, body: Bytes) -> Response {
    match std::str::from_utf8(&body) {
        Ok(text) => ok(handle_text(&app, text, false, None).await),
        Err(_) => ok(error_response(
            &Value::Null,
            &RpcError::new(envtorch_wire::jsonrpc::PARSE_ERROR, "Parse error"),
        )),
    }
}

/// Handles one JSON-RPC request text; returns the compact response.
pub async fn handle_text(
    app: &AppState,
    text: &str,
    detailed_parse_error: bool,
    bound: Option<&Arc<Session>>,
) -> String {
    match Request::parse(text, detailed_parse_error) {
        Ok(req) => handle(app, req, bound).await,
        Err(e) => error_response(&e.id, &e.error),
    }
}

/// Handles the `data` object of a `/ws` `mcp` message.
pub async fn handle_raw_object(app: &AppState, data: &RawValue, bound: &Arc<Session>) -> String {
    let parsed = RawObject::parse(data.get())
        .map_err(|_| RpcError::new(INVALID_REQUEST, "Invalid request: data must be an object"));
    match parsed.and_then(|obj| Request::from_object(&obj).map_err(|e| e.error)) {
        Ok(req) => handle(app, req, Some(bound)).await,
        Err(error) => error_response(&Value::Null, &error),
    }
}

async fn handle(app: &AppState, req: Request<'_>, bound: Option<&Arc<Session>>) -> String {
    let params: Map<String, Value> = match req.params {
        Some(p) => envtorch_wire::object::parse_deep(p.get()).unwrap_or_default(),
        None => Map::new(),
    };
    let result = match req.method.as_str() {
        "tools/list" => tools(app, Op::ListTools, None, None, &params, bound).await,
        "tools/call" => match params.get("name").and_then(Value::as_str) {
            None => Err(RpcError::new(INVALID_PARAMS, "Missing 'name' in params")),
            Some(name) => {
                let args = params
                    .get("arguments")
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                let args = serde_json::value::to_raw_value(&args).ok();
                tools(
                    app,
                    Op::CallTool,
                    args.as_deref(),
                    Some(name),
                    &params,
                    bound,
                )
                .await
            }
        },
        "openenv/session/create" => create_session(app, bound).await,
        "openenv/session/close" => close_session(app, &params, bound).await,
        other => Err(RpcError::new(
            METHOD_NOT_FOUND,
            format!("Method not found: {other}"),
        )),
    };
    match result {
        Ok(body) => result_response(&req.id, &body),
        Err(error) => error_response(&req.id, &error),
    }
}

async fn tools(
    app: &AppState,
    op: Op,
    data: Option<&RawValue>,
    name: Option<&str>,
    params: &Map<String, Value>,
    bound: Option<&Arc<Session>>,
) -> Result<String, RpcError> {
    let target = match params.get("session_id").and_then(Value::as_str) {
        Some(id) => Some(app.sessions.get(id).ok_or_else(|| unknown_session(id))?),
        None => bound.cloned(),
    };
    if !app.manifest().capabilities.mcp {
        return Err(RpcError::new(
            INTERNAL_ERROR,
            "Environment does not support MCP",
        ));
    }
    let outcome = match &target {
        Some(session) => session.call(op, data, name).await,
        None => match app.pool.for_request().await {
            Ok(lease) => lease.worker().request(op, None, data, name, None).await,
            Err(e) => return Err(RpcError::new(INTERNAL_ERROR, e.to_string())),
        },
    };
    match outcome {
        Ok(Ok(raw)) => Ok(raw.get().to_owned()),
        Ok(Err(err)) => Err(worker_error(&err)),
        Err(failure) => Err(RpcError::new(INTERNAL_ERROR, failure.to_string())),
    }
}

fn worker_error(err: &WorkerError) -> RpcError {
    match err.kind {
        ErrorKind::InvalidParams | ErrorKind::UnknownSession => {
            RpcError::new(INVALID_PARAMS, err.message.clone())
        }
        ErrorKind::Factory => factory_error(),
        _ => RpcError::new(INTERNAL_ERROR, err.message.clone()),
    }
}

fn unknown_session(id: &str) -> RpcError {
    RpcError::new(INVALID_PARAMS, format!("Unknown session_id: {id}"))
}

fn factory_error() -> RpcError {
    RpcError::new(
        SERVER_ERROR,
        "Environment factory 'factory' failed to create instance.",
    )
    .with_data(json!({"factory_name": "factory"}))
}

/// The JSON-RPC error for a failed session creation.
pub fn create_error(e: &CreateError) -> RpcError {
    match e {
        CreateError::Capacity { active, max } => RpcError::new(SERVER_ERROR, e.to_string())
            .with_data(json!({"active_sessions": active, "max_sessions": max})),
        CreateError::Factory(detail) => {
            tracing::error!(%detail, "environment creation failed");
            factory_error()
        }
    }
}

async fn create_session(app: &AppState, bound: Option<&Arc<Session>>) -> Result<String, RpcError> {
    // A socket's session already exists: creating returns its own id, as in the reference.
    if let Some(session) = bound {
        return Ok(json!({"session_id": session.id}).to_string());
    }
    let session = app.sessions.create().await.map_err(|e| create_error(&e))?;
    Ok(json!({"session_id": session.id}).to_string())
}

async fn close_session(
    app: &AppState,
    params: &Map<String, Value>,
    bound: Option<&Arc<Session>>,
) -> Result<String, RpcError> {
    let Some(id) = params.get("session_id").and_then(Value::as_str) else {
        return Err(RpcError::new(
            INVALID_PARAMS,
            "Invalid params - 'session_id' is required",
        ));
    };
    if bound.is_some_and(|s| s.id == id) {
        return Err(RpcError::new(
            INVALID_REQUEST,
            "Cannot close active WebSocket-managed session via MCP method",
        ));
    }
    match app.sessions.close(id).await {
        CloseOutcome::Closed => Ok(json!({"session_id": id, "closed": true}).to_string()),
        CloseOutcome::Closing => {
            Ok(json!({"session_id": id, "closed": false, "closing": true}).to_string())
        }
        CloseOutcome::Unknown => Err(unknown_session(id)),
    }
}

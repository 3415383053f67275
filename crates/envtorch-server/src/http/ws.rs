//! `/ws`: one environment session per socket.
//!
//! Lifecycle of a connection:
//! 1. Upgrade, then create a session (or attach to one with `?session_id=`). Failure sends one
//!    error frame (`CAPACITY_REACHED`, `FACTORY_ERROR`, `SESSION_ERROR`) and closes with 1000.
//! 2. Serve messages strictly in order, one reply each (`close` gets none). Meanwhile the
//!    loop watches for the session's worker dying, the session being ended by the server
//!    (idle timeout), shutdown, and a peer that stopped answering pings (half-open socket).
//! 3. On any exit the session is destroyed (or, if attached, detached), freeing its slot.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use serde_json::json;
use serde_json::value::RawValue;

use envtorch_wire::envelope::ObservationReply;
use envtorch_wire::ws::{
    ClientMessage, ErrorCode, data_frame, error_frame, validation_error_frame_raw,
};
use envtorch_worker_protocol::{ErrorKind, Op, WorkerError};

use super::AppState;
use super::jsonrpc;
use super::reply::not_found;
use crate::session::{CreateError, Session};
use crate::worker::WorkerFailure;

/// `GET /ws`: upgrades, or 404 for a plain GET (as the reference).
pub async fn upgrade(
    State(app): State<Arc<AppState>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Ok(ws) = ws else { return not_found().await };
    let attach = query
        .ok()
        .and_then(|Query(q)| q.get("session_id").cloned())
        .filter(|s| !s.is_empty());
    configure(ws, &app).on_upgrade(move |socket| serve(app, socket, attach))
}

/// Applies the message limit to an upgrade.
pub fn configure(ws: WebSocketUpgrade, app: &AppState) -> WebSocketUpgrade {
    ws.max_message_size(app.ws.max_message)
        .max_frame_size(app.ws.max_message)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
}

/// Sends a frame then closes with 1000.
pub async fn close_with(socket: &mut WebSocket, frame: Option<String>) {
    if let Some(frame) = frame {
        let _ = socket.send(Message::Text(frame.into())).await;
    }
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: 1000,
            reason: "".into(),
        })))
        .await;
}

async fn serve(app: Arc<AppState>, mut socket: WebSocket, attach: Option<String>) {
    let (session, attached) = match attach {
        Some(id) => match app.sessions.attach(&id) {
            Ok(s) => (s, true),
            Err(e) => {
                close_with(
                    &mut socket,
                    Some(error_frame(ErrorCode::SessionError, &e.to_string(), &[])),
                )
                .await;
                return;
            }
        },
        None => match app.sessions.create().await {
            Ok(s) => (s, false),
            Err(e) => {
                close_with(&mut socket, Some(create_error_frame(&e))).await;
                return;
            }
        },
    };
    run_session(&app, &mut socket, &session).await;
    if attached {
        app.sessions.detach(&session).await;
    } else {
        app.sessions.destroy(&session.id).await;
    }
}

/// The error frame for a failed session creation.
pub fn create_error_frame(e: &CreateError) -> String {
    match e {
        CreateError::Capacity { active, max } => error_frame(
            ErrorCode::CapacityReached,
            &e.to_string(),
            &[
                ("active_sessions", json!(active)),
                ("max_sessions", json!(max)),
            ],
        ),
        CreateError::Factory(detail) => {
            tracing::error!(%detail, "environment creation failed");
            error_frame(
                ErrorCode::FactoryError,
                &e.to_string(),
                &[("factory_name", json!("factory"))],
            )
        }
    }
}

/// What to do after a message.
enum Next {
    /// Send this reply and keep serving.
    Reply(String),
    /// Send this frame (if any), close with 1000 and stop.
    Close(Option<String>),
}

async fn run_session(app: &AppState, socket: &mut WebSocket, session: &Arc<Session>) {
    let ping_every = app.ws.ping_interval;
    // The first ping is one period from now. (Awaiting an interval's immediate first tick
    // would delay the first frame by a timer-wheel tick, about 1 ms.)
    let period = ping_every.unwrap_or(std::time::Duration::from_secs(3600));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ping_outstanding: Option<Instant> = None;
    loop {
        let next = tokio::select! {
            biased;
            msg = socket.recv() => {
                ping_outstanding = None;
                match msg {
                    Some(Ok(Message::Text(text))) => handle(app, session, text.as_str()).await,
                    Some(Ok(Message::Binary(_))) => Next::Close(Some(error_frame(ErrorCode::SessionError, "'text'", &[]))),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | None => return,
                    Some(Err(e)) => {
                        // tungstenite reports these as errors; answer them with the close
                        // codes uvicorn uses: 1009 too big, 1007 invalid UTF-8.
                        let text = e.to_string();
                        let code = if text.contains("Space limit exceeded") || text.contains("too long") {
                            Some(1009)
                        } else if text.contains("UTF-8") || text.contains("utf-8") {
                            Some(1007)
                        } else {
                            None
                        };
                        if let Some(code) = code {
                            let _ = socket.send(Message::Close(Some(CloseFrame { code, reason: "".into() }))).await;
                        }
                        tracing::debug!(session = %session.id, error = %text, "socket error");
                        return;
                    }
                }
            }
            _ = app.shutdown.cancelled() => {
                let _ = socket.send(Message::Close(Some(CloseFrame { code: 1001, reason: "server shutting down".into() }))).await;
                return;
            }
            reason = session.worker_dead() => Next::Close(Some(lost(&reason))),
            reason = session.ended() => Next::Close(Some(error_frame(ErrorCode::SessionError, &reason, &[]))),
            _ = ticker.tick(), if ping_every.is_some() => {
                match ping_outstanding {
                    Some(sent) if sent.elapsed() >= app.ws.ping_timeout => {
                        tracing::info!(session = %session.id, "client stopped answering pings; closing");
                        return;
                    }
                    Some(_) => continue,
                    None => {
                        ping_outstanding = Some(Instant::now());
                        if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                            return;
                        }
                        continue;
                    }
                }
            }
        };
        match next {
            Next::Reply(frame) => {
                if socket.send(Message::Text(frame.into())).await.is_err() {
                    return;
                }
            }
            Next::Close(frame) => {
                close_with(socket, frame).await;
                return;
            }
        }
    }
}

fn lost(reason: &str) -> String {
    error_frame(
        ErrorCode::SessionError,
        &format!("environment worker failed ({reason}); this session is lost, open a new one"),
        &[],
    )
}

async fn handle(app: &AppState, session: &Arc<Session>, text: &str) -> Next {
    let message = match ClientMessage::parse(text) {
        Ok(m) => m,
        Err(e) => {
            let (frame, closes) = e.to_frame();
            return if closes {
                Next::Close(Some(frame))
            } else {
                Next::Reply(frame)
            };
        }
    };
    match message {
        ClientMessage::Reset(data) => observation(session.call(Op::Reset, data, None).await),
        ClientMessage::Step(data) => observation(session.call(Op::Step, Some(data), None).await),
        ClientMessage::State => match session.call(Op::State, None, None).await {
            Ok(Ok(raw)) => Next::Reply(data_frame("state", raw.get())),
            Ok(Err(err)) => env_error(&err),
            Err(failure) => Next::Close(Some(lost_after(&failure))),
        },
        ClientMessage::Close => Next::Close(None),
        ClientMessage::Mcp(data) => Next::Reply(data_frame(
            "mcp",
            &jsonrpc::handle_raw_object(app, data, session).await,
        )),
    }
}

fn observation(result: Result<Result<Box<RawValue>, WorkerError>, WorkerFailure>) -> Next {
    match result {
        Ok(Ok(raw)) => match serde_json::from_str::<ObservationReply<'_>>(raw.get()) {
            Ok(obs) => Next::Reply(data_frame("observation", &obs.render_ws())),
            Err(e) => Next::Reply(error_frame(
                ErrorCode::ExecutionError,
                &format!("environment sent a malformed observation: {e}"),
                &[],
            )),
        },
        Ok(Err(err)) => env_error(&err),
        Err(failure) => Next::Close(Some(lost_after(&failure))),
    }
}

fn lost_after(failure: &WorkerFailure) -> String {
    error_frame(
        ErrorCode::SessionError,
        &format!("{failure}; this session is lost, open a new one"),
        &[],
    )
}

fn env_error(err: &WorkerError) -> Next {
    match err.kind {
        ErrorKind::Validation => {
            let errors = err
                .errors
                .as_ref()
                .and_then(|e| serde_json::value::to_raw_value(e).ok());
            match errors {
                Some(raw) => Next::Reply(validation_error_frame_raw(&raw)),
                None => Next::Reply(error_frame(ErrorCode::ValidationError, &err.message, &[])),
            }
        }
        ErrorKind::UnknownSession => Next::Close(Some(error_frame(
            ErrorCode::SessionError,
            &err.message,
            &[],
        ))),
        ErrorKind::Factory => Next::Close(Some(error_frame(
            ErrorCode::FactoryError,
            &err.message,
            &[("factory_name", json!("factory"))],
        ))),
        ErrorKind::Execution | ErrorKind::InvalidParams | ErrorKind::Unsupported => {
            Next::Reply(error_frame(ErrorCode::ExecutionError, &err.message, &[]))
        }
    }
}

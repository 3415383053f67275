//! `WS /mcp`: bare JSON-RPC frames over a socket that owns one session. Frames are written
//! the way the reference's `json.dumps` writes them (`", "` and `": "` separators).

use std::sync::Arc;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use serde_json::Value;

use envtorch_wire::jsonrpc::{error_response, python_dumps};

use super::AppState;
use super::jsonrpc;
use super::reply::not_found;
use super::ws::{close_with, configure};

/// `GET /mcp` with an upgrade.
pub async fn upgrade(
    State(app): State<Arc<AppState>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Ok(ws) = ws else { return not_found().await };
    configure(ws, &app).on_upgrade(move |socket| serve(app, socket))
}

async fn serve(app: Arc<AppState>, mut socket: WebSocket) {
    let session = match app.sessions.create().await {
        Ok(s) => s,
        Err(e) => {
            let frame = python_dumps(&error_response(&Value::Null, &jsonrpc::create_error(&e)));
            close_with(&mut socket, Some(frame)).await;
            return;
        }
    };
    loop {
        let msg = tokio::select! {
            m = socket.recv() => m,
            _ = session.worker_dead() => break,
            _ = session.ended() => break,
            _ = app.shutdown.cancelled() => break,
        };
        match msg {
            Some(Ok(Message::Text(text))) => {
                let reply = jsonrpc::handle_text(&app, text.as_str(), true, Some(&session)).await;
                if socket
                    .send(Message::Text(python_dumps(&reply).into()))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            Some(Ok(Message::Binary(_))) => {
                close_with(&mut socket, None).await;
                break;
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            _ => break,
        }
    }
    app.sessions.destroy(&session.id).await;
}

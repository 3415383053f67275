//! `/ws` clients: one OpenEnv session per socket, request/response, no pipelining.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

use crate::load::Client;

/// The step every benchmark sends (the same for both servers).
pub(crate) const STEP_FRAME: &str = r#"{"type":"step","data":{"type":"call_tool","tool_name":"echo_message","arguments":{"message":"hi"}}}"#;
/// The reset every session starts with.
pub(crate) const RESET_FRAME: &str = r#"{"type":"reset","data":{}}"#;
const CLOSE_FRAME: &str = r#"{"type":"close"}"#;

pub(crate) type Ws = WebSocketStream<TcpStream>;

/// Connects a socket to `/ws` (TCP_NODELAY, as every real client sets).
pub(crate) async fn connect(port: u16) -> anyhow::Result<Ws> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    tcp.set_nodelay(true)?;
    let request = format!("ws://127.0.0.1:{port}/ws").into_client_request()?;
    let (ws, _) = client_async_with_config(request, tcp, Some(WebSocketConfig::default()))
        .await
        .context("websocket handshake")?;
    Ok(ws)
}

/// Sends one frame and waits for its reply, which must be an observation.
pub(crate) async fn call(ws: &mut Ws, frame: &str) -> anyhow::Result<()> {
    ws.send(Message::text(frame)).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                return if t.as_str().starts_with(r#"{"type":"observation""#) {
                    Ok(())
                } else {
                    Err(anyhow!("unexpected reply: {}", truncate(t.as_str(), 300)))
                };
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Binary(_))) => bail!("unexpected binary frame"),
            Some(Ok(Message::Close(c))) => bail!("closed by the server: {c:?}"),
            Some(Err(e)) => return Err(e.into()),
            None => bail!("connection ended"),
        }
    }
}

/// Opens a session: connect, then reset.
pub(crate) async fn open(port: u16) -> anyhow::Result<Ws> {
    let mut ws = connect(port).await?;
    call(&mut ws, RESET_FRAME).await.context("first reset")?;
    Ok(ws)
}

/// Ends a session with `{"type":"close"}` and waits (bounded) for the server to close.
pub(crate) async fn close(mut ws: Ws, wait: Duration) {
    if ws.send(Message::text(CLOSE_FRAME)).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(wait, async { while let Some(Ok(_)) = ws.next().await {} }).await;
}

pub(crate) fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Opens `n` sessions, at most `parallel` at a time. Returns the sessions and the first errors.
pub(crate) async fn open_many(
    port: u16,
    n: usize,
    parallel: usize,
    timeout: Duration,
) -> (Vec<Ws>, usize, Option<String>) {
    let results: Vec<anyhow::Result<Ws>> = futures_util::stream::iter(0..n)
        .map(|_| async move {
            tokio::time::timeout(timeout, open(port))
                .await
                .unwrap_or_else(|_| Err(anyhow!("no session within {timeout:?}")))
        })
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
    let mut ok = Vec::with_capacity(n);
    let mut failed = 0;
    let mut first_error = None;
    for r in results {
        match r {
            Ok(ws) => ok.push(ws),
            Err(e) => {
                failed += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    (ok, failed, first_error)
}

/// A session stepping in a closed loop.
pub(crate) struct Stepper {
    pub(crate) ws: Option<Ws>,
}

impl Client for Stepper {
    async fn op(&mut self) -> anyhow::Result<()> {
        match self.ws.as_mut() {
            Some(ws) => call(ws, STEP_FRAME).await,
            None => bail!("session lost"),
        }
    }
    async fn recover(&mut self) -> bool {
        // A session that failed is gone (its state is lost): this client stops.
        self.ws = None;
        false
    }
    async fn finish(self) {
        if let Some(ws) = self.ws {
            close(ws, Duration::from_secs(2)).await;
        }
    }
}

/// Session churn: every operation opens a session, resets it, and closes it.
pub(crate) struct Churner {
    pub(crate) port: u16,
}

impl Client for Churner {
    async fn op(&mut self) -> anyhow::Result<()> {
        let ws = open(self.port).await?;
        close(ws, Duration::from_secs(5)).await;
        Ok(())
    }
    async fn recover(&mut self) -> bool {
        tokio::time::sleep(Duration::from_millis(10)).await;
        true
    }
    async fn finish(self) {}
}

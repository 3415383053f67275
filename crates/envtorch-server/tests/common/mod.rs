//! Shared test harness: start a real server on 127.0.0.1:0 with a real environment binary,
//! and talk to it over real sockets.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use envtorch_server::Server;
use envtorch_server::config::ServeConfig;
use envtorch_server::http::AppState;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The profile directory of the test binaries (`target/debug`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .to_path_buf()
}

/// The echo environment binary, built by `cargo build --workspace --bins`.
pub fn echo_env() -> PathBuf {
    let path = profile_dir().join("echo-env");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` before the tests",
        path.display()
    );
    path
}

/// The misbehaving test environment (this package's example, built by `cargo test`).
pub fn fault_env() -> PathBuf {
    let path = profile_dir().join("examples").join("fault_env");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p envtorch-server --examples`",
        path.display()
    );
    path
}

/// A server running in this process.
pub struct TestServer {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub async fn start(config: ServeConfig) -> Self {
        let server = Server::start(&config).await.expect("server starts");
        let addr = server.local_addr().expect("bound");
        let state = server.state();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            state,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn echo() -> Self {
        Self::start(ServeConfig::for_env(echo_env())).await
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    pub async fn ws(&self) -> Ws {
        Ws::connect(&self.ws_url("/ws")).await
    }

    /// Stops the server and waits for it (graceful shutdown).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("server stops in time")
                .expect("join")
                .expect("serve");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A WebSocket client that speaks text frames.
pub struct Ws {
    inner: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// What came back.
#[derive(Debug, PartialEq)]
pub enum Frame {
    Text(String),
    Closed(Option<u16>),
}

impl Ws {
    pub async fn connect(url: &str) -> Self {
        let (inner, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connect");
        Self { inner }
    }

    pub async fn send(&mut self, text: &str) {
        self.inner
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    pub async fn send_binary(&mut self, bytes: &[u8]) {
        self.inner
            .send(Message::Binary(bytes.to_vec().into()))
            .await
            .expect("send");
    }

    /// The next text frame or the close, skipping pings.
    pub async fn recv(&mut self) -> Frame {
        loop {
            let next = tokio::time::timeout(Duration::from_secs(15), self.inner.next())
                .await
                .expect("a frame within 15 s");
            match next {
                Some(Ok(Message::Text(t))) => return Frame::Text(t.to_string()),
                Some(Ok(Message::Close(c))) => return Frame::Closed(c.map(|c| u16::from(c.code))),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Frame::Closed(None),
            }
        }
    }

    pub async fn text(&mut self) -> String {
        match self.recv().await {
            Frame::Text(t) => t,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    pub async fn json(&mut self) -> serde_json::Value {
        serde_json::from_str(&self.text().await).expect("json frame")
    }

    /// Sends `text` and returns the reply as JSON.
    pub async fn json_call(&mut self, text: &str) -> serde_json::Value {
        self.send(text).await;
        self.json().await
    }

    /// Sends `text` and returns the reply.
    pub async fn call(&mut self, text: &str) -> String {
        self.send(text).await;
        self.text().await
    }

    pub async fn close(mut self) {
        let _ = self.inner.close(None).await;
    }
}

/// Minimal HTTP/1.1 client over a fresh connection: (status, lower-cased head, body).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(ct) = content_type {
        req.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.expect("write");
    stream.write_all(body).await.expect("write body");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut raw))
        .await
        .expect("response in time")
        .expect("read");
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_lowercase(), body.to_owned())
}

pub async fn post_json(addr: SocketAddr, path: &str, body: &str) -> (u16, String) {
    let (status, _, body) = http(
        addr,
        "POST",
        path,
        Some("application/json"),
        body.as_bytes(),
    )
    .await;
    (status, body)
}

pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let (status, _, body) = http(addr, "GET", path, None, b"").await;
    (status, body)
}

/// Waits until `cond` holds, polling every 50 ms, for at most `secs` seconds.
pub async fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond()
}

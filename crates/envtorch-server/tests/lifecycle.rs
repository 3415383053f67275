//! Session and server lifecycle: idle reaping, half-open sockets, graceful shutdown, SIGTERM.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod common;

use std::time::{Duration, Instant};

use common::{Frame, TestServer, echo_env, eventually};
use envtorch_server::config::ServeConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn idle_sessions_are_reaped_with_an_error_frame() {
    let mut c = ServeConfig::for_env(echo_env());
    c.session_idle_timeout = 1.0;
    c.max_concurrent_envs = Some(1);
    let server = TestServer::start(c).await;
    let mut ws = server.ws().await;
    assert!(ws.call(r#"{"type":"state"}"#).await.contains("state"));
    match ws.recv().await {
        Frame::Text(t) => assert!(t.contains("SESSION_ERROR") && t.contains("idle"), "{t}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(ws.recv().await, Frame::Closed(Some(1000)));
    assert!(eventually(5, || server.state.sessions.active() == 0).await);
}

#[tokio::test]
async fn half_open_sockets_are_detected_by_ping_timeout() {
    let mut c = ServeConfig::for_env(echo_env());
    c.ws_ping_interval = 0.2;
    c.ws_ping_timeout = 0.4;
    c.max_concurrent_envs = Some(1);
    let server = TestServer::start(c).await;
    // A client that completes the upgrade and then never reads or answers again.
    let mut raw = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let upgrade = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        server.addr
    );
    raw.write_all(upgrade.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    raw.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");
    assert!(eventually(3, || server.state.sessions.active() == 1).await);
    assert!(
        eventually(5, || server.state.sessions.active() == 0).await,
        "the silent peer's slot is freed"
    );
    let mut ws = server.ws().await;
    assert!(ws.call(r#"{"type":"state"}"#).await.contains("state"));
    drop(raw);
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
}

#[tokio::test]
async fn graceful_shutdown_closes_sockets_and_stops_workers() {
    let server = TestServer::echo().await;
    let pids: Vec<u32> = server
        .state
        .pool
        .workers()
        .iter()
        .filter_map(|w| w.pid())
        .collect();
    assert!(!pids.is_empty());
    let mut ws = server.ws().await;
    assert!(ws.call(r#"{"type":"state"}"#).await.contains("state"));
    let started = Instant::now();
    let stopping = tokio::spawn(server.stop());
    assert_eq!(ws.recv().await, Frame::Closed(Some(1001)));
    stopping.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        eventually(5, || pids.iter().all(|p| !alive(*p))).await,
        "worker processes exit"
    );
}

#[tokio::test]
async fn sigterm_stops_the_binary_within_seconds() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_envtorch-server"))
        .args(["--env", echo_env().to_str().unwrap()])
        .env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("ws://127.0.0.1:{port}/ws");
    let mut connected = None;
    for _ in 0..100 {
        if let Ok((ws, _)) = tokio_tungstenite::connect_async(&url).await {
            connected = Some(ws);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(connected.is_some(), "server came up");
    let pid = child.id().unwrap();
    let children: Vec<u32> = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    assert!(!children.is_empty(), "workers run as child processes");
    let started = Instant::now();
    tokio::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(8), child.wait())
        .await
        .expect("exits in time")
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        eventually(3, || children.iter().all(|p| !alive(*p))).await,
        "no worker outlives the server"
    );
}

#[tokio::test]
async fn the_pool_starts_with_one_worker_and_grows_when_busy() {
    let mut c = ServeConfig::for_env(echo_env());
    c.workers = Some(2);
    let server = TestServer::start(c).await;
    assert_eq!(
        server.state.pool.workers().len(),
        1,
        "an idle server runs one worker"
    );
    let mut a = server.ws().await;
    assert!(a.call(r#"{"type":"state"}"#).await.contains("state"));
    let mut b = server.ws().await;
    assert!(b.call(r#"{"type":"state"}"#).await.contains("state"));
    assert_eq!(
        server.state.pool.workers().len(),
        2,
        "a second session gets a second worker"
    );
    let mut c3 = server.ws().await;
    assert!(c3.call(r#"{"type":"state"}"#).await.contains("state"));
    assert_eq!(
        server.state.pool.workers().len(),
        2,
        "never more than --workers"
    );
}

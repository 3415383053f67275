//! Worker faults: a crash, a hang, garbage on stdout, a panic, a failing factory. Each fails
//! only the sessions of that worker, with a clear error frame; the server keeps serving,
//! restarts the worker, and capacity comes back.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod common;

use std::time::Duration;

use common::{Frame, TestServer, eventually, fault_env};
use envtorch_server::config::ServeConfig;

fn config() -> ServeConfig {
    let mut c = ServeConfig::for_env(fault_env());
    c.workers = Some(1);
    c.max_concurrent_envs = Some(4);
    c.worker_timeout = 2.0;
    c
}

fn worker_pid(server: &TestServer) -> u32 {
    server.state.pool.workers()[0].pid().expect("pid")
}

async fn assert_session_lost(frame: Frame, ws: &mut common::Ws) {
    match frame {
        Frame::Text(t) => {
            let v: serde_json::Value = serde_json::from_str(&t).unwrap();
            assert_eq!(v["data"]["code"], "SESSION_ERROR", "{t}");
            assert!(
                v["data"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("session is lost"),
                "{t}"
            );
            assert_eq!(ws.recv().await, Frame::Closed(Some(1000)));
        }
        other => panic!("expected a SESSION_ERROR frame, got {other:?}"),
    }
}

async fn recovers(server: &TestServer, old_pid: u32) {
    assert!(
        eventually(10, || server.state.sessions.active() == 0).await,
        "capacity restored"
    );
    assert!(
        eventually(10, || server.state.pool.workers()[0].pid() != Some(old_pid)
            && !server.state.pool.workers()[0].is_dead())
        .await,
        "worker restarted"
    );
    let mut ws = server.ws().await;
    let reply = ws.call(r#"{"type":"step","data":{"fault":"none"}}"#).await;
    assert!(
        reply.contains(r#""type":"observation""#),
        "new sessions work: {reply}"
    );
}

#[tokio::test]
async fn killed_worker_fails_its_sessions_and_is_replaced() {
    let server = TestServer::start(config()).await;
    let mut a = server.ws().await;
    let mut b = server.ws().await;
    assert!(a.call(r#"{"type":"reset"}"#).await.contains("observation"));
    assert!(b.call(r#"{"type":"reset"}"#).await.contains("observation"));
    let pid = worker_pid(&server);
    let status = tokio::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let frame = a.recv().await;
    assert_session_lost(frame, &mut a).await;
    let frame = b.recv().await;
    assert_session_lost(frame, &mut b).await;
    recovers(&server, pid).await;
}

#[tokio::test]
async fn hung_worker_is_killed_after_the_timeout() {
    let server = TestServer::start(config()).await;
    let mut idle = server.ws().await;
    assert!(
        idle.call(r#"{"type":"reset"}"#)
            .await
            .contains("observation")
    );
    let pid = worker_pid(&server);
    let mut hung = server.ws().await;
    let started = std::time::Instant::now();
    hung.send(r#"{"type":"step","data":{"fault":"hang"}}"#)
        .await;
    let frame = hung.recv().await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "answered after the 2 s timeout, not never"
    );
    assert_session_lost(frame, &mut hung).await;
    let frame = idle.recv().await;
    assert_session_lost(frame, &mut idle).await;
    recovers(&server, pid).await;
}

#[tokio::test]
async fn garbage_on_stdout_kills_the_worker() {
    let server = TestServer::start(config()).await;
    let pid = worker_pid(&server);
    let mut ws = server.ws().await;
    ws.send(r#"{"type":"step","data":{"fault":"garbage"}}"#)
        .await;
    let frame = ws.recv().await;
    assert_session_lost(frame, &mut ws).await;
    recovers(&server, pid).await;
}

#[tokio::test]
async fn exiting_worker_fails_the_request() {
    let server = TestServer::start(config()).await;
    let pid = worker_pid(&server);
    let mut ws = server.ws().await;
    ws.send(r#"{"type":"step","data":{"fault":"exit"}}"#).await;
    let frame = ws.recv().await;
    assert_session_lost(frame, &mut ws).await;
    recovers(&server, pid).await;
}

#[tokio::test]
async fn panics_and_errors_are_execution_errors_and_the_session_goes_on() {
    let server = TestServer::start(config()).await;
    let mut ws = server.ws().await;
    assert_eq!(
        ws.call(r#"{"type":"step","data":{"fault":"panic"}}"#).await,
        r#"{"type":"error","data":{"message":"fault env panicked on request","code":"EXECUTION_ERROR"}}"#
    );
    assert_eq!(
        ws.call(r#"{"type":"step","data":{"fault":"error"}}"#).await,
        r#"{"type":"error","data":{"message":"fault env failed on request","code":"EXECUTION_ERROR"}}"#
    );
    let bad = ws
        .call(r#"{"type":"step","data":{"fault":"sideways"}}"#)
        .await;
    assert!(
        bad.contains(r#""code":"VALIDATION_ERROR""#) && bad.contains(r#""type":"enum""#),
        "{bad}"
    );
    let ok = ws.call(r#"{"type":"step","data":{"fault":"none"}}"#).await;
    assert!(
        ok.contains(r#""reward":1,"#),
        "integer rewards stay integers on /ws: {ok}"
    );
    assert_eq!(
        ws.call(r#"{"type":"state"}"#).await,
        r#"{"type":"state","data":{"episode_id":null,"step_count":3}}"#
    );
    let (status, body) =
        common::post_json(server.addr, "/step", r#"{"action":{"fault":"error"}}"#).await;
    assert_eq!((status, body.as_str()), (500, "Internal Server Error"));
    let (status, body) =
        common::post_json(server.addr, "/step", r#"{"action":{"fault":"none"}}"#).await;
    assert_eq!(status, 200);
    assert!(
        body.contains(r#""reward":1.0,"#),
        "HTTP coerces rewards to float: {body}"
    );
}

#[tokio::test]
async fn failing_factory_is_a_factory_error() {
    let mut c = config();
    c.env_args = vec!["--fail-factory".into()];
    let server = TestServer::start(c).await;
    let mut ws = server.ws().await;
    assert_eq!(
        ws.text().await,
        r#"{"type":"error","data":{"message":"Environment factory 'factory' failed to create instance.","code":"FACTORY_ERROR","factory_name":"factory"}}"#
    );
    assert_eq!(ws.recv().await, Frame::Closed(Some(1000)));
    assert_eq!(
        server.state.sessions.active(),
        0,
        "a failed creation holds no slot"
    );
    assert_eq!(
        common::get(server.addr, "/health").await.0,
        200,
        "health does not touch the environment"
    );
}

#[tokio::test]
async fn per_session_isolation_confines_a_crash_to_its_session() {
    let mut c = config();
    c.isolation = envtorch_server::config::IsolationArg::PerSession;
    let server = TestServer::start(c).await;
    let mut a = server.ws().await;
    let mut b = server.ws().await;
    let pid_a = a.json_call(r#"{"type":"reset"}"#).await["data"]["observation"]["pid"]
        .as_u64()
        .unwrap();
    let pid_b = b.json_call(r#"{"type":"reset"}"#).await["data"]["observation"]["pid"]
        .as_u64()
        .unwrap();
    assert_ne!(pid_a, pid_b, "each session has a worker process of its own");
    a.send(r#"{"type":"step","data":{"fault":"exit"}}"#).await;
    let frame = a.recv().await;
    assert_session_lost(frame, &mut a).await;
    let reply = b.call(r#"{"type":"step","data":{"fault":"none"}}"#).await;
    assert!(
        reply.contains(&format!(r#""pid":{pid_b}"#)),
        "the other session is untouched: {reply}"
    );
    b.close().await;
    assert!(eventually(5, || server.state.sessions.active() == 0).await);
    assert!(
        eventually(5, || !std::path::Path::new(&format!(
            "/proc/{pid_b}/cmdline"
        ))
        .exists()
            || std::fs::read_to_string(format!("/proc/{pid_b}/stat"))
                .is_ok_and(|s| s.contains(") Z ")))
        .await,
        "a closed session's worker exits"
    );
}

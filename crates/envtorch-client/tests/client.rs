//! The client against real servers: envtorch's echo server and the Python reference echo
//! servers (openenv 0.10.0 and openenv-core 0.3.0), plus silent and dying servers for the
//! timeout and disconnect paths.

// Helpers outside `#[test]` functions may unwrap and panic too: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use envtorch_client::{
    ClientConfig, ClientError, EnvClient, ErrorCode, ResetOptions, ServerUrl, StepResult,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The echo env's MCP action, typed.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum EchoAction {
    ListTools,
    CallTool {
        tool_name: String,
        arguments: serde_json::Map<String, Value>,
    },
}

/// The echo env's call_tool observation, typed (only the fields used here).
#[derive(Debug, Deserialize)]
struct CallToolObservation {
    tool_name: String,
    result: Value,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct BaseState {
    episode_id: Option<String>,
    step_count: u64,
}

fn call(tool: &str, message: &str) -> EchoAction {
    let mut arguments = serde_json::Map::new();
    arguments.insert("message".into(), json!(message));
    EchoAction::CallTool {
        tool_name: tool.into(),
        arguments,
    }
}

/// One full echo session, the same against every server.
async fn drive_echo(client: &EnvClient, expect_metadata: bool) {
    let health = client.health().await.unwrap();
    assert_eq!(health.status, "healthy");
    let schema = client.schema().await.unwrap();
    for key in ["action", "observation", "state"] {
        assert!(schema.get(key).is_some_and(Value::is_object), "{key}");
    }
    let metadata = client.metadata().await.unwrap();
    assert_eq!(metadata.name, "EchoEnvironment");

    let mut session = client.connect().await.unwrap();
    let reset = session
        .reset(&ResetOptions::new().seed(7).episode_id("ep-client-1"))
        .await
        .unwrap();
    assert_eq!(reset.reward, Some(0.0));
    assert!(!reset.done);
    assert_eq!(reset.metadata.is_some(), expect_metadata, "{reset:?}");

    let state: BaseState = session.state().await.unwrap();
    assert_eq!(state.episode_id.as_deref(), Some("ep-client-1"));
    assert_eq!(state.step_count, 0);

    // Untyped.
    let tools = session
        .step_json(json!({"type": "list_tools"}))
        .await
        .unwrap();
    let names: Vec<&str> = tools.observation["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["echo_message", "echo_with_length"]);
    // The same with a typed action and an untyped observation.
    let typed_tools: StepResult<Value> = session.step(&EchoAction::ListTools).await.unwrap();
    assert_eq!(typed_tools.observation, tools.observation);

    // Typed.
    let r: StepResult<CallToolObservation> = session
        .step(&call("echo_with_length", "Test"))
        .await
        .unwrap();
    assert_eq!(r.observation.tool_name, "echo_with_length");
    assert_eq!(
        r.observation.result["data"],
        json!({"message": "Test", "length": 4})
    );
    assert_eq!(r.reward, None);
    let r: StepResult<CallToolObservation> = session.step(&call("nope", "x")).await.unwrap();
    assert_eq!(r.observation.error.unwrap()["error_type"], "tool_not_found");

    // An error frame is a typed error carrying its code, and the session stays usable.
    let err = session
        .step_json(json!({"message": "hi"}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::ValidationError), "{err}");
    assert!(!err.ends_session());
    let ClientError::Server(server_error) = &err else {
        panic!("{err:?}")
    };
    assert!(!server_error.validation_errors().unwrap().is_empty());
    assert!(
        err.to_string().contains("(code: VALIDATION_ERROR)"),
        "{err}"
    );

    let state = session.state_json().await.unwrap();
    assert_eq!(state["step_count"], 4, "{state}");

    session.close().await.unwrap();
    assert!(!session.is_open());
    assert!(matches!(
        session.state_json().await,
        Err(ClientError::SessionClosed)
    ));
    session.close().await.unwrap();

    // A typed session over the same protocol.
    let mut typed = client
        .connect()
        .await
        .unwrap()
        .typed::<EchoAction, CallToolObservation, BaseState>();
    let _ = typed.untyped().reset(&ResetOptions::new()).await.unwrap();
    let r = typed.step(&call("echo_message", "typed")).await.unwrap();
    assert_eq!(r.observation.result["data"], "typed");
    assert_eq!(typed.state().await.unwrap().step_count, 1);
    typed.close().await.unwrap();
}

/// At capacity, the first request of the extra session fails with CAPACITY_REACHED, and the
/// error ends that session.
async fn capacity(client: &EnvClient) {
    let mut first = client.connect().await.unwrap();
    first.reset(&ResetOptions::new()).await.unwrap();
    let mut second = client.connect().await.unwrap();
    let err = second.reset(&ResetOptions::new()).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::CapacityReached), "{err}");
    assert!(err.ends_session());
    assert!(!second.is_open());
    let ClientError::Server(e) = err else {
        panic!()
    };
    assert_eq!(e.data["max_sessions"], 1);
    first.close().await.unwrap();
    // The slot comes back.
    let mut third = client.connect().await.unwrap();
    for _ in 0..50 {
        match third.reset(&ResetOptions::new()).await {
            Ok(_) => break,
            Err(e) if e.code() == Some(ErrorCode::CapacityReached) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                third = client.connect().await.unwrap();
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(third.is_open());
    third.close().await.unwrap();
}

#[tokio::test]
async fn envtorch_server_full_session() {
    let server = common::envtorch_echo(&[]).await;
    drive_echo(&server.client(), true).await;
}

#[tokio::test]
async fn envtorch_server_capacity() {
    let server = common::envtorch_echo(&[("MAX_CONCURRENT_ENVS", "1")]).await;
    capacity(&server.client()).await;
}

#[tokio::test]
async fn reference_openenv_0_10_full_session_and_capacity() {
    let Some(server) =
        common::reference_echo("openenv-0.10.0", &[("MAX_CONCURRENT_ENVS", "1")]).await
    else {
        return;
    };
    drive_echo(&server.client(), true).await;
    capacity(&server.client()).await;
}

#[tokio::test]
async fn reference_openenv_core_0_3_full_session() {
    let Some(server) = common::reference_echo("openenv-core-0.3.0", &[]).await else {
        return;
    };
    // 0.3.0 never sends metadata.
    drive_echo(&server.client(), false).await;
}

#[tokio::test]
async fn server_killed_mid_episode_is_a_clean_error() {
    let mut server = common::envtorch_echo(&[]).await;
    let client = server.client();
    let mut session = client.connect().await.unwrap();
    session.reset(&ResetOptions::new()).await.unwrap();
    server.kill();
    let started = std::time::Instant::now();
    let err = session
        .step_json(json!({"type": "list_tools"}))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Closed { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!session.is_open());
    // Connecting to a dead server fails fast with a connect error.
    assert!(matches!(
        client.connect().await,
        Err(ClientError::Connect { .. })
    ));
    assert!(matches!(
        client.health().await,
        Err(ClientError::Connect { .. })
    ));
}

#[tokio::test]
async fn silent_server_hits_the_reply_timeout_and_closes_the_session() {
    // A real WebSocket server that accepts and then never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accept = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let ws = tokio_tungstenite::accept_async(stream).await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(ws);
    });
    let config = ClientConfig {
        reply_timeout: Duration::from_millis(300),
        ..ClientConfig::default()
    };
    let client = EnvClient::with_config(ServerUrl::local(port), config);
    let mut session = client.connect().await.unwrap();
    let err = session.state_json().await.unwrap_err();
    assert!(matches!(err, ClientError::ReplyTimeout { .. }), "{err:?}");
    assert!(!session.is_open());
    accept.abort();
}

#[tokio::test]
async fn handshake_that_never_completes_hits_the_connect_timeout() {
    // Accepts TCP, never speaks HTTP.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let (_stream, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let config = ClientConfig {
        connect_timeout: Duration::from_millis(300),
        reply_timeout: Duration::from_millis(300),
        ..ClientConfig::default()
    };
    let client = EnvClient::with_config(ServerUrl::local(port), config);
    let err = client.connect().await.unwrap_err();
    assert!(matches!(err, ClientError::ConnectTimeout { .. }), "{err:?}");
    hold.abort();
}

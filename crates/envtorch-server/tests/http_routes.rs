//! HTTP routes against the real echo environment: bodies and status codes as the reference
//! (0.10) sends them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod common;

use common::{TestServer, get, http, post_json};
use envtorch_server::config::{Mode, ServeConfig};

#[tokio::test]
async fn health_metadata_schema_and_openapi() {
    let server = TestServer::echo().await;
    let (status, head, body) = http(server.addr, "GET", "/health?x=1", None, b"").await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"healthy"}"#));
    assert!(head.contains("content-type: application/json"));
    let (status, head, body) = http(server.addr, "POST", "/health", None, b"").await;
    assert_eq!(
        (status, body.as_str()),
        (405, r#"{"detail":"Method Not Allowed"}"#)
    );
    assert!(head.contains("allow: get"), "{head}");
    assert_eq!(
        get(server.addr, "/metadata").await,
        (200, r#"{"name":"EchoEnvironment","description":"EchoEnvironment environment","readme_content":null,"version":"1.0.0","author":null,"documentation_url":null}"#.to_owned())
    );
    let (_, schema) = get(server.addr, "/schema").await;
    let schema: serde_json::Value = serde_json::from_str(&schema).unwrap();
    assert_eq!(schema["action"]["title"], "CallToolAction");
    assert_eq!(schema["observation"]["title"], "CallToolObservation");
    assert_eq!(schema["reset_observation"], schema["observation"]);
    assert_eq!(schema["state"]["title"], "State");
    let (_, openapi) = get(server.addr, "/openapi.json").await;
    let openapi: serde_json::Value = serde_json::from_str(&openapi).unwrap();
    assert_eq!(openapi["info"]["version"], "1.0.0");
    for path in [
        "/reset",
        "/step",
        "/state",
        "/metadata",
        "/health",
        "/schema",
        "/mcp",
    ] {
        assert!(
            openapi["paths"].get(path).is_some(),
            "{path} missing from openapi"
        );
    }
    assert_eq!(
        get(server.addr, "/nope").await,
        (404, r#"{"detail":"Not Found"}"#.to_owned())
    );
    assert_eq!(
        get(server.addr, "/ws").await,
        (404, r#"{"detail":"Not Found"}"#.to_owned())
    );
}

#[tokio::test]
async fn stateless_reset_step_state() {
    let server = TestServer::echo().await;
    assert_eq!(
        post_json(server.addr, "/reset", r#"{"seed":42,"episode_id":"ep-1"}"#).await,
        (200, r#"{"observation":{"metadata":{"status":"ready","message":"Echo environment ready!"}},"reward":0.0,"done":false,"metadata":{"status":"ready","message":"Echo environment ready!"}}"#.to_owned())
    );
    assert_eq!(
        post_json(server.addr, "/step", r#"{"action":{"type":"call_tool","tool_name":"echo_message","arguments":{"message":"Hello"}}}"#).await,
        (200, r#"{"observation":{"metadata":{},"tool_name":"echo_message","result":{"content":[{"type":"text","text":"Hello","annotations":null,"meta":null}],"structured_content":{"result":"Hello"},"meta":{"fastmcp":{"wrap_result":true}},"data":"Hello","is_error":false},"error":null},"reward":null,"done":false,"metadata":null}"#.to_owned())
    );
    let (_, a) = get(server.addr, "/state").await;
    let (_, b) = get(server.addr, "/state").await;
    assert!(a.ends_with(r#""step_count":0}"#) && b.ends_with(r#""step_count":0}"#));
    assert_ne!(
        a, b,
        "every /state is a fresh environment with a fresh episode id"
    );
}

#[tokio::test]
async fn request_validation_matrix() {
    let server = TestServer::echo().await;
    /// method, path, content type, body, expected status, expected body.
    type Case<'a> = (&'a str, &'a str, Option<&'a str>, &'a str, u16, &'a str);
    let cases: &[Case<'_>] = &[
        (
            "POST",
            "/reset",
            Some("application/json"),
            r#"{"seed":-1}"#,
            422,
            r#"{"detail":[{"type":"greater_than_equal","loc":["body","seed"],"msg":"Input should be greater than or equal to 0","input":-1,"ctx":{"ge":0}}]}"#,
        ),
        (
            "POST",
            "/reset",
            Some("application/json"),
            r#"{"seed":"abc"}"#,
            422,
            r#"{"detail":[{"type":"int_parsing","loc":["body","seed"],"msg":"Input should be a valid integer, unable to parse string as an integer","input":"abc"}]}"#,
        ),
        (
            "POST",
            "/reset",
            Some("application/json"),
            "{bad json",
            422,
            r#"{"detail":[{"type":"json_invalid","loc":["body",1],"msg":"JSON decode error","input":{},"ctx":{"error":"Expecting property name enclosed in double quotes"}}]}"#,
        ),
        (
            "POST",
            "/reset",
            Some("application/json"),
            "[]",
            422,
            r#"{"detail":[{"type":"model_attributes_type","loc":["body"],"msg":"Input should be a valid dictionary or object to extract fields from","input":[]}]}"#,
        ),
        (
            "POST",
            "/reset",
            Some("application/json"),
            "null",
            422,
            r#"{"detail":[{"type":"model_attributes_type","loc":["body"],"msg":"Input should be a valid dictionary or object to extract fields from","input":null}]}"#,
        ),
        (
            "POST",
            "/reset",
            Some("text/plain"),
            "{}",
            422,
            r#"{"detail":[{"type":"model_attributes_type","loc":["body"],"msg":"Input should be a valid dictionary or object to extract fields from","input":"{}"}]}"#,
        ),
        (
            "POST",
            "/step",
            None,
            "",
            422,
            r#"{"detail":[{"type":"missing","loc":["body"],"msg":"Field required","input":null}]}"#,
        ),
        (
            "POST",
            "/step",
            Some("application/json"),
            "{}",
            422,
            r#"{"detail":[{"type":"missing","loc":["body","action"],"msg":"Field required","input":{}}]}"#,
        ),
        (
            "POST",
            "/step",
            Some("application/json"),
            r#"{"action":"str"}"#,
            422,
            r#"{"detail":[{"type":"dict_type","loc":["body","action"],"msg":"Input should be a valid dictionary","input":"str"}]}"#,
        ),
        (
            "POST",
            "/step",
            Some("application/json"),
            r#"{"action":{},"timeout_s":0}"#,
            422,
            r#"{"detail":[{"type":"greater_than","loc":["body","timeout_s"],"msg":"Input should be greater than 0","input":0,"ctx":{"gt":0.0}}]}"#,
        ),
        (
            "POST",
            "/step",
            Some("application/json"),
            r#"{"action":{"type":"call_tool"}}"#,
            422,
            r#"{"detail":[{"type":"missing","loc":["tool_name"],"msg":"Field required","input":{"type":"call_tool"},"url":"https://errors.pydantic.dev/2.14/v/missing"}]}"#,
        ),
        (
            "POST",
            "/step",
            Some("application/json"),
            r#"{"action":{"type":"list_tools","foo":1}}"#,
            422,
            r#"{"detail":[{"type":"extra_forbidden","loc":["foo"],"msg":"Extra inputs are not permitted","input":1,"url":"https://errors.pydantic.dev/2.14/v/extra_forbidden"}]}"#,
        ),
        (
            "GET",
            "/reset",
            None,
            "",
            405,
            r#"{"detail":"Method Not Allowed"}"#,
        ),
    ];
    for (method, path, ct, body, status, expected) in cases {
        let (got_status, _, got) = http(server.addr, method, path, *ct, body.as_bytes()).await;
        assert_eq!(
            (got_status, got.as_str()),
            (*status, *expected),
            "{method} {path} {body}"
        );
    }
    // Undecodable bytes: FastAPI's 400.
    let (status, _, body) = http(
        server.addr,
        "POST",
        "/reset",
        Some("application/json"),
        b"{\"seed\":\xff}",
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (400, r#"{"detail":"There was an error parsing the body"}"#)
    );
    // Extras are allowed on reset.
    assert_eq!(
        post_json(server.addr, "/reset", r#"{"foo":"bar"}"#).await.0,
        200
    );
}

#[tokio::test]
async fn mcp_json_rpc_matrix() {
    let server = TestServer::echo().await;
    let cases = [
        (
            r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"nope","arguments":{}},"id":3}"#,
            r#"{"jsonrpc":"2.0","id":3,"error":{"code":-32603,"message":"Unknown tool: 'nope'","data":null}}"#,
        ),
        (
            r#"{"jsonrpc":"2.0","method":"tools/call","params":{},"id":4}"#,
            r#"{"jsonrpc":"2.0","id":4,"error":{"code":-32602,"message":"Missing 'name' in params","data":null}}"#,
        ),
        (
            r#"{"jsonrpc":"2.0","method":"foo/bar","id":5}"#,
            r#"{"jsonrpc":"2.0","id":5,"error":{"code":-32601,"message":"Method not found: foo/bar","data":null}}"#,
        ),
        (
            r#"{"jsonrpc":"2.0","method":"initialize","id":"s"}"#,
            r#"{"jsonrpc":"2.0","id":"s","error":{"code":-32601,"message":"Method not found: initialize","data":null}}"#,
        ),
        (
            "{oops",
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error","data":null}}"#,
        ),
        (
            r#"{"jsonrpc":"2.0","method":"openenv/session/close","params":{},"id":7}"#,
            r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"Invalid params - 'session_id' is required","data":null}}"#,
        ),
        (
            r#"{"jsonrpc":"2.0","method":"openenv/session/close","params":{"session_id":"does-not-exist"},"id":8}"#,
            r#"{"jsonrpc":"2.0","id":8,"error":{"code":-32602,"message":"Unknown session_id: does-not-exist","data":null}}"#,
        ),
    ];
    for (sent, expected) in cases {
        assert_eq!(
            post_json(server.addr, "/mcp", sent).await,
            (200, expected.to_owned()),
            "{sent}"
        );
    }
    let (status, invalid) = post_json(server.addr, "/mcp", "{}").await;
    assert_eq!(status, 200);
    assert!(invalid.starts_with(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid request: 2 validation errors for JsonRpcRequest"#), "{invalid}");
    let (_, listed) = post_json(
        server.addr,
        "/mcp",
        r#"{"jsonrpc":"2.0","method":"tools/list","id":1}"#,
    )
    .await;
    assert!(
        listed.contains(r#""inputSchema":{"type":"object","additionalProperties":false"#),
        "{listed}"
    );
    // Session lifecycle: create, use, close, then unknown.
    let (_, created) = post_json(
        server.addr,
        "/mcp",
        r#"{"jsonrpc":"2.0","method":"openenv/session/create","params":{},"id":1}"#,
    )
    .await;
    let id = serde_json::from_str::<serde_json::Value>(&created).unwrap()["result"]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, called) = post_json(server.addr, "/mcp", &format!(r#"{{"jsonrpc":"2.0","method":"tools/call","params":{{"name":"echo_with_length","arguments":{{"message":"prod"}},"session_id":"{id}"}},"id":3}}"#)).await;
    assert!(
        called.contains(r#""data":{"message":"prod","length":4}"#),
        "{called}"
    );
    let (_, closed) = post_json(server.addr, "/mcp", &format!(r#"{{"jsonrpc":"2.0","method":"openenv/session/close","params":{{"session_id":"{id}"}},"id":4}}"#)).await;
    assert_eq!(
        closed,
        format!(r#"{{"jsonrpc":"2.0","id":4,"result":{{"session_id":"{id}","closed":true}}}}"#)
    );
    assert_eq!(server.state.sessions.active(), 0);
}

#[tokio::test]
async fn task_api_without_tasks_answers_501() {
    let server = TestServer::echo().await;
    assert_eq!(
        get(server.addr, "/list_environments").await,
        (200, r#"["echo_env"]"#.to_owned())
    );
    assert_eq!(
        get(server.addr, "/echo_env/splits").await,
        (
            501,
            r#"{"detail":"list_splits is not supported for this environment"}"#.to_owned()
        )
    );
    assert_eq!(
        get(server.addr, "/ECHO_ENV/splits").await.0,
        501,
        "env names match case-insensitively"
    );
    assert_eq!(
        post_json(server.addr, "/echo_env/tasks", r#"{"split":"train"}"#).await,
        (
            501,
            r#"{"detail":"list_tasks is not supported for this environment"}"#.to_owned()
        )
    );
    assert_eq!(post_json(server.addr, "/echo_env/tasks", "{}").await, (422, r#"{"detail":[{"type":"missing","loc":["body","split"],"msg":"Field required","input":{}}]}"#.to_owned()));
    assert_eq!(
        get(server.addr, "/other_env/splits").await,
        (
            404,
            r#"{"detail":"unknown environment 'other_env'"}"#.to_owned()
        )
    );
}

#[tokio::test]
async fn production_mode_drops_the_simulation_routes() {
    let mut config = ServeConfig::for_env(common::echo_env());
    config.mode = Mode::Production;
    let server = TestServer::start(config).await;
    assert_eq!(post_json(server.addr, "/reset", "{}").await.0, 404);
    assert_eq!(get(server.addr, "/state").await.0, 404);
    let (_, openapi) = get(server.addr, "/openapi.json").await;
    assert!(!openapi.contains(r#""/reset""#));
    let mut ws = server.ws().await;
    assert!(
        ws.call(r#"{"type":"reset"}"#).await.contains("observation"),
        "/ws still serves sessions"
    );
}

#[tokio::test]
async fn health_subcommand_exits_0_or_1() {
    let server = TestServer::echo().await;
    let bin = env!("CARGO_BIN_EXE_envtorch-server");
    let ok = tokio::process::Command::new(bin)
        // The images set the serve variables; health must parse with them present.
        .env("PORT", "8000")
        .env("HOST", "0.0.0.0")
        .args(["health", "--url", &format!("http://{}", server.addr)])
        .status()
        .await
        .unwrap();
    assert!(ok.success());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = tokio::process::Command::new(bin)
        // The images set the serve variables; health must parse with them present.
        .env("PORT", "8000")
        .env("HOST", "0.0.0.0")
        .args(["health", "--url", &format!("http://127.0.0.1:{port}")])
        .status()
        .await
        .unwrap();
    assert_eq!(down.code(), Some(1));
}

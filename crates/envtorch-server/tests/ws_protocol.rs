//! `/ws` against the real echo environment: the reference transcripts byte for byte (0.10
//! envelope), the error matrix, capacity and attachment.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod common;

use common::{Frame, TestServer, Ws, eventually, post_json};
use envtorch_server::config::ServeConfig;

const READY: &str = r#"{"metadata":{"status":"ready","message":"Echo environment ready!"}}"#;

#[tokio::test]
async fn full_echo_session_matches_the_reference_transcript() {
    let server = TestServer::echo().await;
    let mut ws = server.ws().await;
    assert_eq!(
        ws.call(r#"{"type": "reset", "data": {"seed": 7, "episode_id": "ep-ws-1"}}"#)
            .await,
        format!(
            r#"{{"type":"observation","data":{{"observation":{READY},"reward":0.0,"done":false,"metadata":{{"status":"ready","message":"Echo environment ready!"}}}}}}"#
        )
    );
    assert_eq!(
        ws.call(r#"{"type": "state"}"#).await,
        r#"{"type":"state","data":{"episode_id":"ep-ws-1","step_count":0}}"#
    );
    assert_eq!(
        ws.call(r#"{"type": "step", "data": {"type": "list_tools"}}"#)
            .await,
        r#"{"type":"observation","data":{"observation":{"metadata":{},"tools":[{"name":"echo_message","description":"Echo back the provided message.","input_schema":{"type":"object","additionalProperties":false,"properties":{"message":{"type":"string","description":"The message to echo back"}},"required":["message"]}},{"name":"echo_with_length","description":"Echo back the message with its length.","input_schema":{"type":"object","additionalProperties":false,"properties":{"message":{"type":"string","description":"The message to echo back"}},"required":["message"]}}]},"reward":null,"done":false}}"#
    );
    assert_eq!(
        ws.call(r#"{"type": "step", "data": {"type": "call_tool", "tool_name": "echo_with_length", "arguments": {"message": "Test"}}}"#).await,
        r#"{"type":"observation","data":{"observation":{"metadata":{},"tool_name":"echo_with_length","result":{"content":[{"type":"text","text":"{\"message\":\"Test\",\"length\":4}","annotations":null,"meta":null}],"structured_content":{"message":"Test","length":4},"meta":null,"data":{"message":"Test","length":4},"is_error":false},"error":null},"reward":null,"done":false}}"#
    );
    assert_eq!(
        ws.call(r#"{"type": "step", "data": {"type": "call_tool", "tool_name": "nope", "arguments": {}}}"#).await,
        r#"{"type":"observation","data":{"observation":{"metadata":{},"tool_name":"nope","result":null,"error":{"error_type":"tool_not_found","message":"Unknown tool: 'nope'"}},"reward":null,"done":false}}"#
    );
    assert_eq!(
        ws.call(r#"{"type": "state"}"#).await,
        r#"{"type":"state","data":{"episode_id":"ep-ws-1","step_count":3}}"#
    );
    ws.send(r#"{"type": "close"}"#).await;
    assert_eq!(ws.recv().await, Frame::Closed(Some(1000)));
    assert!(
        eventually(5, || server.state.sessions.active() == 0).await,
        "close frees the slot"
    );
}

#[tokio::test]
async fn step_and_state_work_before_reset() {
    let server = TestServer::echo().await;
    let mut ws = server.ws().await;
    let state = ws.call(r#"{"type":"state"}"#).await;
    assert!(
        state.starts_with(r#"{"type":"state","data":{"episode_id":""#),
        "{state}"
    );
    let step = ws.call(r#"{"type":"step","data":{"tool_name":"echo_message","arguments":{"message":"before reset"}}}"#).await;
    assert!(step.contains(r#""data":"before reset""#), "{step}");
}

#[tokio::test]
async fn error_frames_keep_or_close_the_socket_like_the_reference() {
    let server = TestServer::echo().await;
    let mut ws = server.ws().await;
    let open_cases = [
        (
            "{not json",
            r#"{"type":"error","data":{"message":"Invalid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)","code":"INVALID_JSON"}}"#,
        ),
        (
            r#"{"type": "bogus"}"#,
            r#"{"type":"error","data":{"message":"Unknown message type: bogus","code":"UNKNOWN_TYPE"}}"#,
        ),
        (
            r#"{"data": {}}"#,
            r#"{"type":"error","data":{"message":"Unknown message type: ","code":"UNKNOWN_TYPE"}}"#,
        ),
        (
            r#"{"type": "step"}"#,
            r#"{"type":"error","data":{"message":"Invalid message","code":"VALIDATION_ERROR","errors":[{"type":"missing","loc":["data"],"msg":"Field required","input":{"type":"step"},"url":"https://errors.pydantic.dev/2.14/v/missing"}]}}"#,
        ),
        (
            r#"{"type": "step", "data": {"message": "hi"}}"#,
            r#"{"type":"error","data":{"message":"Invalid message","code":"VALIDATION_ERROR","errors":[{"type":"missing","loc":["tool_name"],"msg":"Field required","input":{"message":"hi"},"url":"https://errors.pydantic.dev/2.14/v/missing"},{"type":"extra_forbidden","loc":["message"],"msg":"Extra inputs are not permitted","input":"hi","url":"https://errors.pydantic.dev/2.14/v/extra_forbidden"}]}}"#,
        ),
        (
            r#"{"type": "reset", "data": {}, "extra": 1}"#,
            r#"{"type":"error","data":{"message":"Invalid message","code":"VALIDATION_ERROR","errors":[{"type":"extra_forbidden","loc":["extra"],"msg":"Extra inputs are not permitted","input":1,"url":"https://errors.pydantic.dev/2.14/v/extra_forbidden"}]}}"#,
        ),
        (
            r#"{"type": "state", "data": {}}"#,
            r#"{"type":"error","data":{"message":"Invalid message","code":"VALIDATION_ERROR","errors":[{"type":"extra_forbidden","loc":["data"],"msg":"Extra inputs are not permitted","input":{},"url":"https://errors.pydantic.dev/2.14/v/extra_forbidden"}]}}"#,
        ),
        (
            r#"{"type": "reset", "data": "notadict"}"#,
            r#"{"type":"error","data":{"message":"Invalid message","code":"VALIDATION_ERROR","errors":[{"type":"dict_type","loc":["data"],"msg":"Input should be a valid dictionary","input":"notadict","url":"https://errors.pydantic.dev/2.14/v/dict_type"}]}}"#,
        ),
    ];
    for (sent, expected) in open_cases {
        assert_eq!(ws.call(sent).await, expected, "reply to {sent}");
    }
    // Still usable after all of that.
    assert!(
        ws.call(r#"{"type":"state"}"#)
            .await
            .starts_with(r#"{"type":"state""#)
    );

    for (closing, expected) in [
        (
            "[1,2]",
            r#"{"type":"error","data":{"message":"'list' object has no attribute 'get'","code":"SESSION_ERROR"}}"#,
        ),
        (
            "null",
            r#"{"type":"error","data":{"message":"'NoneType' object has no attribute 'get'","code":"SESSION_ERROR"}}"#,
        ),
    ] {
        let mut ws = server.ws().await;
        assert_eq!(ws.call(closing).await, expected);
        assert_eq!(ws.recv().await, Frame::Closed(Some(1000)));
    }
    let mut ws = server.ws().await;
    ws.send_binary(br#"{"type":"state"}"#).await;
    assert_eq!(
        ws.text().await,
        r#"{"type":"error","data":{"message":"'text'","code":"SESSION_ERROR"}}"#
    );
    assert_eq!(ws.recv().await, Frame::Closed(Some(1000)));
}

#[tokio::test]
async fn garbage_burst_then_a_normal_session_works() {
    let server = TestServer::echo().await;
    let mut ws = server.ws().await;
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let invalid_utf8_escape =
        r#"{"type":"step","data":{"tool_name":"echo_message","arguments":{"message":"\udc80"}}}"#;
    for garbage in [
        "",
        " ",
        "{",
        "}",
        "\"str\"",
        "{\"type\":5}",
        "{\"type\":\"step\",\"data\":[]}",
        invalid_utf8_escape,
        &deep,
    ] {
        ws.send(garbage).await;
        match ws.recv().await {
            Frame::Text(t) => assert!(t.starts_with(r#"{"type":"#), "{t}"),
            Frame::Closed(code) => {
                assert_eq!(code, Some(1000), "only SESSION_ERROR closes, and with 1000");
                ws = server.ws().await;
            }
        }
    }
    let mut fresh = server.ws().await;
    let reply = fresh.call(r#"{"type":"step","data":{"tool_name":"echo_message","arguments":{"message":"still fine"}}}"#).await;
    assert!(reply.contains(r#""data":"still fine""#), "{reply}");
}

#[tokio::test]
async fn oversized_message_closes_with_1009_and_the_server_keeps_serving() {
    let mut config = ServeConfig::for_env(common::echo_env());
    config.ws_max_message = 64 * 1024;
    let server = TestServer::start(config).await;
    let mut ws = server.ws().await;
    let big = format!(
        r#"{{"type":"step","data":{{"tool_name":"echo_message","arguments":{{"message":"{}"}}}}}}"#,
        "x".repeat(100 * 1024)
    );
    ws.send(&big).await;
    assert_eq!(ws.recv().await, Frame::Closed(Some(1009)));
    assert!(eventually(5, || server.state.sessions.active() == 0).await);
    let mut ws = server.ws().await;
    assert!(
        ws.call(r#"{"type":"state"}"#)
            .await
            .starts_with(r#"{"type":"state""#)
    );
}

#[tokio::test]
async fn capacity_is_shared_and_freed_on_any_disconnect() {
    let mut config = ServeConfig::for_env(common::echo_env());
    config.max_concurrent_envs = Some(2);
    let server = TestServer::start(config).await;
    let mut a = server.ws().await;
    assert!(a.call(r#"{"type":"state"}"#).await.contains("state"));
    // An MCP session takes the second slot.
    let (status, created) = post_json(
        server.addr,
        "/mcp",
        r#"{"jsonrpc":"2.0","method":"openenv/session/create","params":{},"id":1}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert!(created.contains("session_id"), "{created}");
    let mut c = server.ws().await;
    assert_eq!(
        c.text().await,
        r#"{"type":"error","data":{"message":"Server at capacity: 2/2 sessions active. Cannot accept new connections.","code":"CAPACITY_REACHED","active_sessions":2,"max_sessions":2}}"#
    );
    assert_eq!(c.recv().await, Frame::Closed(Some(1000)));
    // Dropping the TCP connection without a close message frees the slot.
    drop(a);
    assert!(eventually(5, || server.state.sessions.active() == 1).await);
    let mut d = server.ws().await;
    assert!(
        d.call(r#"{"type":"state"}"#)
            .await
            .contains(r#""type":"state""#)
    );
}

#[tokio::test]
async fn attach_to_an_mcp_session_uses_no_slot_and_survives_detach() {
    let mut config = ServeConfig::for_env(common::echo_env());
    config.max_concurrent_envs = Some(1);
    let server = TestServer::start(config).await;
    let (_, created) = post_json(
        server.addr,
        "/mcp",
        r#"{"jsonrpc":"2.0","method":"openenv/session/create","id":1}"#,
    )
    .await;
    let id = serde_json::from_str::<serde_json::Value>(&created).unwrap()["result"]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = server.ws_url(&format!("/ws?session_id={id}"));
    let mut attached = Ws::connect(&url).await;
    assert!(
        attached
            .call(r#"{"type":"reset","data":{"episode_id":"att-1"}}"#)
            .await
            .contains("Echo environment ready!")
    );
    assert_eq!(
        attached.call(r#"{"type":"mcp","data":{"jsonrpc":"2.0","method":"openenv/session/create","id":1}}"#).await,
        format!(r#"{{"type":"mcp","data":{{"jsonrpc":"2.0","id":1,"result":{{"session_id":"{id}"}}}}}}"#)
    );
    assert_eq!(
        attached.call(&format!(r#"{{"type":"mcp","data":{{"jsonrpc":"2.0","method":"openenv/session/close","params":{{"session_id":"{id}"}},"id":2}}}}"#)).await,
        r#"{"type":"mcp","data":{"jsonrpc":"2.0","id":2,"error":{"code":-32600,"message":"Cannot close active WebSocket-managed session via MCP method","data":null}}}"#
    );
    let mut second = Ws::connect(&url).await;
    assert_eq!(
        second.text().await,
        format!(
            r#"{{"type":"error","data":{{"message":"Session {id} already has an attached WebSocket","code":"SESSION_ERROR"}}}}"#
        )
    );
    let mut unknown = Ws::connect(&server.ws_url("/ws?session_id=does-not-exist")).await;
    assert_eq!(
        unknown.text().await,
        r#"{"type":"error","data":{"message":"Unknown session_id: does-not-exist","code":"SESSION_ERROR"}}"#
    );
    // HTTP tool calls on the attached session are not steps.
    let (_, _) = post_json(server.addr, "/mcp", &format!(r#"{{"jsonrpc":"2.0","method":"tools/call","params":{{"name":"echo_message","arguments":{{"message":"x"}},"session_id":"{id}"}},"id":3}}"#)).await;
    assert!(
        attached
            .call(r#"{"type":"step","data":{"type":"list_tools"}}"#)
            .await
            .contains("tools")
    );
    attached.send(r#"{"type":"close"}"#).await;
    assert_eq!(attached.recv().await, Frame::Closed(Some(1000)));
    // The session survives the detach; re-attach sees its state.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let mut again = Ws::connect(&url).await;
    assert_eq!(
        again.call(r#"{"type":"state"}"#).await,
        r#"{"type":"state","data":{"episode_id":"att-1","step_count":1}}"#
    );
    // Closing while attached: closing now, destroyed when the socket leaves.
    let (_, closing) = post_json(server.addr, "/mcp", &format!(r#"{{"jsonrpc":"2.0","method":"openenv/session/close","params":{{"session_id":"{id}"}},"id":8}}"#)).await;
    assert_eq!(
        closing,
        format!(
            r#"{{"jsonrpc":"2.0","id":8,"result":{{"session_id":"{id}","closed":false,"closing":true}}}}"#
        )
    );
    assert!(again.call(r#"{"type":"state"}"#).await.contains("att-1"));
    again.close().await;
    assert!(
        eventually(5, || server.state.sessions.active() == 0).await,
        "destroyed after the socket left"
    );
    let (_, gone) = post_json(
        server.addr,
        "/mcp",
        &format!(
            r#"{{"jsonrpc":"2.0","method":"tools/list","params":{{"session_id":"{id}"}},"id":9}}"#
        ),
    )
    .await;
    assert_eq!(
        gone,
        format!(
            r#"{{"jsonrpc":"2.0","id":9,"error":{{"code":-32602,"message":"Unknown session_id: {id}","data":null}}}}"#
        )
    );
}

#[tokio::test]
async fn ws_mcp_speaks_bare_json_rpc_with_python_spacing() {
    let server = TestServer::echo().await;
    let mut ws = Ws::connect(&server.ws_url("/mcp")).await;
    let reply = ws.call(r#"{"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "echo_with_length", "arguments": {"message": "ws-mcp"}}, "id": 2}"#).await;
    assert!(
        reply.starts_with(r#"{"jsonrpc": "2.0", "id": 2, "result": {"content": ["#),
        "{reply}"
    );
    assert!(
        reply.contains(r#""data": {"message": "ws-mcp", "length": 6}"#),
        "{reply}"
    );
    assert_eq!(
        ws.call("{oops").await,
        r#"{"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "Parse error: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)", "data": null}}"#
    );
}

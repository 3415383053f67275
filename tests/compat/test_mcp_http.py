"""HTTP `POST /mcp`, the JSON-RPC 2.0 subset (spec §5.1, delta §6).

Always HTTP 200 with `jsonrpc`, `id` and exactly one of `result`/`error`; `error.data` is
always present. Verbatim bodies where the spec quotes them.
"""

import pytest

from _support import http_mcp_session, mcp_call


def post_raw(http, body: bytes):
    response = http.post("/mcp", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    return response


def assert_error(reply: dict, id_, code: int, message: str, data=None) -> None:
    assert reply == {"jsonrpc": "2.0", "id": id_, "error": {"code": code, "message": message, "data": data}}


# ---- tools ----------------------------------------------------------------------------------

def tool_input_schema(tool: dict) -> dict:
    # The key depends on the MCP library (delta §6.4, §11 conflict 5); clients accept both.
    return tool["inputSchema"] if "inputSchema" in tool else tool["input_schema"]


def test_tools_list(http):
    reply = mcp_call(http, "tools/list", id_=1)
    assert (reply["jsonrpc"], reply["id"]) == ("2.0", 1)
    assert "error" not in reply
    tools = reply["result"]["tools"]
    assert [(t["name"], t["description"]) for t in tools] == [
        ("echo_message", "Echo back the provided message."),
        ("echo_with_length", "Echo back the message with its length."),
    ]
    for tool in tools:
        assert tool_input_schema(tool) == {
            "type": "object",
            "additionalProperties": False,
            "properties": {"message": {"type": "string", "description": "The message to echo back"}},
            "required": ["message"],
        }


@pytest.mark.since_010("target uses the MCP-spec camelCase inputSchema (0.10.0 venv's mcp 1.x)")
def test_tools_list_uses_camel_case_input_schema(http):
    tools = mcp_call(http, "tools/list")["result"]["tools"]
    assert all("inputSchema" in t and "input_schema" not in t for t in tools)


def test_tools_call_echo_with_length(http):
    reply = mcp_call(http, "tools/call", {"name": "echo_with_length", "arguments": {"message": "abc"}}, id_=2)
    assert (reply["jsonrpc"], reply["id"]) == ("2.0", 2)
    result = reply["result"]
    assert result["content"] == [
        {"type": "text", "text": '{"message":"abc","length":3}', "annotations": None, "meta": None}
    ]
    assert result["structured_content"] == {"message": "abc", "length": 3}
    assert result["data"] == {"message": "abc", "length": 3}
    assert result["is_error"] is False


def test_tools_call_echo_message_string_id(http):
    reply = mcp_call(http, "tools/call", {"name": "echo_message", "arguments": {"message": "hi"}}, id_="req-1")
    assert reply["id"] == "req-1"
    assert reply["result"]["data"] == "hi"
    assert reply["result"]["structured_content"] == {"result": "hi"}


def test_request_without_id_still_gets_a_response(http):
    reply = post_raw(http, b'{"jsonrpc":"2.0","method":"tools/list"}').json()
    assert reply["id"] is None
    assert len(reply["result"]["tools"]) == 2


# ---- errors ---------------------------------------------------------------------------------

def test_unknown_tool_is_32603(http):
    reply = mcp_call(http, "tools/call", {"name": "nope", "arguments": {}}, id_=3)
    assert_error(reply, 3, -32603, "Unknown tool: 'nope'")


def test_tools_call_without_name_is_32602(http):
    assert_error(mcp_call(http, "tools/call", {}, id_=4), 4, -32602, "Missing 'name' in params")


@pytest.mark.parametrize("method", ["foo/bar", "initialize"])
def test_unknown_method_is_32601(http, method):
    assert_error(mcp_call(http, method, id_=5), 5, -32601, f"Method not found: {method}")


@pytest.mark.parametrize("body", [b"{bad json", b"[]", b""], ids=["bad-json", "array", "empty"])
def test_unparseable_or_non_object_body_is_32700(http, body):
    response = post_raw(http, body)
    assert response.content == b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error","data":null}}'


def test_empty_object_is_32600_invalid_request(http):
    # This is what `openenv validate` sends.
    reply = post_raw(http, b"{}").json()
    assert reply["id"] is None and reply["error"]["data"] is None
    assert reply["error"]["code"] == -32600
    assert reply["error"]["message"].startswith(
        "Invalid request: 2 validation errors for JsonRpcRequest\njsonrpc\n  Field required [type=missing"
    )


@pytest.mark.parametrize(
    "body",
    [
        b'{"jsonrpc":"1.0","method":"tools/list","id":1}',
        b'{"jsonrpc":"2.0","method":"tools/list","params":[],"id":1}',
        b'{"jsonrpc":"2.0","method":"tools/list","id":1,"extra":2}',
    ],
    ids=["jsonrpc-1.0", "params-array", "extra-key"],
)
def test_invalid_request_shape_is_32600_with_null_id(http, body):
    reply = post_raw(http, body).json()
    assert reply["id"] is None and reply["error"]["data"] is None
    assert reply["error"]["code"] == -32600
    assert reply["error"]["message"].startswith("Invalid request: 1 validation error for JsonRpcRequest\n")


# ---- sessions -------------------------------------------------------------------------------

def test_session_lifecycle(http):
    created = mcp_call(http, "openenv/session/create", {}, id_=1)
    session_id = created["result"]["session_id"]
    assert created == {"jsonrpc": "2.0", "id": 1, "result": {"session_id": session_id}}
    assert len(session_id) == 36

    call = mcp_call(http, "tools/call", {"name": "echo_message", "arguments": {"message": "s"}, "session_id": session_id}, id_=2)
    assert call["result"]["data"] == "s"
    assert len(mcp_call(http, "tools/list", {"session_id": session_id}, id_=3)["result"]["tools"]) == 2

    closed = mcp_call(http, "openenv/session/close", {"session_id": session_id}, id_=4)
    assert closed == {"jsonrpc": "2.0", "id": 4, "result": {"session_id": session_id, "closed": True}}

    # Gone: a second close or any use is an unknown session.
    again = mcp_call(http, "openenv/session/close", {"session_id": session_id}, id_=5)
    assert_error(again, 5, -32602, f"Unknown session_id: {session_id}")
    use = mcp_call(http, "tools/list", {"session_id": session_id}, id_=6)
    assert_error(use, 6, -32602, f"Unknown session_id: {session_id}")


def test_session_close_without_session_id_is_32602(http):
    reply = mcp_call(http, "openenv/session/close", {}, id_=7)
    assert_error(reply, 7, -32602, "Invalid params - 'session_id' is required")


def test_unknown_session_is_32602(http):
    assert_error(
        mcp_call(http, "openenv/session/close", {"session_id": "does-not-exist"}, id_=8),
        8, -32602, "Unknown session_id: does-not-exist",
    )
    assert_error(
        mcp_call(http, "tools/call", {"name": "echo_message", "arguments": {"message": "x"}, "session_id": "does-not-exist"}, id_=9),
        9, -32602, "Unknown session_id: does-not-exist",
    )


def test_session_is_a_distinct_env_from_stateless_calls(http):
    # A stateless call and a session call both work side by side; sessions are isolated.
    with http_mcp_session(http) as first, http_mcp_session(http) as second:
        assert first != second
        for session_id in (first, second, None):
            params = {"name": "echo_message", "arguments": {"message": "x"}}
            if session_id:
                params["session_id"] = session_id
            assert mcp_call(http, "tools/call", params)["result"]["data"] == "x"

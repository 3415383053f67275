"""`WS /ws` protocol with raw frames (spec §4, delta §2.2, §5.1): the full echo session,
ordering, the error matrix, and `type:"mcp"` frames.

Frames the spec quotes verbatim are compared byte for byte (0.10.0 envelope). SESSION_ERROR
messages are Python exception strings in the reference, so only the code and the close are
checked for those (spec §4.4).
"""

import json
import threading

import pytest

from _support import (
    assert_closed_by_server,
    close_session,
    open_session,
    recv_json,
    recv_text,
    request,
    send_json,
    ws_open,
)

ECHO_RESET_FRAME_010 = (
    '{"type":"observation","data":{"observation":{"metadata":{"status":"ready","message":"Echo environment ready!"}},'
    '"reward":0.0,"done":false,"metadata":{"status":"ready","message":"Echo environment ready!"}}}'
)
UNKNOWN_TOOL_FRAME_010 = (
    '{"type":"observation","data":{"observation":{"metadata":{},"tool_name":"nope","result":null,'
    '"error":{"error_type":"tool_not_found","message":"Unknown tool: \'nope\'"}},"reward":null,"done":false}}'
)
ECHO_TOOL_INPUT_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"message": {"type": "string", "description": "The message to echo back"}},
    "required": ["message"],
}


def recv_after(ws, raw: str) -> str:
    """Send a raw text frame, return the reply text."""
    ws.send(raw)
    return recv_text(ws)


def exchange_text(ws, message) -> str:
    send_json(ws, message)
    return recv_text(ws)


@pytest.fixture()
def ws(server):
    """A fresh /ws session on the default server, closed with a close message afterwards."""
    connection = ws_open(server)
    yield connection
    close_session(connection)


# ---- a full echo session (spec §4.5 in its 0.10.0 form) -------------------------------

@pytest.mark.since_010("the 0.3.0 envelope has no metadata")
def test_full_echo_session(ws):
    reset = {"type": "reset", "data": {"seed": 7, "episode_id": "ep-ws-1"}}
    assert exchange_text(ws, reset) == ECHO_RESET_FRAME_010
    assert exchange_text(ws, {"type": "state"}) == '{"type":"state","data":{"episode_id":"ep-ws-1","step_count":0}}'

    tools = request(ws, {"type": "step", "data": {"type": "list_tools"}})
    assert tools == {
        "type": "observation",
        "data": {
            "observation": {
                "metadata": {},
                "tools": [
                    {"name": "echo_message", "description": "Echo back the provided message.",
                     "input_schema": ECHO_TOOL_INPUT_SCHEMA},
                    {"name": "echo_with_length", "description": "Echo back the message with its length.",
                     "input_schema": ECHO_TOOL_INPUT_SCHEMA},
                ],
            },
            "reward": None,
            "done": False,
        },
    }

    call = {"type": "step", "data": {"type": "call_tool", "tool_name": "echo_with_length", "arguments": {"message": "Test"}}}
    assert request(ws, call) == {
        "type": "observation",
        "data": {
            "observation": {
                "metadata": {},
                "tool_name": "echo_with_length",
                "result": {
                    "content": [{"type": "text", "text": '{"message":"Test","length":4}', "annotations": None, "meta": None}],
                    "structured_content": {"message": "Test", "length": 4},
                    "meta": None,  # fastmcp 3 (0.10.0 venv): no serverInfo for a dict tool (delta §6.4)
                    "data": {"message": "Test", "length": 4},
                    "is_error": False,
                },
                "error": None,
            },
            "reward": None,
            "done": False,
        },
    }

    nope = {"type": "step", "data": {"type": "call_tool", "tool_name": "nope", "arguments": {}}}
    assert exchange_text(ws, nope) == UNKNOWN_TOOL_FRAME_010
    # Three steps, three counts: list_tools and the unknown tool count too.
    # (spec §4.5 prints step_count 4 here; both reference cores really answer 3.)
    assert exchange_text(ws, {"type": "state"}) == '{"type":"state","data":{"episode_id":"ep-ws-1","step_count":3}}'

    send_json(ws, {"type": "close"})
    assert_closed_by_server(ws, 1000)


def test_close_message_gets_no_reply_and_close_1000(server):
    with ws_open(server) as connection:
        send_json(connection, {"type": "close"})
        assert_closed_by_server(connection, 1000)


def test_state_and_step_before_reset_work(ws):
    state = request(ws, {"type": "state"})
    assert state["type"] == "state"
    assert state["data"]["step_count"] == 0
    assert isinstance(state["data"]["episode_id"], str) and len(state["data"]["episode_id"]) == 36

    step = {"type": "step", "data": {"type": "call_tool", "tool_name": "echo_message", "arguments": {"message": "before reset"}}}
    reply = request(ws, step)
    assert reply["type"] == "observation"
    assert reply["data"]["observation"]["result"]["data"] == "before reset"
    assert request(ws, {"type": "state"})["data"]["step_count"] == 1


def test_reset_without_data_key(ws):
    # `data` is optional on reset (defaults to {}); the reward stays the float 0.0.
    reply = recv_after(ws, '{"type": "reset"}')
    assert json.loads(reply)["type"] == "observation"
    assert '"reward":0.0,' in reply


def test_pipelined_requests_are_answered_in_order(ws):
    messages = [
        {"type": "reset", "data": {"episode_id": "pipe"}},
        {"type": "step", "data": {"type": "call_tool", "tool_name": "echo_message", "arguments": {"message": "one"}}},
        {"type": "step", "data": {"type": "call_tool", "tool_name": "echo_message", "arguments": {"message": "two"}}},
        {"type": "state"},
    ]
    for message in messages:
        send_json(ws, message)
    replies = [recv_json(ws) for _ in messages]
    assert [r["type"] for r in replies] == ["observation", "observation", "observation", "state"]
    assert [r["data"]["observation"]["result"]["data"] for r in replies[1:3]] == ["one", "two"]
    assert replies[3]["data"] == {"episode_id": "pipe", "step_count": 2}


def test_reset_starts_a_new_episode(ws):
    request(ws, {"type": "step", "data": {"type": "list_tools"}})
    request(ws, {"type": "reset", "data": {"episode_id": "second"}})
    assert request(ws, {"type": "state"})["data"] == {"episode_id": "second", "step_count": 0}
    request(ws, {"type": "reset", "data": {}})
    state = request(ws, {"type": "state"})["data"]
    assert state["step_count"] == 0 and state["episode_id"] not in ("second", None)


def test_sessions_are_isolated(server):
    first, second = open_session(server), open_session(server)
    try:
        request(first, {"type": "reset", "data": {"episode_id": "A"}})
        request(second, {"type": "reset", "data": {"episode_id": "B"}})
        request(first, {"type": "step", "data": {"type": "list_tools"}})
        assert request(first, {"type": "state"})["data"] == {"episode_id": "A", "step_count": 1}
        assert request(second, {"type": "state"})["data"] == {"episode_id": "B", "step_count": 0}
    finally:
        close_session(first)
        close_session(second)


# ---- error frames that keep the socket open (spec §4.4) --------------------------------

KEEP_OPEN_ERRORS = [
    (
        "{not json",
        '{"type":"error","data":{"message":"Invalid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)","code":"INVALID_JSON"}}',
    ),
    (
        '{"type": "bogus"}',
        '{"type":"error","data":{"message":"Unknown message type: bogus","code":"UNKNOWN_TYPE"}}',
    ),
    (
        '{"data": {}}',
        '{"type":"error","data":{"message":"Unknown message type: ","code":"UNKNOWN_TYPE"}}',
    ),
    (
        '{"type": "step"}',
        '{"type":"error","data":{"message":"Invalid message","code":"VALIDATION_ERROR","errors":[{"type":"missing","loc":["data"],"msg":"Field required","input":{"type":"step"},"url":"https://errors.pydantic.dev/2.14/v/missing"}]}}',
    ),
    (
        '{"type": "step", "data": {"message": "hi"}}',
        '{"type":"error","data":{"message":"Invalid message","code":"VALIDATION_ERROR","errors":[{"type":"missing","loc":["tool_name"],"msg":"Field required","input":{"message":"hi"},"url":"https://errors.pydantic.dev/2.14/v/missing"},{"type":"extra_forbidden","loc":["message"],"msg":"Extra inputs are not permitted","input":"hi","url":"https://errors.pydantic.dev/2.14/v/extra_forbidden"}]}}',
    ),
    (
        '{"type": "reset", "data": {}, "extra": 1}',
        '{"type":"error","data":{"message":"Invalid message","code":"VALIDATION_ERROR","errors":[{"type":"extra_forbidden","loc":["extra"],"msg":"Extra inputs are not permitted","input":1,"url":"https://errors.pydantic.dev/2.14/v/extra_forbidden"}]}}',
    ),
    (
        '{"type": "state", "data": {}}',
        '{"type":"error","data":{"message":"Invalid message","code":"VALIDATION_ERROR","errors":[{"type":"extra_forbidden","loc":["data"],"msg":"Extra inputs are not permitted","input":{},"url":"https://errors.pydantic.dev/2.14/v/extra_forbidden"}]}}',
    ),
    (
        '{"type": "reset", "data": "notadict"}',
        '{"type":"error","data":{"message":"Invalid message","code":"VALIDATION_ERROR","errors":[{"type":"dict_type","loc":["data"],"msg":"Input should be a valid dictionary","input":"notadict","url":"https://errors.pydantic.dev/2.14/v/dict_type"}]}}',
    ),
    (
        '{"type": "close", "data": {}}',
        '{"type":"error","data":{"message":"Invalid message","code":"VALIDATION_ERROR","errors":[{"type":"extra_forbidden","loc":["data"],"msg":"Extra inputs are not permitted","input":{},"url":"https://errors.pydantic.dev/2.14/v/extra_forbidden"}]}}',
    ),
    (
        '{"type": "step", "data": {"type": "list_tools", "foo": 1}}',
        '{"type":"error","data":{"message":"Invalid message","code":"VALIDATION_ERROR","errors":[{"type":"extra_forbidden","loc":["foo"],"msg":"Extra inputs are not permitted","input":1,"url":"https://errors.pydantic.dev/2.14/v/extra_forbidden"}]}}',
    ),
]


@pytest.mark.parametrize(
    "frame,expected",
    KEEP_OPEN_ERRORS,
    ids=["invalid-json", "unknown-type", "missing-type", "step-without-data", "bad-action",
         "reset-extra-key", "state-with-data", "reset-data-not-object", "close-with-data",
         "list-tools-extra-key"],
)
def test_error_frame_verbatim_and_socket_stays_usable(ws, frame, expected):
    ws.send(frame)
    assert recv_text(ws) == expected
    # Still the same session, still answering.
    assert request(ws, {"type": "state"})["type"] == "state"


def test_validation_failure_does_not_count_as_a_step(ws):
    request(ws, {"type": "reset", "data": {"episode_id": "v"}})
    assert request(ws, {"type": "step", "data": {"message": "hi"}})["data"]["code"] == "VALIDATION_ERROR"
    assert request(ws, {"type": "state"})["data"] == {"episode_id": "v", "step_count": 0}


def test_reset_kwargs_are_not_validated_on_ws(ws):
    # spec §4.2: no ResetRequest validation on WS, seed -1 passes through.
    reply = request(ws, {"type": "reset", "data": {"seed": -1, "episode_id": "neg", "unknown_kwarg": [1]}})
    assert reply["type"] == "observation"
    assert request(ws, {"type": "state"})["data"]["episode_id"] == "neg"


# ---- errors that end the session (spec §4.4): code + close 1000 ---------------------------

@pytest.mark.parametrize("frame", ["[1,2]", "null", "42", '"text"'], ids=["list", "null", "number", "string"])
def test_json_that_is_not_an_object_is_session_error_then_close_1000(server, frame):
    with ws_open(server) as connection:
        connection.send(frame)
        reply = recv_json(connection)
        assert reply["type"] == "error"
        assert reply["data"]["code"] == "SESSION_ERROR"
        assert isinstance(reply["data"]["message"], str) and reply["data"]["message"]
        assert_closed_by_server(connection, 1000)


def test_binary_frame_is_session_error_then_close_1000(server):
    with ws_open(server) as connection:
        connection.send(b'{"type":"state"}')
        reply = recv_json(connection)
        assert (reply["type"], reply["data"]["code"]) == ("error", "SESSION_ERROR")
        assert_closed_by_server(connection, 1000)


# ---- type:"mcp" frames (spec §5.3) ---------------------------------------------------------

def test_mcp_frame_tools_call_is_not_a_step(ws):
    request(ws, {"type": "reset", "data": {"episode_id": "mcp-frames"}})
    call = {"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "echo_with_length", "arguments": {"message": "abc"}}, "id": 7}
    reply = request(ws, {"type": "mcp", "data": call})
    assert reply["type"] == "mcp"
    assert (reply["data"]["jsonrpc"], reply["data"]["id"]) == ("2.0", 7)
    assert reply["data"]["result"]["data"] == {"message": "abc", "length": 3}
    assert reply["data"]["result"]["is_error"] is False
    listing = request(ws, {"type": "mcp", "data": {"jsonrpc": "2.0", "method": "tools/list", "id": "s"}})
    assert listing["data"]["id"] == "s"
    assert [t["name"] for t in listing["data"]["result"]["tools"]] == ["echo_message", "echo_with_length"]
    assert request(ws, {"type": "state"})["data"] == {"episode_id": "mcp-frames", "step_count": 0}


def test_mcp_frame_invalid_jsonrpc_is_an_mcp_reply_not_an_error_frame(ws):
    reply = request(ws, {"type": "mcp", "data": {"method": "tools/list"}})
    assert reply["type"] == "mcp"
    assert reply["data"]["id"] is None
    assert reply["data"]["error"]["code"] == -32600
    assert reply["data"]["error"]["message"].startswith("Invalid request")
    assert reply["data"]["error"]["data"] is None


def test_mcp_frame_session_create_returns_own_id_and_close_is_refused(ws):
    created = request(ws, {"type": "mcp", "data": {"jsonrpc": "2.0", "method": "openenv/session/create", "id": 1}})
    session_id = created["data"]["result"]["session_id"]
    assert len(session_id) == 36
    again = request(ws, {"type": "mcp", "data": {"jsonrpc": "2.0", "method": "openenv/session/create", "id": 2}})
    assert again["data"]["result"]["session_id"] == session_id  # the socket's own session
    close = {"jsonrpc": "2.0", "method": "openenv/session/close", "params": {"session_id": session_id}, "id": 3}
    assert recv_after(ws, json.dumps({"type": "mcp", "data": close})) == (
        '{"type":"mcp","data":{"jsonrpc":"2.0","id":3,"error":{"code":-32600,'
        '"message":"Cannot close active WebSocket-managed session via MCP method","data":null}}}'
    )
    assert request(ws, {"type": "state"})["type"] == "state"


# ---- WS /mcp (spec §5.2) ---------------------------------------------------------------------

def test_ws_mcp_endpoint_speaks_bare_jsonrpc(server):
    with ws_open(server, "/mcp") as connection:
        call = {"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "echo_with_length", "arguments": {"message": "ws-mcp"}}, "id": 2}
        reply = request(connection, call)
        assert (reply["jsonrpc"], reply["id"]) == ("2.0", 2)
        assert reply["result"]["structured_content"] == {"message": "ws-mcp", "length": 6}
        assert reply["result"]["data"] == {"message": "ws-mcp", "length": 6}
        # Bare JSON-RPC serialized with json.dumps (", " separators), verbatim from spec §5.2.
        connection.send("{oops")
        assert recv_text(connection) == (
            '{"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "Parse error: '
            'Expecting property name enclosed in double quotes: line 1 column 2 (char 1)", "data": null}}'
        )
        created = request(connection, {"jsonrpc": "2.0", "method": "openenv/session/create", "id": 6})
        session_id = created["result"]["session_id"]
        close = {"jsonrpc": "2.0", "method": "openenv/session/close", "params": {"session_id": session_id}, "id": 7}
        assert request(connection, close) == {
            "jsonrpc": "2.0", "id": 7,
            "error": {"code": -32600, "message": "Cannot close active WebSocket-managed session via MCP method", "data": None},
        }


# ---- transport ------------------------------------------------------------------------------

def test_server_answers_websocket_pings(ws):
    # spec §4.7: the official client pings every 20 s and drops the socket without a pong.
    pong = ws.ping(b"are-you-there")
    assert pong.wait(timeout=10), "no pong within 10 s"
    assert request(ws, {"type": "state"})["type"] == "state"


def test_concurrent_sessions_do_not_cross_talk(server):
    # 8 sessions (the default capacity) step in parallel; each must see only its own replies.
    steps_per_session = 20
    failures: list = []

    def play(index: int) -> None:
        try:
            with ws_open(server) as connection:
                request(connection, {"type": "reset", "data": {"episode_id": f"par-{index}"}})
                for step in range(steps_per_session):
                    message = f"s{index}-{step}"
                    call = {"type": "step", "data": {"type": "call_tool", "tool_name": "echo_message", "arguments": {"message": message}}}
                    got = request(connection, call)["data"]["observation"]["result"]["data"]
                    if got != message:
                        failures.append((index, step, got))
                state = request(connection, {"type": "state"})["data"]
                if state != {"episode_id": f"par-{index}", "step_count": steps_per_session}:
                    failures.append((index, "state", state))
                close_session(connection)
        except Exception as error:  # reported below, in the test's thread
            failures.append((index, "exception", repr(error)))

    threads = [threading.Thread(target=play, args=(i,)) for i in range(server.max_sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "sessions still running after 120 s"
    assert failures == []

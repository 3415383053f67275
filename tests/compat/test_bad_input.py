"""Hostile and malformed input: the server answers with the protocol's errors, keeps or closes
the socket as the reference does, enforces the frame size limit, and keeps serving.

Decisions where the spec is silent (all match what the 0.10.0 reference does, so a client
cannot tell the servers apart):
  * WS text frame > 16 MiB (uvicorn's default max message): close 1009 (message too big).
    A 15 MiB frame is still accepted and answered.
  * WS text frame with invalid UTF-8: close 1007 (invalid frame payload data).
  * WS JSON nested 100,000 deep: one SESSION_ERROR frame, then close 1000 (the reference's
    parser gives up with a RecursionError outside the message handler).
  * Nesting 500 deep must be accepted, on WS and HTTP: the reference takes up to about 990
    levels (Python's recursion limit), so a client may legitimately send that much.
  * HTTP body with invalid UTF-8 or nested 100,000 deep:
    400 {"detail":"There was an error parsing the body"}.
Only the error code (and the message prefix) is checked where the reference's message is a
Python exception string.
"""

import contextlib
import struct
import threading

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from _support import (
    assert_closed_by_server,
    close_session,
    masked_frame_header,
    open_session,
    raw_ws_handshake,
    read_server_frame,
    recv_json,
    request,
    ws_open,
)

MIB = 1024 * 1024


def nested_list(depth: int) -> str:
    return "[" * depth + "]" * depth


# ---- HTTP ----------------------------------------------------------------------------------

PARSE_ERROR_400 = b'{"detail":"There was an error parsing the body"}'


@pytest.mark.parametrize("path", ["/reset", "/step"])
def test_http_invalid_utf8_body_is_400(http, path):
    response = http.post(path, content=b'{"episode_id":"\xff\xfe"}', headers={"content-type": "application/json"})
    assert (response.status_code, response.content) == (400, PARSE_ERROR_400)


@pytest.mark.parametrize("path", ["/reset", "/step"])
def test_http_deeply_nested_body_is_400(http, path):
    body = ('{"x":' + nested_list(100_000) + "}").encode()
    response = http.post(path, content=body, headers={"content-type": "application/json"})
    assert (response.status_code, response.content) == (400, PARSE_ERROR_400)


@pytest.mark.parametrize("depth", [100, 500])
def test_http_nested_reset_kwargs_are_accepted(http, depth):
    body = '{"options":' + nested_list(depth) + "}"
    response = http.post("/reset", content=body.encode(), headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text[:300]


def test_http_mcp_invalid_utf8_is_parse_error(http):
    response = http.post("/mcp", content=b'{"jsonrpc":"2.0","method":"\xff","id":1}')
    assert response.status_code == 200
    assert response.json()["error"]["code"] == -32700


# ---- WebSocket: message types and JSON errors that keep the socket open ---------------------

@pytest.mark.parametrize(
    "frame,message",
    [
        ('{"type": "STEP", "data": {}}', "Unknown message type: STEP"),
        ('{"type": 5}', "Unknown message type: 5"),
        ('{"type": "observation", "data": {}}', "Unknown message type: observation"),
        ('{"type": "error"}', "Unknown message type: error"),
        ('{"type": null}', None),  # the reference prints Python's None here
    ],
    ids=["wrong-case", "number", "server-frame-type", "error-type", "null"],
)
def test_unknown_message_types(server, frame, message):
    with ws_open(server) as ws:
        ws.send(frame)
        reply = recv_json(ws)
        assert reply["type"] == "error"
        assert reply["data"]["code"] == "UNKNOWN_TYPE"
        if message is not None:
            assert reply["data"]["message"] == message
        assert request(ws, {"type": "state"})["type"] == "state"
        close_session(ws)


@pytest.mark.parametrize(
    "frame",
    ["", " ", '{"type":"state"}trailing', '{"type":"state"}{"type":"state"}', '{"type":"state",}',
     "\ufeff{\"type\":\"state\"}", "{'type': 'state'}"],
    ids=["empty", "space", "trailing-garbage", "two-objects", "trailing-comma", "bom", "single-quotes"],
)
def test_invalid_json_keeps_the_socket_open(server, frame):
    with ws_open(server) as ws:
        ws.send(frame)
        reply = recv_json(ws)
        assert reply["type"] == "error"
        assert reply["data"]["code"] == "INVALID_JSON"
        assert reply["data"]["message"].startswith("Invalid JSON: ")
        assert request(ws, {"type": "state"})["type"] == "state"
        close_session(ws)


@pytest.mark.parametrize(
    "data,loc,error_type",
    [
        ({"type": "call_tool", "tool_name": 5}, ["tool_name"], "string_type"),
        ({"type": "call_tool", "tool_name": "echo_message", "arguments": []}, ["arguments"], "dict_type"),
        ({"type": "call_tool", "tool_name": "echo_message", "metadata": "x"}, ["metadata"], "dict_type"),
        ({"type": "list_tools", "metadata": {"ok": True}, "tool_name": "x"}, ["tool_name"], "extra_forbidden"),
    ],
    ids=["tool-name-number", "arguments-list", "metadata-string", "list-tools-with-tool-name"],
)
def test_wrong_action_types_are_validation_errors(server, data, loc, error_type):
    with ws_open(server) as ws:
        reply = request(ws, {"type": "step", "data": data})
        assert (reply["type"], reply["data"]["code"], reply["data"]["message"]) == (
            "error", "VALIDATION_ERROR", "Invalid message",
        )
        [error] = reply["data"]["errors"]
        assert (error["type"], error["loc"]) == (error_type, loc)
        assert error["url"] == f"https://errors.pydantic.dev/2.14/v/{error_type}"
        close_session(ws)


def test_reset_data_null_is_validation_error(server):
    with ws_open(server) as ws:
        reply = request(ws, {"type": "reset", "data": None})
        assert reply["data"]["code"] == "VALIDATION_ERROR"
        assert reply["data"]["errors"][0]["type"] == "dict_type"
        close_session(ws)


# ---- WebSocket: nesting, encoding, size ---------------------------------------------------------

@pytest.mark.parametrize("depth", [100, 500])
def test_nested_reset_kwargs_are_accepted(server, depth):
    with ws_open(server) as ws:
        ws.send('{"type":"reset","data":{"episode_id":"deep","options":' + nested_list(depth) + "}}")
        reply = recv_json(ws)
        assert reply["type"] == "observation", reply
        assert request(ws, {"type": "state"})["data"]["episode_id"] == "deep"
        close_session(ws)


@pytest.mark.parametrize("where", ["data", "arguments"])
def test_very_deep_nesting_is_session_error_then_close_1000(server, where):
    deep = nested_list(100_000)
    frame = (
        '{"type":"step","data":' + deep + "}"
        if where == "data"
        else '{"type":"step","data":{"type":"call_tool","tool_name":"echo_message","arguments":{"message":' + deep + "}}}"
    )
    with ws_open(server) as ws:
        ws.send(frame)
        reply = recv_json(ws)
        assert (reply["type"], reply["data"]["code"]) == ("error", "SESSION_ERROR")
        assert_closed_by_server(ws, 1000)


def test_invalid_utf8_text_frame_is_closed_1007(server):
    with ws_open(server) as ws:
        ws.send(b'{"type":"state","x":"\xff\xfe"}', text=True)  # bytes sent as a *text* frame
        assert_closed_by_server(ws, 1007)


def test_frame_over_16_mib_is_closed_1009(server):
    # Raw socket: the frame is written by a thread while this thread reads the server's
    # answer. A server that gives up early closes while we still write; reading concurrently
    # gets its close frame before the connection is torn down.
    sock = raw_ws_handshake(server)
    payload = b'{"type":"state","x":"' + b"a" * (16 * MIB) + b'"}'

    def write_frame():
        with contextlib.suppress(OSError):
            sock.sendall(masked_frame_header(0x1, len(payload)) + payload)

    writer = threading.Thread(target=write_frame, daemon=True)
    writer.start()
    try:
        try:
            opcode, body = read_server_frame(sock)
        except OSError as error:  # includes ConnectionError
            pytest.fail(f"expected close frame 1009, but the server dropped the connection: {error!r}")
        assert opcode == 0x8, f"expected a close frame, got opcode {opcode}: {body[:200]!r}"
        assert struct.unpack("!H", body[:2])[0] == 1009
    finally:
        sock.close()
        writer.join(timeout=30)
    assert httpx.get(f"{server.base_url}/health", timeout=10, trust_env=False).status_code == 200


def test_frame_of_15_mib_is_accepted_and_echoed(server):
    message = "m" * (15 * MIB)
    with ws_open(server) as ws:
        call = {"type": "step", "data": {"type": "call_tool", "tool_name": "echo_message", "arguments": {"message": message}}}
        reply = request(ws, call)
        assert reply["data"]["observation"]["result"]["data"] == message
        close_session(ws)


# ---- a burst of garbage, then normal service ---------------------------------------------------

GARBAGE_FRAMES = [
    "{not json", "", "null", "[1,2]", "NaN", '{"type": "bogus"}', '{"type": "step"}',
    '{"type": "step", "data": "x"}', '{"type": "reset", "data": {}, "extra": 1}',
    '{"type": "mcp", "data": {"jsonrpc": "1.0"}}', '{"type": "mcp", "data": []}',
    '{"type":"reset","data":{"episode_id":"\\ud800"}}',  # lone surrogate: Python-specific trouble
    '{"type":"step","data":{"type":"call_tool","tool_name":"echo_message","arguments":{"message":"\\ud800"}}}',
    '{"type":"reset","data":{"x":1e999}}', nested_list(5000), "\x00\x01\x02",
    b"\x00\xff binary",
]


def test_server_survives_a_burst_of_garbage(server):
    replies = 0
    for round_ in range(3):
        for frame in GARBAGE_FRAMES:
            with ws_open(server) as ws:
                try:
                    ws.send(frame)
                    ws.recv(timeout=10)
                    replies += 1
                    # Either still usable or closed by the server; both are acceptable here.
                    ws.send('{"type":"state"}')
                    ws.recv(timeout=10)
                except ConnectionClosed:
                    pass
        http_garbage = [b"{", b"\xff", b"[]" * 1000, b'{"action":' + nested_list(3000).encode() + b"}"]
        for body in http_garbage:
            with httpx.Client(base_url=server.base_url, timeout=10, trust_env=False) as client:
                for path in ("/reset", "/step", "/mcp"):
                    # (JSON content type: with none, the reference 500s on invalid UTF-8.)
                    response = client.post(path, content=body, headers={"content-type": "application/json"})
                    assert response.status_code < 500, (path, body[:20], response.status_code)
    assert replies >= len(GARBAGE_FRAMES) * 3 - 3  # nearly every garbage frame got an answer

    # A normal session still works, and every garbage session gave its slot back.
    assert httpx.get(f"{server.base_url}/health", timeout=10, trust_env=False).status_code == 200
    held = [open_session(server) for _ in range(server.max_sessions)]
    try:
        ws = held[0]
        request(ws, {"type": "reset", "data": {"episode_id": "after-garbage"}})
        call = {"type": "step", "data": {"type": "call_tool", "tool_name": "echo_message", "arguments": {"message": "ok"}}}
        assert request(ws, call)["data"]["observation"]["result"]["data"] == "ok"
        assert request(ws, {"type": "state"})["data"] == {"episode_id": "after-garbage", "step_count": 1}
    finally:
        for connection in held:
            close_session(connection)

"""Non-ASCII and escape-worthy text, byte for byte (observed on both reference cores).

* HTTP bodies and /ws frames are pydantic/FastAPI JSON: UTF-8 as is (no \\u escapes), control
  characters as lowercase \\u00XX, `/` and U+2028 not escaped.
* Bare JSON-RPC on WS /mcp is Python `json.dumps`: everything non-ASCII as \\uXXXX, astral
  characters as surrogate pairs, ", " and ": " separators.
* `echo_with_length` counts Unicode code points (Python `len`), not bytes or UTF-16 units.
"""

import json

from _support import close_session, request, recv_text, send_json, ws_open

MESSAGE = 'héllo ☃ 😀 \u0000 "q" \\ </script> \u2028'
CODE_POINTS = 29  # len(MESSAGE); UTF-8 bytes: 37, UTF-16 units: 30

# The message as a JSON string in the compact UTF-8 form (HTTP, /ws).
MESSAGE_JSON_UTF8 = '"héllo ☃ 😀 \\u0000 \\"q\\" \\\\ </script> \u2028"'.encode()
# The message as a JSON string in json.dumps' ASCII form (WS /mcp).
MESSAGE_JSON_ASCII = b'"h\\u00e9llo \\u2603 \\ud83d\\ude00 \\u0000 \\"q\\" \\\\ </script> \\u2028"'


def test_expected_encodings_are_what_python_produces():
    # Guards the constants above against typos (this does not contact the server).
    assert len(MESSAGE) == CODE_POINTS
    assert MESSAGE_JSON_UTF8 == json.dumps(MESSAGE, ensure_ascii=False).encode()
    assert MESSAGE_JSON_ASCII == json.dumps(MESSAGE).encode()


def echo_with_length_action() -> dict:
    return {"type": "call_tool", "tool_name": "echo_with_length", "arguments": {"message": MESSAGE}}


def assert_dict_tool_result_utf8(body: bytes) -> None:
    assert b'"structured_content":{"message":' + MESSAGE_JSON_UTF8 + b',"length":29}' in body
    assert b'"data":{"message":' + MESSAGE_JSON_UTF8 + b',"length":29}' in body
    # The text content is the compact JSON of the dict, itself as a JSON string.
    inner = json.dumps({"message": MESSAGE, "length": CODE_POINTS}, ensure_ascii=False, separators=(",", ":"))
    assert b'"text":' + json.dumps(inner, ensure_ascii=False).encode() in body


def test_http_step_utf8(http):
    response = http.post("/step", json={"action": echo_with_length_action()})
    assert response.status_code == 200
    assert_dict_tool_result_utf8(response.content)


def test_http_mcp_utf8(http):
    call = {"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "echo_with_length", "arguments": {"message": MESSAGE}}, "id": 1}
    response = http.post("/mcp", json=call)
    assert response.status_code == 200
    assert_dict_tool_result_utf8(response.content)


def test_ws_step_and_state_utf8(server):
    with ws_open(server) as ws:
        send_json(ws, {"type": "step", "data": echo_with_length_action()})
        assert_dict_tool_result_utf8(recv_text(ws).encode())
        request(ws, {"type": "reset", "data": {"episode_id": MESSAGE}})
        send_json(ws, {"type": "state"})
        assert recv_text(ws).encode() == b'{"type":"state","data":{"episode_id":' + MESSAGE_JSON_UTF8 + b',"step_count":0}}'
        close_session(ws)


def test_ws_mcp_endpoint_uses_ascii_json_dumps(server):
    with ws_open(server, "/mcp") as ws:
        call = {"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "echo_message", "arguments": {"message": MESSAGE}}, "id": 1}
        send_json(ws, call)
        reply = recv_text(ws).encode()
        assert reply.startswith(b'{"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": ' + MESSAGE_JSON_ASCII)
        assert b'"data": ' + MESSAGE_JSON_ASCII + b', "is_error": false}}' in reply

"""Session pool: capacity (spec §4.6), slot release on disconnect, one pool shared by /ws,
WS /mcp and HTTP MCP sessions, and attaching /ws to an HTTP session with `?session_id=`
(delta §5.2, §6.2).

Most tests use `server_cap2` (MAX_CONCURRENT_ENVS=2). Every test gives back the slots it
took, so the tests do not depend on their order.
"""

import contextlib
import time

import pytest

from _support import (
    abort_tcp,
    assert_closed_by_server,
    close_session,
    http_mcp_session,
    mcp_call,
    UNSOLICITED_TIMEOUT_S,
    open_session,
    recv_json,
    recv_text,
    recv_unsolicited,
    request,
    wait_for_free_slot,
    ws_open,
)


def capacity_frame(n: int) -> dict:
    return {
        "type": "error",
        "data": {
            "message": f"Server at capacity: {n}/{n} sessions active. Cannot accept new connections.",
            "code": "CAPACITY_REACHED",
            "active_sessions": n,
            "max_sessions": n,
        },
    }


def assert_refused_for_capacity(server, n: int, path: str = "/ws") -> None:
    """A new socket gets one unsolicited CAPACITY_REACHED frame, then close 1000."""
    with ws_open(server, path) as connection:
        assert recv_unsolicited(connection) == capacity_frame(n)
        assert_closed_by_server(connection, 1000)


@contextlib.contextmanager
def sessions(server, count: int):
    opened = []
    try:
        for _ in range(count):
            opened.append(open_session(server))
        yield opened
    finally:
        for connection in opened:
            close_session(connection)


def test_default_capacity_is_8(server):
    with sessions(server, 8):
        assert_refused_for_capacity(server, 8)


def test_capacity_reached_frame_verbatim_then_close_1000(server_cap2):
    with sessions(server_cap2, 2):
        with ws_open(server_cap2) as connection:
            assert recv_text(connection, UNSOLICITED_TIMEOUT_S) == (
                '{"type":"error","data":{"message":"Server at capacity: 2/2 sessions active. Cannot accept new connections.",'
                '"code":"CAPACITY_REACHED","active_sessions":2,"max_sessions":2}}'
            )
            assert_closed_by_server(connection, 1000)


def test_close_message_frees_the_slot(server_cap2):
    with sessions(server_cap2, 1):
        second = open_session(server_cap2)
        close_session(second)
        close_session(wait_for_free_slot(server_cap2))


def test_tcp_abort_frees_the_slot(server_cap2):
    with sessions(server_cap2, 1):
        abort_tcp(server_cap2)
        close_session(wait_for_free_slot(server_cap2))


def test_session_error_frees_the_slot(server_cap2):
    with sessions(server_cap2, 1):
        with ws_open(server_cap2) as bad:
            bad.send("[1,2]")
            assert recv_json(bad)["data"]["code"] == "SESSION_ERROR"
            assert_closed_by_server(bad, 1000)
        close_session(wait_for_free_slot(server_cap2))


def test_refused_socket_does_not_take_a_slot(server_cap2):
    with sessions(server_cap2, 2) as held:
        assert_refused_for_capacity(server_cap2, 2)
        assert_refused_for_capacity(server_cap2, 2)
        close_session(held.pop())
        close_session(wait_for_free_slot(server_cap2))


def test_http_mcp_sessions_share_the_pool_with_ws(server_cap2, http_cap2):
    with http_mcp_session(http_cap2), http_mcp_session(http_cap2):
        assert_refused_for_capacity(server_cap2, 2)
        refused = mcp_call(http_cap2, "openenv/session/create", {}, id_=1)
        assert refused == {
            "jsonrpc": "2.0",
            "id": 1,
            "error": {
                "code": -32000,
                "message": "Server at capacity: 2/2 sessions active. Cannot accept new connections.",
                "data": {"active_sessions": 2, "max_sessions": 2},
            },
        }
        # Stateless calls do not need a slot.
        assert len(mcp_call(http_cap2, "tools/list")["result"]["tools"]) == 2
        assert http_cap2.post("/reset", json={}).status_code == 200
        assert http_cap2.post("/step", json={"action": {"type": "list_tools"}}).status_code == 200
    close_session(wait_for_free_slot(server_cap2))


def test_ws_sessions_block_http_mcp_session_create(server_cap2, http_cap2):
    with sessions(server_cap2, 2):
        refused = mcp_call(http_cap2, "openenv/session/create", {}, id_=3)
        assert refused["error"]["code"] == -32000
        assert refused["error"]["data"] == {"active_sessions": 2, "max_sessions": 2}


def test_ws_mcp_endpoint_takes_a_slot(server_cap2):
    with sessions(server_cap2, 1):
        with ws_open(server_cap2, "/mcp") as ws_mcp:
            reply = request(ws_mcp, {"jsonrpc": "2.0", "method": "tools/list", "id": 1})
            assert len(reply["result"]["tools"]) == 2
            assert_refused_for_capacity(server_cap2, 2)
        close_session(wait_for_free_slot(server_cap2))


def test_ws_mcp_endpoint_at_capacity(server_cap2):
    with sessions(server_cap2, 2):
        with ws_open(server_cap2, "/mcp") as connection:
            assert recv_unsolicited(connection) == {
                "jsonrpc": "2.0",
                "id": None,
                "error": {
                    "code": -32000,
                    "message": "Server at capacity: 2/2 sessions active. Cannot accept new connections.",
                    "data": {"active_sessions": 2, "max_sessions": 2},
                },
            }
            assert_closed_by_server(connection, 1000)


# ---- /ws?session_id= attach (delta §5.2) ---------------------------------------------------

@pytest.mark.since_010("0.3.0 ignores ?session_id= and opens a new session")
def test_attach_uses_no_slot_and_shares_the_env(server_cap2, http_cap2):
    with http_mcp_session(http_cap2) as session_id:
        attached = open_session(server_cap2, f"/ws?session_id={session_id}")
        try:
            reply = request(attached, {"type": "reset", "data": {"episode_id": "att-1"}})
            assert reply["type"] == "observation"
            request(attached, {"type": "step", "data": {"type": "list_tools"}})
            # The HTTP session's env is the socket's env; an HTTP tool call is not a step.
            call = {"name": "echo_message", "arguments": {"message": "x"}, "session_id": session_id}
            assert mcp_call(http_cap2, "tools/call", call)["result"]["data"] == "x"
            assert request(attached, {"type": "state"})["data"] == {"episode_id": "att-1", "step_count": 1}
            # Two slots: the HTTP session and one plain socket. The attach took none.
            with sessions(server_cap2, 1):
                assert_refused_for_capacity(server_cap2, 2)
        finally:
            close_session(attached)


@pytest.mark.since_010("0.3.0 ignores ?session_id=")
def test_attach_frame_over_ws_mcp_returns_the_http_session_id(server_cap2, http_cap2):
    with http_mcp_session(http_cap2) as session_id:
        attached = open_session(server_cap2, f"/ws?session_id={session_id}")
        try:
            created = request(attached, {"type": "mcp", "data": {"jsonrpc": "2.0", "method": "openenv/session/create", "id": 1}})
            assert created["data"] == {"jsonrpc": "2.0", "id": 1, "result": {"session_id": session_id}}
            close = {"jsonrpc": "2.0", "method": "openenv/session/close", "params": {"session_id": session_id}, "id": 2}
            refused = request(attached, {"type": "mcp", "data": close})
            assert refused["data"]["error"] == {
                "code": -32600, "message": "Cannot close active WebSocket-managed session via MCP method", "data": None,
            }
        finally:
            close_session(attached)


@pytest.mark.since_010("0.3.0 ignores ?session_id=")
def test_attach_unknown_session_is_session_error_then_close(server_cap2):
    with ws_open(server_cap2, "/ws?session_id=does-not-exist") as connection:
        assert recv_unsolicited(connection) == {
            "type": "error",
            "data": {"message": "Unknown session_id: does-not-exist", "code": "SESSION_ERROR"},
        }
        assert_closed_by_server(connection, 1000)


@pytest.mark.since_010("0.3.0 ignores ?session_id=")
def test_second_attach_is_session_error_then_close(server_cap2, http_cap2):
    with http_mcp_session(http_cap2) as session_id:
        first = open_session(server_cap2, f"/ws?session_id={session_id}")
        try:
            with ws_open(server_cap2, f"/ws?session_id={session_id}") as second:
                assert recv_unsolicited(second) == {
                    "type": "error",
                    "data": {"message": f"Session {session_id} already has an attached WebSocket", "code": "SESSION_ERROR"},
                }
                assert_closed_by_server(second, 1000)
            assert request(first, {"type": "state"})["type"] == "state"  # the first is unaffected
        finally:
            close_session(first)


def test_empty_session_id_means_a_new_session(server_cap2, http_cap2):
    with http_mcp_session(http_cap2):
        connection = open_session(server_cap2, "/ws?session_id=")
        try:
            # A new session took the second slot.
            assert_refused_for_capacity(server_cap2, 2)
        finally:
            close_session(connection)


@pytest.mark.since_010("0.3.0 ignores ?session_id=")
def test_detach_keeps_the_session_and_reattach_sees_its_state(server_cap2, http_cap2):
    with http_mcp_session(http_cap2) as session_id:
        with open_session(server_cap2, f"/ws?session_id={session_id}") as attached:
            request(attached, {"type": "reset", "data": {"episode_id": "keep"}})
            request(attached, {"type": "step", "data": {"type": "list_tools"}})
            send_close_and_wait(attached)

        assert len(mcp_call(http_cap2, "tools/list", {"session_id": session_id})["result"]["tools"]) == 2
        again = open_session(server_cap2, f"/ws?session_id={session_id}")
        try:
            assert request(again, {"type": "state"})["data"] == {"episode_id": "keep", "step_count": 1}
        finally:
            close_session(again)


@pytest.mark.since_010("0.3.0 ignores ?session_id=; 'closing' is new in 0.10.0")
def test_http_close_while_attached_defers_until_the_socket_leaves(server_cap2, http_cap2):
    session_id = mcp_call(http_cap2, "openenv/session/create", {})["result"]["session_id"]
    attached = open_session(server_cap2, f"/ws?session_id={session_id}")
    try:
        closing = mcp_call(http_cap2, "openenv/session/close", {"session_id": session_id}, id_=8)
        assert closing == {"jsonrpc": "2.0", "id": 8, "result": {"session_id": session_id, "closed": False, "closing": True}}
        assert request(attached, {"type": "state"})["type"] == "state"  # still served
    finally:
        send_close_and_wait(attached)
    # Destroyed once the socket left (the server may need a moment to notice).
    gone = wait_until_unknown(http_cap2, session_id)
    if "error" not in gone:  # do not leak the slot into later tests
        mcp_call(http_cap2, "openenv/session/close", {"session_id": session_id})
    assert gone["error"] == {"code": -32602, "message": f"Unknown session_id: {session_id}", "data": None}
    close_session(wait_for_free_slot(server_cap2))  # and its slot is free again


def send_close_and_wait(connection) -> None:
    """Send the close message and wait for the server's close 1000."""
    connection.send('{"type": "close"}')
    assert_closed_by_server(connection, 1000)


def wait_until_unknown(http, session_id: str, attempts: int = 50) -> dict:
    """Poll tools/list on the session until it is unknown (bounded: attempts x 0.1 s)."""
    reply = {}
    for _ in range(attempts):
        reply = mcp_call(http, "tools/list", {"session_id": session_id})
        if "error" in reply:
            return reply
        time.sleep(0.1)
    return reply

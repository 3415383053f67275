"""Helpers shared by the wire-compatibility tests: server processes, raw HTTP/WebSocket I/O,
and the detection of which official client package this venv has."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator, Optional

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

REPO_ROOT = Path(__file__).resolve().parents[2]
REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
VENV_ROOT = REPO_ROOT / ".venv"

TARGETS = ("envtorch", "reference-0.10", "reference-0.3")
TARGET = os.environ.get("COMPAT_TARGET", "envtorch")

# How long a server gets to answer /health 200 after it was started (a debug Rust build and
# the Python reference both start in a few seconds; the machine may be busy compiling).
STARTUP_TIMEOUT_S = 90.0
# Per-operation timeout for raw WebSocket reads in tests. (HTTP clients here use
# trust_env=False: a proxy from the environment must not sit between us and 127.0.0.1.)
WS_TIMEOUT_S = 15.0


# --------------------------------------------------------------------------------------
# Which official client is installed in this venv
# --------------------------------------------------------------------------------------

def _dist_version(name: str) -> Optional[str]:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


OPENENV_010 = _dist_version("openenv")  # "0.10.0" in .venv/openenv-0.10.0
OPENENV_CORE_030 = _dist_version("openenv-core")  # "0.3.0" in .venv/openenv-core-0.3.0

needs_openenv_010_client = pytest.mark.skipif(
    OPENENV_010 != "0.10.0",
    reason="client test for openenv==0.10.0; this venv has openenv-core "
    f"{OPENENV_CORE_030} (runs in the other venv)",
)
needs_openenv_core_030_client = pytest.mark.skipif(
    OPENENV_CORE_030 != "0.3.0",
    reason="client test for openenv-core==0.3.0; this venv has openenv "
    f"{OPENENV_010} (runs in the other venv)",
)


# --------------------------------------------------------------------------------------
# Server under test
# --------------------------------------------------------------------------------------

@dataclass
class RunningServer:
    """A started server: where it listens and how it was configured."""

    port: int
    max_sessions: int
    log_path: Path
    process: subprocess.Popen

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, path: str = "/ws") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def log_tail(self, n_chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n_chars:]
        except OSError:
            return "<no log>"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_command(port: int) -> tuple[list[str], dict[str, str], Path]:
    """Command line, extra environment and working directory for COMPAT_TARGET."""
    if TARGET == "envtorch":
        server_bin = Path(os.environ.get("ENVTORCH_SERVER_BIN", "target/debug/envtorch-server"))
        echo_bin = Path(os.environ.get("ENVTORCH_ECHO_BIN", "target/debug/echo-env"))
        server_bin = server_bin if server_bin.is_absolute() else REPO_ROOT / server_bin
        echo_bin = echo_bin if echo_bin.is_absolute() else REPO_ROOT / echo_bin
        for path in (server_bin, echo_bin):
            if not path.is_file():
                pytest.exit(f"COMPAT_TARGET=envtorch but {path} does not exist (build it first)", 2)
        return (
            [str(server_bin), "--env", str(echo_bin)],
            {"HOST": "127.0.0.1", "PORT": str(port)},
            REPO_ROOT,
        )
    if TARGET in ("reference-0.10", "reference-0.3"):
        venv = VENV_ROOT / ("openenv-0.10.0" if TARGET == "reference-0.10" else "openenv-core-0.3.0")
        python = venv / "bin" / "python"
        if not python.exists():
            pytest.exit(f"{venv} is missing: run scripts/setup-python.sh", 2)
        return (
            [str(python), "-m", "uvicorn", "echo_app:app", "--host", "127.0.0.1", "--port", str(port)],
            {},
            REFERENCE_DIR,
        )
    pytest.exit(f"COMPAT_TARGET must be one of {TARGETS}, got {TARGET!r}", 2)
    raise AssertionError("unreachable")


def _stop(process: subprocess.Popen) -> None:
    """Stop the server and everything it spawned (its own process group), politely first."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@contextlib.contextmanager
def run_server(
    log_dir: Path,
    name: str,
    max_concurrent_envs: Optional[int] = None,
    openenv_mode: Optional[str] = None,
) -> Iterator[RunningServer]:
    """Start the COMPAT_TARGET echo server on 127.0.0.1 with an ephemeral port, wait for
    `/health` 200, yield it, and always stop it afterwards.

    `max_concurrent_envs=None` leaves MAX_CONCURRENT_ENVS unset, so the server's default
    applies (8 for echo).
    """
    env = dict(os.environ)
    for var in ("MAX_CONCURRENT_ENVS", "OPENENV_MODE", "ENABLE_WEB_INTERFACE", "HOST", "PORT"):
        env.pop(var, None)
    if max_concurrent_envs is not None:
        env["MAX_CONCURRENT_ENVS"] = str(max_concurrent_envs)
    if openenv_mode is not None:
        env["OPENENV_MODE"] = openenv_mode

    # The port is free when chosen but could be taken before the server binds it: retry.
    last_error = ""
    for _attempt in range(3):
        port = _free_port()
        command, extra_env, cwd = _server_command(port)
        log_path = log_dir / f"{name}-{port}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command,
                cwd=cwd,
                env={**env, **extra_env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group, so _stop reaches env workers too
            )
        server = RunningServer(
            port=port,
            max_sessions=max_concurrent_envs or 8,
            log_path=log_path,
            process=process,
        )
        try:
            if _wait_healthy(server):
                yield server
                return
            last_error = f"server exited with {process.returncode}:\n{server.log_tail()}"
        finally:
            _stop(process)
    pytest.fail(f"{TARGET} server {name!r} did not start: {last_error}")


def _wait_healthy(server: RunningServer) -> bool:
    """True once GET /health answers 200; False if the process died first."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            if httpx.get(f"{server.base_url}/health", timeout=2, trust_env=False).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(
        f"{TARGET} server not healthy after {STARTUP_TIMEOUT_S}s:\n{server.log_tail()}"
    )


def env_binary(var: str, default: str) -> Path:
    """An envtorch binary from `$var` (default `default`, relative to the repository)."""
    path = Path(os.environ.get(var, default))
    path = path if path.is_absolute() else REPO_ROOT / path
    if not path.is_file():
        pytest.fail(f"{path} does not exist: build it with cargo build --workspace --bins")
    return path


@contextlib.contextmanager
def run_envtorch_env(
    log_dir: Path,
    env_bin: Path,
    max_sessions: int,
    drop_env: tuple[str, ...] = (),
    **extra_env: str,
) -> Iterator[RunningServer]:
    """Serve another envtorch environment (`env_bin`) with `$ENVTORCH_SERVER_BIN` on a free
    127.0.0.1 port, wait for /health, always stop it. `extra_env` goes to the server's
    environment (workers inherit it); `drop_env` names variables to remove first. Raises
    RuntimeError with the server's log when it cannot start."""
    server_bin = env_binary("ENVTORCH_SERVER_BIN", "target/debug/envtorch-server")
    env = dict(os.environ)
    for var in ("MAX_CONCURRENT_ENVS", "OPENENV_MODE", *drop_env):
        env.pop(var, None)
    last_error = ""
    # The port is free when chosen but could be taken before the server binds it: retry.
    for _attempt in range(3):
        port = _free_port()
        log_path = log_dir / f"{env_bin.name}-{port}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [str(server_bin), "--env", str(env_bin)],
                cwd=REPO_ROOT,
                env={**env, **extra_env, "HOST": "127.0.0.1", "PORT": str(port)},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = RunningServer(port=port, max_sessions=max_sessions, log_path=log_path, process=process)
        try:
            if _wait_healthy(server):
                yield server
                return
            last_error = f"exited with {process.returncode}:\n{server.log_tail()}"
        finally:
            _stop(process)
    raise RuntimeError(f"{env_bin.name} server did not start: {last_error}")


# --------------------------------------------------------------------------------------
# Raw WebSocket helpers
# --------------------------------------------------------------------------------------

def ws_open(server: RunningServer, path: str = "/ws") -> ClientConnection:
    """Open a WebSocket without sending anything (no size limit, no compression, like the
    official client's wire behaviour for our purposes)."""
    return connect(
        server.ws_url(path),
        open_timeout=WS_TIMEOUT_S,
        max_size=None,
        compression=None,
        proxy=None,
    )


def send_json(ws: ClientConnection, message: Any) -> None:
    """Send like the official client: `json.dumps` with default separators."""
    ws.send(json.dumps(message))


def recv_text(ws: ClientConnection, timeout: float = WS_TIMEOUT_S) -> str:
    frame = ws.recv(timeout=timeout)
    assert isinstance(frame, str), f"expected a text frame, got {type(frame).__name__}"
    return frame


def recv_json(ws: ClientConnection, timeout: float = WS_TIMEOUT_S) -> Any:
    return json.loads(recv_text(ws, timeout))


# An unsolicited frame (capacity, attach errors) is sent right after the upgrade.
UNSOLICITED_TIMEOUT_S = 10.0


def recv_unsolicited(ws: ClientConnection) -> Any:
    """The frame a server sends right after accepting, before any request."""
    return recv_json(ws, UNSOLICITED_TIMEOUT_S)


def request(ws: ClientConnection, message: Any) -> Any:
    send_json(ws, message)
    return recv_json(ws)


def assert_closed_by_server(ws: ClientConnection, code: int) -> None:
    """The server closes the socket (no further frames) with close code `code`."""
    with pytest.raises(ConnectionClosed):
        extra = ws.recv(timeout=WS_TIMEOUT_S)
        pytest.fail(f"expected close {code}, got another frame: {extra!r}")
    assert ws.close_code == code, f"close code {ws.close_code} (reason {ws.close_reason!r})"


def open_session(server: RunningServer, path: str = "/ws") -> ClientConnection:
    """Open a /ws session that the server really accepted: a `state` request is answered
    with a state frame (a refused socket gets an unsolicited error frame instead)."""
    ws = ws_open(server, path)
    reply = request(ws, {"type": "state"})
    if reply.get("type") != "state":
        ws.close()
        raise AssertionError(f"session not accepted: {reply}")
    return ws


def close_session(ws: ClientConnection) -> None:
    """End a session the way the official client does: a close message, then close.

    Waits (bounded) for the server's own close, which the reference sends only after it
    destroyed the session, so the slot is free when this returns."""
    with contextlib.suppress(ConnectionClosed, TimeoutError):
        send_json(ws, {"type": "close"})
        for _ in range(10):  # no reply is due; skip any stray frame
            ws.recv(timeout=5)
    ws.close()


def raw_ws_handshake(server: RunningServer, path: str = "/ws") -> socket.socket:
    """Open a WebSocket by hand over a plain TCP socket (for what a WebSocket library will not
    do: abort without a close frame, or stream a frame while reading the answer)."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=WS_TIMEOUT_S)
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response and len(response) < 65536:
        chunk = sock.recv(1)  # byte by byte: do not swallow the first frame
        if not chunk:
            break
        response += chunk
    assert response.startswith(b"HTTP/1.1 101"), response[:200]
    return sock


def masked_frame_header(opcode: int, length: int) -> bytes:
    """Header of a final client frame with an all-zero mask (so the payload goes as is)."""
    first = bytes([0x80 | opcode])
    if length < 126:
        return first + bytes([0x80 | length]) + b"\0\0\0\0"
    if length < 1 << 16:
        return first + bytes([0x80 | 126]) + struct.pack("!H", length) + b"\0\0\0\0"
    return first + bytes([0x80 | 127]) + struct.pack("!Q", length) + b"\0\0\0\0"


def read_server_frame(sock: socket.socket) -> tuple[int, bytes]:
    """Read one unmasked server frame: (opcode, payload)."""

    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError(f"connection ended after {len(data)}/{n} bytes")
            data += chunk
        return data

    first, second = exactly(2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", exactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", exactly(8))
    return first & 0x0F, exactly(length)


def abort_tcp(server: RunningServer, path: str = "/ws") -> None:
    """Open a WebSocket and drop the TCP connection with a RST, without any close frame:
    the harshest client disconnect."""
    sock = raw_ws_handshake(server, path)
    try:
        time.sleep(0.2)  # let the server create the session before we vanish
    finally:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


def wait_for_free_slot(server: RunningServer, timeout_s: float = 5.0) -> ClientConnection:
    """Open a session, retrying while the server still reports CAPACITY_REACHED (a slot freed
    by a disconnect may take the server a moment to notice). Bounded by `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return open_session(server)
        except (AssertionError, ConnectionClosed):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# --------------------------------------------------------------------------------------
# HTTP MCP helpers
# --------------------------------------------------------------------------------------

def mcp_call(http: httpx.Client, method: str, params: Optional[dict] = None, id_: Any = 1) -> dict:
    body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": id_}
    if params is not None:
        body["params"] = params
    response = http.post("/mcp", json=body)
    assert response.status_code == 200, response.text
    return response.json()


@contextlib.contextmanager
def http_mcp_session(http: httpx.Client) -> Iterator[str]:
    """An `openenv/session/create` session, closed afterwards (ignoring 'unknown session',
    since a test may have closed it already)."""
    created = mcp_call(http, "openenv/session/create", {})
    assert "result" in created, created
    session_id = created["result"]["session_id"]
    try:
        yield session_id
    finally:
        mcp_call(http, "openenv/session/close", {"session_id": session_id})

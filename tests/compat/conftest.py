"""Fixtures for the wire-compatibility suite.

COMPAT_TARGET chooses the server under test (default `envtorch`):
  envtorch        $ENVTORCH_SERVER_BIN --env $ENVTORCH_ECHO_BIN  (PORT/HOST env vars)
  reference-0.10  uvicorn reference/echo_app.py from .venv/openenv-0.10.0
  reference-0.3   uvicorn reference/echo_app.py from .venv/openenv-core-0.3.0

Servers are started once per pytest run (session scope) on 127.0.0.1 with an ephemeral port,
and stopped at the end whatever happened. Tests marked `since_010` check 0.10.0-only server
behaviour and are strict xfails against reference-0.3 (so that delta is checked too).
"""

from __future__ import annotations

from typing import Iterator

import httpx
import pytest

import _support
from _support import RunningServer, run_server


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [
        f"compat target: {_support.TARGET}; clients in this venv: "
        f"openenv={_support.OPENENV_010} openenv-core={_support.OPENENV_CORE_030}"
    ]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _support.TARGET != "reference-0.3":
        return
    for item in items:
        marker = item.get_closest_marker("since_010")
        if marker is not None:
            reason = marker.args[0] if marker.args else "0.10.0 protocol feature"
            item.add_marker(pytest.mark.xfail(reason=f"0.3.0 reference: {reason}", strict=True))


_server_log_dirs: list = []


def pytest_terminal_summary(terminalreporter) -> None:
    for path in _server_log_dirs:
        terminalreporter.write_line(f"server logs ({_support.TARGET}): {path}")


@pytest.fixture(scope="session")
def server_log_dir(tmp_path_factory: pytest.TempPathFactory):
    """Where the servers' stdout/stderr go (printed at the end of the run)."""
    path = tmp_path_factory.mktemp("server-logs")
    _server_log_dirs.append(path)
    return path


@pytest.fixture(scope="session")
def server(server_log_dir) -> Iterator[RunningServer]:
    """The echo server with its default capacity (MAX_CONCURRENT_ENVS unset: 8 sessions)."""
    with run_server(server_log_dir, "default") as running:
        yield running


@pytest.fixture(scope="session")
def server_cap2(server_log_dir) -> Iterator[RunningServer]:
    """A second echo server with MAX_CONCURRENT_ENVS=2, for capacity and attach tests."""
    with run_server(server_log_dir, "cap2", max_concurrent_envs=2) as running:
        yield running


@pytest.fixture(scope="session")
def server_production(server_log_dir) -> Iterator[RunningServer]:
    """An echo server started with OPENENV_MODE=production (no HTTP reset/step/state)."""
    with run_server(server_log_dir, "production", openenv_mode="production") as running:
        yield running


@pytest.fixture()
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30, trust_env=False) as client:
        yield client


@pytest.fixture()
def http_cap2(server_cap2: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server_cap2.base_url, timeout=30, trust_env=False) as client:
        yield client

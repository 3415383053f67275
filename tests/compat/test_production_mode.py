"""`OPENENV_MODE=production` (delta §7): no HTTP simulation endpoints, everything else stays.
The 0.3.0 core ignores the variable, so the tests of what production mode removes are
strict xfails against reference-0.3."""

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from _support import close_session, open_session, request

only_010_core = pytest.mark.since_010("OPENENV_MODE is read by the 0.10.0 core only")


@pytest.fixture()
def http_production(server_production):
    with httpx.Client(base_url=server_production.base_url, timeout=30, trust_env=False) as client:
        yield client


@only_010_core
@pytest.mark.parametrize("method,path", [("POST", "/reset"), ("POST", "/step"), ("GET", "/state")])
def test_simulation_endpoints_are_404(http_production, method, path):
    response = http_production.request(method, path, json={"action": {"type": "list_tools"}})
    assert (response.status_code, response.content) == (404, b'{"detail":"Not Found"}')


@only_010_core
def test_openapi_paths_have_no_simulation_endpoints(http_production):
    paths = set(http_production.get("/openapi.json").json()["paths"])
    assert not paths & {"/reset", "/step", "/state"}
    assert {"/health", "/metadata", "/schema", "/mcp", "/list_environments"} <= paths


def test_health_schema_and_mcp_still_served(http_production):
    assert http_production.get("/health").json() == {"status": "healthy"}
    assert http_production.get("/schema").status_code == 200
    reply = http_production.post("/mcp", json={"jsonrpc": "2.0", "method": "tools/list", "id": 1}).json()
    assert [t["name"] for t in reply["result"]["tools"]] == ["echo_message", "echo_with_length"]


def test_ws_still_serves_reset_step_state(server_production):
    ws = open_session(server_production)
    try:
        assert request(ws, {"type": "reset", "data": {"episode_id": "prod"}})["type"] == "observation"
        call = {"type": "step", "data": {"type": "call_tool", "tool_name": "echo_message", "arguments": {"message": "p"}}}
        assert request(ws, call)["data"]["observation"]["result"]["data"] == "p"
        assert request(ws, {"type": "state"})["data"] == {"episode_id": "prod", "step_count": 1}
    finally:
        close_session(ws)


@only_010_core
def test_openenv_validate_reports_production_mode(server_production):
    completed = subprocess.run(
        [str(Path(sys.executable).parent / "openenv"), "validate", "--url", server_production.base_url],
        capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "production" in completed.stdout

"""The official `openenv-core==0.3.0` clients against the server under test (spec §6, delta
§2.3, §10): a 0.3.0 client must keep working against a 0.10.0-protocol server.

Runs in .venv/openenv-core-0.3.0; in the openenv 0.10.0 venv every test here is skipped
("client test for openenv-core==0.3.0").
"""

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from _support import OPENENV_CORE_030, needs_openenv_core_030_client

pytestmark = needs_openenv_core_030_client

if OPENENV_CORE_030 == "0.3.0":  # the package only exists in its own venv
    from openenv.core.generic_client import GenericEnvClient
    from openenv.core.containers.runtime.providers import LocalDockerProvider
    from openenv.core.mcp_client import MCPToolClient

    class EchoEnv(MCPToolClient):
        """What envs/echo_env/client.py ships: MCPToolClient with nothing added."""


TOOL_NAMES = ["echo_message", "echo_with_length"]


def call_tool_action(name: str, **arguments) -> dict:
    return {"type": "call_tool", "tool_name": name, "arguments": arguments}


# ---- GenericEnvClient ------------------------------------------------------------------------

def test_generic_client_async(server):
    async def scenario():
        async with GenericEnvClient(base_url=server.base_url) as env:
            reset = await env.reset(seed=1, episode_id="gen-1")
            assert (reset.reward, reset.done) == (0.0, False)
            step = await env.step(call_tool_action("echo_message", message="hi"))
            assert step.observation["result"]["data"] == "hi"
            assert (step.reward, step.done) == (None, False)
            assert await env.state() == {"episode_id": "gen-1", "step_count": 1}
            with pytest.raises(RuntimeError, match=r"^Server error: Invalid message \(code: VALIDATION_ERROR\)$"):
                await env.step({"message": "not an action"})
            assert (await env.state())["step_count"] == 1

    asyncio.run(scenario())


def test_generic_client_sync(server):
    with GenericEnvClient(base_url=server.base_url).sync() as env:
        env.reset(episode_id="sync-1")
        result = env.step(call_tool_action("echo_with_length", message="Test"))
        assert result.observation["result"]["data"] == {"message": "Test", "length": 4}
        assert env.state() == {"episode_id": "sync-1", "step_count": 1}


# ---- MCPToolClient / EchoEnv: default is step-based over /ws in 0.3.0 -------------------------

@pytest.mark.parametrize("client_class", ["MCPToolClient", "EchoEnv"])
def test_mcp_tool_client_default_step_mode(server, client_class):
    cls = MCPToolClient if client_class == "MCPToolClient" else EchoEnv

    async def scenario():
        async with cls(base_url=server.base_url) as env:
            assert env.use_production_mode is False
            await env.reset(episode_id="mcp-03")
            assert [t.name for t in await env.list_tools()] == TOOL_NAMES
            assert await env.call_tool("echo_message", message="Hello!") == "Hello!"
            assert await env.call_tool("echo_with_length", message="Test") == {"message": "Test", "length": 4}
            with pytest.raises(RuntimeError, match=r"^Tool 'nope' failed: Unknown tool: 'nope' \(type: tool_not_found\)$"):
                await env.call_tool("nope")
            state = await env.state()
            assert (state.episode_id, state.step_count) == ("mcp-03", 4)

    asyncio.run(scenario())


def test_mcp_tool_client_sync(server):
    with MCPToolClient(base_url=server.base_url).sync() as env:
        env.reset()
        assert [t.name for t in env.list_tools()] == TOOL_NAMES
        assert env.call_tool("echo_message", message="sync") == "sync"


def test_mcp_tool_client_production_mode(server):
    # 0.3.0 production mode: tools over HTTP POST /mcp in their own session, no reset needed.
    async def scenario():
        env = MCPToolClient(base_url=server.base_url)
        env.use_production_mode = True
        async with env:
            assert [t.name for t in await env.list_tools()] == TOOL_NAMES
            assert await env.call_tool("echo_with_length", message="prod") == {"message": "prod", "length": 4}
            with pytest.raises(RuntimeError, match=r"^Tool 'nope' failed: Unknown tool: 'nope'$"):
                await env.call_tool("nope")

    asyncio.run(scenario())


# ---- readiness probe of the container providers --------------------------------------------------

def test_local_docker_provider_wait_for_ready(server):
    # The provider's own /health poll, as run after `docker run`. __init__ is skipped because
    # it only checks for a Docker daemon, which this probe does not use.
    provider = LocalDockerProvider.__new__(LocalDockerProvider)
    provider.wait_for_ready(server.base_url, timeout_s=10)


# ---- openenv validate --url ----------------------------------------------------------------------

def test_openenv_validate_url_passes(server):
    openenv_cli = Path(sys.executable).parent / "openenv"
    completed = subprocess.run(
        [str(openenv_cli), "validate", "--url", server.base_url],
        capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    report = json.loads(completed.stdout)  # 0.3.0 prints the report as JSON
    assert report["passed"] is True, report
    assert report["mode"] == "simulation"
    assert report["summary"]["passed_count"] == report["summary"]["total_count"] == 6

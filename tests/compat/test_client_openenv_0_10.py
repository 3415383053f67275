"""The official `openenv==0.10.0` clients against the server under test (delta §8, §10).

Runs in .venv/openenv-0.10.0; in the openenv-core 0.3.0 venv every test here is skipped
("client test for openenv==0.10.0"). Async tests drive the client with asyncio.run, so no
pytest plugin is needed.
"""

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from _support import OPENENV_010, close_session, needs_openenv_010_client, open_session

pytestmark = needs_openenv_010_client

if OPENENV_010 == "0.10.0":  # the package only exists in its own venv
    from openenv.core.generic_client import GenericEnvClient
    from openenv.core.containers.runtime.providers import LocalDockerProvider
    from openenv.core.mcp_client import MCPToolClient

    class EchoEnv(MCPToolClient):
        """What envs/echo_env/client.py ships: MCPToolClient with nothing added."""


ECHO_READY = {"status": "ready", "message": "Echo environment ready!"}
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
            # The connection survives an error reply.
            assert (await env.state())["step_count"] == 1

    asyncio.run(scenario())


@pytest.mark.since_010("StepResult.metadata comes from the 0.10.0 envelope")
def test_generic_client_sees_reset_metadata(server):
    async def scenario():
        async with GenericEnvClient(base_url=server.base_url) as env:
            reset = await env.reset()
            assert reset.metadata == ECHO_READY
            assert reset.observation == {"metadata": ECHO_READY}

    asyncio.run(scenario())


def test_generic_client_sync(server):
    with GenericEnvClient(base_url=server.base_url).sync() as env:
        env.reset(episode_id="sync-1")
        result = env.step(call_tool_action("echo_with_length", message="Test"))
        assert result.observation["result"]["data"] == {"message": "Test", "length": 4}
        assert env.state() == {"episode_id": "sync-1", "step_count": 1}


def test_generic_client_sends_headers_on_upgrade(server):
    # 0.10.0 clients may send e.g. Authorization on the WS upgrade; the server must accept it.
    async def scenario():
        async with GenericEnvClient(base_url=server.base_url, headers={"Authorization": "Bearer test"}) as env:
            await env.reset(episode_id="hdr")
            assert (await env.state())["episode_id"] == "hdr"

    asyncio.run(scenario())


def test_generic_client_new_session_is_independent(server):
    async def scenario():
        async with GenericEnvClient(base_url=server.base_url) as env:
            await env.reset(episode_id="parent")
            child = await env.new_session()
            await child.reset(episode_id="child")
            await child.step(call_tool_action("echo_message", message="x"))
            assert await env.state() == {"episode_id": "parent", "step_count": 0}
            assert await child.state() == {"episode_id": "child", "step_count": 1}

    asyncio.run(scenario())


# ---- MCPToolClient / EchoEnv, default (production) mode ----------------------------------------

@pytest.mark.parametrize("client_class", ["MCPToolClient", "EchoEnv"])
def test_mcp_tool_client_default_production_mode(server, client_class):
    cls = MCPToolClient if client_class == "MCPToolClient" else EchoEnv

    async def scenario():
        async with cls(base_url=server.base_url) as env:
            assert env.use_production_mode is True
            await env.reset(episode_id="mcp-1")
            assert [t.name for t in await env.list_tools()] == TOOL_NAMES
            assert await env.call_tool("echo_message", message="Hello!") == "Hello!"
            assert await env.call_tool("echo_with_length", message="Test") == {"message": "Test", "length": 4}
            with pytest.raises(RuntimeError, match=r"^Tool 'nope' failed: Unknown tool: 'nope'$"):
                await env.call_tool("nope")
            # HTTP tool calls are not steps; reset went to the same env as the tools.
            state = await env.state()
            assert (state.episode_id, state.step_count) == ("mcp-1", 0)

    asyncio.run(scenario())


@pytest.mark.since_010("0.3.0 ignores ?session_id=, so the client needs a second slot")
def test_mcp_tool_client_production_mode_needs_one_slot(server_cap2):
    # One of the two slots is taken: the client's HTTP session takes the other, and its
    # WebSocket must attach to that session instead of asking for a third.
    other = open_session(server_cap2)
    try:
        async def scenario():
            async with MCPToolClient(base_url=server_cap2.base_url) as env:
                await env.reset(episode_id="cap")
                assert await env.call_tool("echo_message", message="one slot") == "one slot"
                assert (await env.state()).episode_id == "cap"

        asyncio.run(scenario())
    finally:
        close_session(other)


def test_mcp_tool_client_production_mode_sync(server):
    with MCPToolClient(base_url=server.base_url).sync() as env:
        env.reset()
        assert [t.name for t in env.list_tools()] == TOOL_NAMES
        assert env.call_tool("echo_message", message="sync") == "sync"


# ---- MCPToolClient / EchoEnv with use_production_mode=False (tools as steps over /ws) ----------

@pytest.mark.parametrize("client_class", ["MCPToolClient", "EchoEnv"])
def test_mcp_tool_client_step_mode(server, client_class):
    cls = MCPToolClient if client_class == "MCPToolClient" else EchoEnv

    async def scenario():
        env = cls(base_url=server.base_url)
        env.use_production_mode = False
        async with env:
            await env.reset(episode_id="steps")
            assert [t.name for t in await env.list_tools()] == TOOL_NAMES
            assert await env.call_tool("echo_message", message="Hello!") == "Hello!"
            assert await env.call_tool("echo_with_length", message="Test") == {"message": "Test", "length": 4}
            with pytest.raises(RuntimeError, match=r"^Tool 'nope' failed: Unknown tool: 'nope' \(type: tool_not_found\)$"):
                await env.call_tool("nope")
            state = await env.state()
            assert (state.episode_id, state.step_count) == ("steps", 4)  # every tool call is a step

    asyncio.run(scenario())


def test_mcp_tool_client_step_mode_sync(server):
    client = MCPToolClient(base_url=server.base_url)
    client.use_production_mode = False
    with client.sync() as env:
        env.reset(episode_id="s")
        assert env.call_tool("echo_with_length", message="abc") == {"message": "abc", "length": 3}
        assert env.state().step_count == 1


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
    assert "Verdict: PASS" in completed.stdout
    assert "mode: simulation" in completed.stdout
    assert completed.stdout.count("  PASS  ") == 6

"""The OpenEnv reference echo environment, as one servable file.

This is the Python reference server that envtorch's echo environment is checked against
(tests/compat) and benchmarked against (bench). It reproduces `envs/echo_env` of the OpenEnv
repository (server/echo_environment.py + server/app.py; BSD-style license, Meta Platforms,
Inc. and affiliates), which is not shipped in the `openenv-core` / `openenv` wheels. The
protocol spec describes it in shared/reference/openenv-protocol.md §8.1.

It runs unchanged on both reference cores; the import paths are the same in both wheels:
  * `openenv-core==0.3.0` (venv .venv/openenv-core-0.3.0): the 0.3.0 wire protocol
  * `openenv==0.10.0`     (venv .venv/openenv-0.10.0):     the 0.10.0 wire protocol

Serve it from the directory of this file, with the venv of the wanted core:

    cd tests/compat/reference
    ../../../.venv/openenv-0.10.0/bin/uvicorn echo_app:app --host 127.0.0.1 --port 8000

Environment variables:
  MAX_CONCURRENT_ENVS  maximum simultaneous sessions (/ws, WS /mcp, HTTP MCP sessions); default 8
  OPENENV_MODE         "production" drops HTTP /reset, /step, /state (0.10.0 core only)

The environment is pure MCP: its only actions are `list_tools` and `call_tool`, and its
two FastMCP tools are `echo_message` and `echo_with_length`.
"""

import os
from typing import Any, Optional
from uuid import uuid4

from fastmcp import FastMCP
from openenv.core.env_server.http_server import create_app
from openenv.core.env_server.mcp_environment import MCPEnvironment
from openenv.core.env_server.mcp_types import CallToolAction, CallToolObservation
from openenv.core.env_server.types import Action, Observation, State


class EchoEnvironment(MCPEnvironment):
    """A pure MCP environment that echoes back messages.

    * reset: new `State(episode_id or uuid4, step_count=0)`; returns reward 0.0 and the
      metadata `{"status": "ready", "message": "Echo environment ready!"}`.
    * step: counts every step (list_tools, tool errors, unknown tools), then lets
      `MCPEnvironment` route the MCP action; reward is None and done is False.
    * MCP calls that bypass step() (HTTP /mcp, `type:"mcp"` frames) do not count.
    """

    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(self) -> None:
        mcp = FastMCP("echo_env")

        # The docstrings are the tool descriptions and argument descriptions on the wire:
        # keep them byte-identical to upstream.
        @mcp.tool
        def echo_message(message: str) -> str:
            """
            Echo back the provided message.

            Args:
                message: The message to echo back

            Returns:
                The same message that was provided
            """
            return message

        @mcp.tool
        def echo_with_length(message: str) -> dict:
            """
            Echo back the message with its length.

            Args:
                message: The message to echo back

            Returns:
                Dictionary with the message and its length
            """
            return {"message": message, "length": len(message)}

        super().__init__(mcp)
        # A fresh env already has a random episode id (observable on WS state before reset).
        self._state = State(episode_id=str(uuid4()), step_count=0)
        self._reset_count = 0

    def reset(
        self,
        seed: Optional[int] = None,
        episode_id: Optional[str] = None,
        **kwargs: Any,
    ) -> Observation:
        """Start a new episode; `seed` and extra kwargs are accepted and ignored."""
        self._state = State(episode_id=episode_id or str(uuid4()), step_count=0)
        self._reset_count += 1
        return Observation(
            done=False,
            reward=0.0,
            metadata={"status": "ready", "message": "Echo environment ready!"},
        )

    def _step_impl(
        self,
        action: Action,
        timeout_s: Optional[float] = None,
        **kwargs: Any,
    ) -> Observation:
        """Non-MCP actions. Unreachable through the server (CallToolAction validates first)."""
        return Observation(
            done=False,
            reward=0.0,
            metadata={
                "error": f"Unknown action type: {type(action).__name__}. "
                "Use ListToolsAction or CallToolAction for MCP interactions."
            },
        )

    def step(
        self,
        action: Action,
        timeout_s: Optional[float] = None,
        **kwargs: Any,
    ) -> Observation:
        """Sync step (HTTP /step): count it, then route the MCP action."""
        self._state.step_count += 1
        return super().step(action, timeout_s=timeout_s, **kwargs)

    async def step_async(
        self,
        action: Action,
        timeout_s: Optional[float] = None,
        **kwargs: Any,
    ) -> Observation:
        """Async step (used by /ws): count it, then route the MCP action."""
        self._state.step_count += 1
        return await super().step_async(action, timeout_s=timeout_s, **kwargs)

    @property
    def state(self) -> State:
        return self._state


# The factory is the class itself, so every session gets its own env instance.
app = create_app(
    EchoEnvironment,
    CallToolAction,
    CallToolObservation,
    env_name="echo_env",
    max_concurrent_envs=int(os.getenv("MAX_CONCURRENT_ENVS", "8")),
)

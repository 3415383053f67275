"""The 2048 environment (crates/envs/game-2048) behind envtorch-server, played by the
official Python client (`GenericEnvClient`, from whichever openenv package this venv has).

This module starts its own server, `$ENVTORCH_SERVER_BIN --env $ENVTORCH_GAME_2048_BIN`
(default target/debug/envtorch-server and target/debug/game-2048-env; build them with
`cargo build -p envtorch-server -p game-2048-env`), on a free 127.0.0.1 port, and stops it at
the end. It runs only against COMPAT_TARGET=envtorch: the Python reference has no 2048 env.

The golden trajectories checked in for the Rust tests (crates/envs/game-2048/tests/golden)
are replayed over the wire, so the client sees bit for bit what the environment computes
in-process.
"""

from __future__ import annotations

import contextlib
import json
import random
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

import _support
from _support import REPO_ROOT, request, send_json, ws_open

pytestmark = pytest.mark.skipif(
    _support.TARGET != "envtorch",
    reason="the 2048 environment exists only in envtorch (no Python reference)",
)

GOLDEN_DIR = REPO_ROOT / "crates" / "envs" / "game-2048" / "tests" / "golden"
DIRECTIONS = ("up", "down", "left", "right")


@contextlib.contextmanager
def run_game_server(log_dir: Path, **extra_env: str) -> Iterator[_support.RunningServer]:
    """Start the server with the 2048 env on a free port, wait for /health, always stop it.
    `extra_env` is added to the server's environment (the worker inherits it)."""
    env_bin = _support.env_binary("ENVTORCH_GAME_2048_BIN", "target/debug/game-2048-env")
    with _support.run_envtorch_env(
        log_dir, env_bin, max_sessions=64, drop_env=("GAME_2048_TARGET_TILE",), **extra_env
    ) as server:
        yield server


@pytest.fixture(scope="module")
def game_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_support.RunningServer]:
    with run_game_server(tmp_path_factory.mktemp("game-2048-server")) as server:
        yield server


@contextlib.contextmanager
def client(server: _support.RunningServer) -> Iterator[Any]:
    """The official generic client, synchronous, on its own /ws session."""
    from openenv.core import GenericEnvClient

    with GenericEnvClient(base_url=server.base_url).sync() as env:
        yield env


def _check_observation(obs: dict) -> None:
    board = obs["board"]
    assert len(board) == 4 and all(len(row) == 4 for row in board)
    tiles = [v for row in board for v in row]
    assert all(v == 0 or (v >= 2 and v & (v - 1) == 0) for v in tiles), board
    assert obs["max_tile"] == max(tiles)
    assert set(obs["legal_moves"]) <= set(DIRECTIONS)
    assert obs["board_text"].count("\n") == 3
    assert isinstance(obs["metadata"]["seed"], int)


def play(env: Any, seed: int, policy_seed: int, **reset_kwargs: Any) -> list[tuple]:
    """A full game: reset with `seed`, then random legal moves (from a Python RNG seeded with
    `policy_seed`) until done. Returns (action, observation, reward, done) per step."""
    rng = random.Random(policy_seed)
    result = env.reset(seed=seed, **reset_kwargs)
    _check_observation(result.observation)
    trajectory = [(None, result.observation, result.reward, result.done)]
    total = 0
    steps = 0
    while not result.done:
        action = rng.choice(result.observation["legal_moves"])
        result = env.step({"direction": action})
        steps += 1
        assert steps < 20_000, "a game that never ends"
        obs = result.observation
        _check_observation(obs)
        assert isinstance(result.reward, int) and result.reward >= 0
        assert not obs["no_op"], "a legal move changed nothing"
        total += result.reward
        assert obs["score"] == total
        trajectory.append((action, obs, result.reward, result.done))
    state = env.state()
    assert state["step_count"] == steps
    assert state["score"] == total
    assert state["seed"] == seed
    return trajectory


def test_full_games_with_the_official_client(game_server):
    with client(game_server) as env:
        for seed in (1, 2, 3):
            trajectory = play(env, seed, policy_seed=seed, target_tile=0)
            last = trajectory[-1][1]
            # No target: the game ends only when no move is left.
            assert last["legal_moves"] == []
            assert last["target_tile"] is None
            assert len(trajectory) > 20


def test_the_default_target_is_2048_and_a_reset_can_lower_it(game_server):
    with client(game_server) as env:
        assert env.reset(seed=5).observation["target_tile"] == 2048
        last = play(env, 5, policy_seed=0, target_tile=32)[-1][1]
        assert last["target_tile"] == 32
        assert last["max_tile"] >= 32 or last["legal_moves"] == []


def test_same_seed_and_actions_give_the_same_trajectory(game_server):
    with client(game_server) as first, client(game_server) as second:
        a = play(first, 99, policy_seed=7, target_tile=0)
        b = play(second, 99, policy_seed=7, target_tile=0)
    assert a == b
    with client(game_server) as env:
        other = play(env, 100, policy_seed=7, target_tile=0)
    assert other != a


@pytest.mark.parametrize("name", sorted(p.stem for p in GOLDEN_DIR.glob("*.json")))
def test_golden_trajectories_over_the_wire(game_server, name):
    golden = json.loads((GOLDEN_DIR / f"{name}.json").read_text())
    with client(game_server) as env:
        result = env.reset(seed=golden["seed"], target_tile=golden["target_tile"])
        assert result.observation["board"] == golden["reset"]["board"]
        for i, step in enumerate(golden["steps"], start=1):
            result = env.step({"direction": step["action"]})
            got = {
                "reward": result.reward,
                "score": result.observation["score"],
                "done": result.done,
                "no_op": result.observation["no_op"],
                "board": result.observation["board"],
                "action": step["action"],
            }
            assert got == step, f"{name}: step {i}"
        state = env.state()
    assert state["score"] == golden["final"]["score"]
    assert state["step_count"] == golden["final"]["step_count"]


def test_an_unseeded_reset_reports_a_seed_that_replays_it(game_server):
    with client(game_server) as env:
        seeds = []
        for _ in range(3):
            obs = env.reset().observation
            seed = obs["metadata"]["seed"]
            assert 0 <= seed < 2**53
            assert env.state()["seed"] == seed
            assert env.reset(seed=seed).observation["board"] == obs["board"]
            seeds.append(seed)
        assert len(set(seeds)) == 3


def test_a_move_that_changes_nothing_is_flagged(game_server):
    with client(game_server) as env:
        for seed in range(100):
            obs = env.reset(seed=seed).observation
            blocked = [d for d in DIRECTIONS if d not in obs["legal_moves"]]
            if blocked:
                break
        else:
            pytest.fail("no opening with a blocked direction in 100 seeds")
        result = env.step({"direction": blocked[0]})
        assert result.observation["no_op"] is True
        assert result.reward == 0
        assert result.observation["board"] == obs["board"]
        assert env.state()["step_count"] == 1


@pytest.mark.parametrize(
    "action, error_type, loc",
    [
        ({"direction": "diagonal"}, "enum", ["direction"]),
        ({}, "missing", ["direction"]),
        ({"direction": "up", "speed": 2}, "extra_forbidden", ["speed"]),
    ],
)
def test_bad_actions_are_validation_errors(game_server, action, error_type, loc):
    ws = ws_open(game_server)
    try:
        assert request(ws, {"type": "reset", "data": {"seed": 1}})["type"] == "observation"
        reply = request(ws, {"type": "step", "data": action})
        assert reply["type"] == "error", reply
        assert reply["data"]["code"] == "VALIDATION_ERROR"
        [issue] = reply["data"]["errors"]
        assert issue["type"] == error_type
        assert issue["loc"] == loc
        assert issue["url"] == f"https://errors.pydantic.dev/2.14/v/{error_type}"
        if error_type == "enum":
            assert issue["msg"] == "Input should be 'up', 'down', 'left' or 'right'"
            assert issue["ctx"] == {"expected": "'up', 'down', 'left' or 'right'"}
        # The session survives a bad action.
        assert request(ws, {"type": "step", "data": {"direction": "up"}})["type"] == "observation"
    finally:
        with contextlib.suppress(Exception):
            send_json(ws, {"type": "close"})
        ws.close()


def test_validation_issues_are_pydantics_own(game_server):
    """The issues equal what pydantic itself reports for the equivalent OpenEnv model (a
    string enum, extra keys forbidden, optional metadata)."""
    from enum import Enum

    from pydantic import BaseModel, ConfigDict, Field, ValidationError

    class Direction(str, Enum):
        up = "up"
        down = "down"
        left = "left"
        right = "right"

    class Game2048Action(BaseModel):
        model_config = ConfigDict(extra="forbid")
        metadata: dict[str, Any] = Field(default_factory=dict)
        direction: Direction

    bad_actions = [
        {"direction": "diagonal"},
        {"direction": 3},
        {"direction": None},
        {},
        {"direction": "up", "speed": 2},
        {"Direction": "up", "metadata": []},
    ]
    ws = ws_open(game_server)
    try:
        request(ws, {"type": "reset", "data": {"seed": 1}})
        for action in bad_actions:
            with pytest.raises(ValidationError) as raised:
                Game2048Action.model_validate(action)
            expected = json.loads(raised.value.json())
            reply = request(ws, {"type": "step", "data": action})
            assert reply["data"]["errors"] == expected, action
    finally:
        with contextlib.suppress(Exception):
            send_json(ws, {"type": "close"})
        ws.close()


def test_the_official_client_raises_on_a_bad_direction(game_server):
    with client(game_server) as env:
        env.reset(seed=1)
        with pytest.raises(RuntimeError, match="VALIDATION_ERROR"):
            env.step({"direction": "sideways"})


def test_schema_lists_the_directions(game_server):
    schema = httpx.get(f"{game_server.base_url}/schema", timeout=10).json()
    action = schema["action"]
    direction = action["$defs"]["Direction"]
    assert direction["enum"] == list(DIRECTIONS)
    assert action["required"] == ["direction"]
    assert set(schema["state"]["properties"]) == {"episode_id", "step_count", "score", "seed"}


def test_the_target_tile_variable_sets_the_servers_default(tmp_path):
    with run_game_server(tmp_path, GAME_2048_TARGET_TILE="0") as server:
        with client(server) as env:
            assert env.reset(seed=1).observation["target_tile"] is None
            assert env.reset(seed=1, target_tile=512).observation["target_tile"] == 512
    with run_game_server(tmp_path, GAME_2048_TARGET_TILE="256") as server:
        with client(server) as env:
            assert env.reset(seed=1).observation["target_tile"] == 256


def test_a_bad_target_tile_variable_stops_the_server(tmp_path):
    with pytest.raises(RuntimeError, match="must be 0 .no target. or a power of two"):
        with run_game_server(tmp_path, GAME_2048_TARGET_TILE="100"):
            pass

"""The coding environment (crates/envs/coding) behind envtorch-server, driven by the official
Python client: `GenericEnvClient` with `{"code": ...}` actions, from whichever openenv package
this venv has. The expectations are the reference's (§9 of the protocol notes): output
mapping, rewards, persistence across steps, a fresh namespace on reset.

This module starts its own server (`$ENVTORCH_SERVER_BIN --env $ENVTORCH_CODING_BIN`, default
target/debug/...) on a free 127.0.0.1 port and stops it at the end. It runs only against
COMPAT_TARGET=envtorch: the Python reference coding env needs smolagents and is not set up here.
"""

from __future__ import annotations

from typing import Iterator

import pytest

import _support

pytestmark = pytest.mark.skipif(
    _support.TARGET != "envtorch",
    reason="runs the Rust coding env only (the Python reference coding env is not installed)",
)

try:  # openenv 0.10.0
    from openenv.core import GenericEnvClient
except ImportError:  # openenv-core 0.3.0
    from openenv_core import GenericEnvClient  # type: ignore[no-redef]


@pytest.fixture(scope="module")
def coding_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_support.RunningServer]:
    env_bin = _support.env_binary("ENVTORCH_CODING_BIN", "target/debug/coding-env")
    with _support.run_envtorch_env(tmp_path_factory.mktemp("coding-server"), env_bin, max_sessions=8) as server:
        yield server


@pytest.fixture()
def env(coding_server):
    with GenericEnvClient(base_url=coding_server.base_url).sync() as client:
        client.reset()
        yield client


def run(env, code: str):
    result = env.step({"code": code})
    obs = result.observation
    return obs["stdout"], obs["stderr"], obs["exit_code"], result.reward


@pytest.mark.parametrize(
    "code,stdout,reward",
    [
        ("print('hello')", "hello\n", 0.1),
        ("1 + 1", "2", 0.1),
        ("z = 1", "1", 0.1),
        ("y = {'a': [1, 2]}\ny", '{"a": [1, 2]}', 0.1),
        ("print('a')\nprint('b')\n42", "a\nb\n\n42", 0.1),
        ("# " + "x" * 120 + "\nprint('long')", "long\n", 0.0),
    ],
)
def test_output_mapping_and_rewards_match_the_reference(env, code, stdout, reward):
    out, err, exit_code, got_reward = run(env, code)
    assert (out, err, exit_code) == (stdout, "", 0)
    assert got_reward == reward


def test_exceptions_give_a_traceback_and_exit_code_1(env):
    out, err, exit_code, reward = run(env, "print('lost')\n1/0")
    assert out == ""
    assert "ZeroDivisionError" in err and "Traceback" in err
    assert exit_code == 1
    assert reward == 0.1, "rewards do not depend on the exit code"


def test_unsafe_patterns_and_syntax_errors_are_penalised(env):
    assert run(env, "import os\nprint(os.getcwd() != '')")[3] == -1.0 + 0.1
    _, err, exit_code, reward = run(env, "def (")
    assert exit_code == 1 and "SyntaxError" in err
    assert reward == 0.1 - 0.2


def test_variables_persist_across_steps_and_reset_starts_fresh(env):
    assert run(env, "x = 41")[0] == "41"
    assert run(env, "print(x + 1)")[0] == "42\n"
    state = env.state()
    assert state["step_count"] == 2 and state["last_exit_code"] == 0
    reset = env.reset()
    assert reset.observation["stdout"] == "" and reset.reward == 0.0
    out, err, exit_code, _ = run(env, "print(x)")
    assert exit_code == 1 and "NameError" in err and out == ""


def test_full_python_runs_but_the_network_does_not(env):
    out, _, exit_code, _ = run(env, "import subprocess\nprint(subprocess.run(['python3', '-c', 'print(6*7)'], capture_output=True, text=True).stdout)")
    assert (out, exit_code) == ("42\n\n", 0)
    out, err, exit_code, _ = run(env, "import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=2)")
    assert exit_code == 1 and ("PermissionError" in err or "Operation not permitted" in err), err


def test_unknown_fields_and_wrong_types_are_validation_errors(coding_server):
    with GenericEnvClient(base_url=coding_server.base_url).sync() as client:
        with pytest.raises(RuntimeError, match="VALIDATION_ERROR"):
            client.step({"cmd": "ls"})
        with pytest.raises(RuntimeError, match="VALIDATION_ERROR"):
            client.step({"code": 5})
        assert client.step({"code": "print('still here')"}).observation["stdout"] == "still here\n"

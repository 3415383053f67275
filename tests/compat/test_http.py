"""HTTP surface of the echo server: /health, /reset, /step, /state, /metadata, /schema,
/openapi.json, the Task API, and FastAPI-shaped errors (spec §2, §3; delta §2-§4).

Bodies are compared byte for byte where the spec quotes them verbatim. The envelope target is
0.10.0 (delta §11): `observation.metadata` always, plus a top-level `metadata` (null if empty).
"""

import json
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"

STEP_ECHO_MESSAGE = {
    "action": {"type": "call_tool", "tool_name": "echo_message", "arguments": {"message": "Hello"}}
}


def assert_json_response(response, status: int, body: bytes) -> None:
    assert (response.status_code, response.content) == (status, body)
    assert response.headers["content-type"] == "application/json"


# ---- /health ---------------------------------------------------------------------------

def test_health_is_200_healthy(http):
    assert_json_response(http.get("/health"), 200, b'{"status":"healthy"}')


def test_health_ignores_query_string(http):
    assert_json_response(http.get("/health?probe=1"), 200, b'{"status":"healthy"}')


@pytest.mark.parametrize("method", ["POST", "HEAD"])
def test_health_wrong_method_is_405(http, method):
    response = http.request(method, "/health")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    if method == "POST":  # HEAD responses have no body
        assert response.content == b'{"detail":"Method Not Allowed"}'


# ---- generic FastAPI errors ----------------------------------------------------------

def test_unknown_path_is_404(http):
    assert_json_response(http.get("/no/such/path"), 404, b'{"detail":"Not Found"}')


def test_plain_get_ws_without_upgrade_is_404(http):
    assert_json_response(http.get("/ws"), 404, b'{"detail":"Not Found"}')


def test_get_reset_is_405_allow_post(http):
    response = http.get("/reset")
    assert_json_response(response, 405, b'{"detail":"Method Not Allowed"}')
    assert response.headers["allow"] == "POST"


# ---- /reset ---------------------------------------------------------------------------

ECHO_RESET_010 = (
    b'{"observation":{"metadata":{"status":"ready","message":"Echo environment ready!"}},'
    b'"reward":0.0,"done":false,"metadata":{"status":"ready","message":"Echo environment ready!"}}'
)


@pytest.mark.since_010("the 0.3.0 envelope has no metadata")
@pytest.mark.parametrize(
    "body",
    [{"seed": 42, "episode_id": "ep-1"}, {}, {"foo": "bar"}, {"seed": None, "episode_id": None}],
    ids=["seed+episode_id", "empty", "extra-keys-allowed", "nulls"],
)
def test_reset_envelope_verbatim(http, body):
    assert_json_response(http.post("/reset", json=body), 200, ECHO_RESET_010)


@pytest.mark.since_010("the 0.3.0 envelope has no metadata")
def test_reset_without_body_is_empty_request(http):
    assert_json_response(http.post("/reset"), 200, ECHO_RESET_010)


RESET_422 = [
    (
        b'{"seed":-1}',
        b'{"detail":[{"type":"greater_than_equal","loc":["body","seed"],"msg":"Input should be greater than or equal to 0","input":-1,"ctx":{"ge":0}}]}',
    ),
    (
        b'{"seed":"abc"}',
        b'{"detail":[{"type":"int_parsing","loc":["body","seed"],"msg":"Input should be a valid integer, unable to parse string as an integer","input":"abc"}]}',
    ),
    (
        b'{"seed":1.5}',
        b'{"detail":[{"type":"int_from_float","loc":["body","seed"],"msg":"Input should be a valid integer, got a number with a fractional part","input":1.5}]}',
    ),
    (
        b'{"episode_id":' + b'"' + b"x" * 256 + b'"}',
        b'{"detail":[{"type":"string_too_long","loc":["body","episode_id"],"msg":"String should have at most 255 characters","input":"'
        + b"x" * 256
        + b'","ctx":{"max_length":255}}]}',
    ),
    (
        b"{bad json",
        b'{"detail":[{"type":"json_invalid","loc":["body",1],"msg":"JSON decode error","input":{},"ctx":{"error":"Expecting property name enclosed in double quotes"}}]}',
    ),
    (
        b"[]",
        b'{"detail":[{"type":"model_attributes_type","loc":["body"],"msg":"Input should be a valid dictionary or object to extract fields from","input":[]}]}',
    ),
    (
        b"null",
        b'{"detail":[{"type":"model_attributes_type","loc":["body"],"msg":"Input should be a valid dictionary or object to extract fields from","input":null}]}',
    ),
]


@pytest.mark.parametrize(
    "body,expected",
    RESET_422,
    ids=["seed-negative", "seed-string", "seed-float", "episode-id-too-long", "bad-json", "list", "null"],
)
def test_reset_validation_error_verbatim(http, body, expected):
    response = http.post("/reset", content=body, headers={"content-type": "application/json"})
    assert_json_response(response, 422, expected)


def test_reset_non_json_content_type_is_422_with_raw_input(http):
    response = http.post("/reset", content=b"{}", headers={"content-type": "text/plain"})
    assert_json_response(
        response,
        422,
        b'{"detail":[{"type":"model_attributes_type","loc":["body"],"msg":"Input should be a valid dictionary or object to extract fields from","input":"{}"}]}',
    )


def test_http_reward_is_a_float(http):
    # HTTP coerces reward to float (spec §2): 0.0, never 0.
    assert b'"reward":0.0,' in http.post("/reset", json={}).content


# ---- /step ----------------------------------------------------------------------------

ECHO_STEP_MESSAGE_010 = (
    b'{"observation":{"metadata":{},"tool_name":"echo_message","result":{"content":[{"type":"text","text":"Hello","annotations":null,"meta":null}],'
    b'"structured_content":{"result":"Hello"},"meta":{"fastmcp":{"wrap_result":true}},"data":"Hello","is_error":false},"error":null},'
    b'"reward":null,"done":false,"metadata":null}'
)


@pytest.mark.since_010("0.3.0 has no metadata and fastmcp 4 adds serverInfo to result.meta")
def test_step_echo_message_verbatim(http):
    assert_json_response(http.post("/step", json=STEP_ECHO_MESSAGE), 200, ECHO_STEP_MESSAGE_010)


def test_step_echo_with_length_result(http):
    body = {"action": {"type": "call_tool", "tool_name": "echo_with_length", "arguments": {"message": "Test"}}}
    response = http.post("/step", json=body)
    assert response.status_code == 200
    envelope = response.json()
    assert (envelope["reward"], envelope["done"]) == (None, False)
    observation = envelope["observation"]
    assert (observation["tool_name"], observation["error"]) == ("echo_with_length", None)
    result = observation["result"]
    assert result["data"] == {"message": "Test", "length": 4}
    assert result["structured_content"] == {"message": "Test", "length": 4}
    assert result["is_error"] is False
    assert result["content"] == [
        {"type": "text", "text": '{"message":"Test","length":4}', "annotations": None, "meta": None}
    ]


def test_step_type_defaults_to_call_tool(http):
    body = {"action": {"tool_name": "echo_message", "arguments": {"message": "no type"}}}
    response = http.post("/step", json=body)
    assert response.status_code == 200
    assert response.json()["observation"]["result"]["data"] == "no type"


def test_step_list_tools(http):
    response = http.post("/step", json={"action": {"type": "list_tools"}})
    assert response.status_code == 200
    tools = response.json()["observation"]["tools"]
    assert [(t["name"], t["description"]) for t in tools] == [
        ("echo_message", "Echo back the provided message."),
        ("echo_with_length", "Echo back the message with its length."),
    ]
    for tool in tools:
        assert set(tool) == {"name", "description", "input_schema"}
        assert tool["input_schema"] == ECHO_TOOL_INPUT_SCHEMA


ECHO_TOOL_INPUT_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"message": {"type": "string", "description": "The message to echo back"}},
    "required": ["message"],
}


def test_step_unknown_tool_is_an_observation_error_not_a_protocol_error(http):
    body = {"action": {"type": "call_tool", "tool_name": "nope", "arguments": {}}}
    response = http.post("/step", json=body)
    assert response.status_code == 200
    observation = response.json()["observation"]
    assert observation["result"] is None
    assert observation["error"] == {"error_type": "tool_not_found", "message": "Unknown tool: 'nope'"}


def test_step_missing_tool_argument_is_invalid_args(http):
    body = {"action": {"type": "call_tool", "tool_name": "echo_message", "arguments": {}}}
    observation = http.post("/step", json=body).json()["observation"]
    assert observation["error"]["error_type"] == "invalid_args"
    assert "message" in observation["error"]["message"]


STEP_422 = [
    (b"", b'{"detail":[{"type":"missing","loc":["body"],"msg":"Field required","input":null}]}'),
    (b"{}", b'{"detail":[{"type":"missing","loc":["body","action"],"msg":"Field required","input":{}}]}'),
    (
        b'{"action":"str"}',
        b'{"detail":[{"type":"dict_type","loc":["body","action"],"msg":"Input should be a valid dictionary","input":"str"}]}',
    ),
    (
        b"{bad json",
        b'{"detail":[{"type":"json_invalid","loc":["body",1],"msg":"JSON decode error","input":{},"ctx":{"error":"Expecting property name enclosed in double quotes"}}]}',
    ),
    (
        b'{"action":{"type":"list_tools"},"timeout_s":0}',
        b'{"detail":[{"type":"greater_than","loc":["body","timeout_s"],"msg":"Input should be greater than 0","input":0,"ctx":{"gt":0.0}}]}',
    ),
    # Action-level errors: pydantic errors of the action model, no "body" prefix, with "url".
    (
        b'{"action":{"message":"hi"}}',
        b'{"detail":[{"type":"missing","loc":["tool_name"],"msg":"Field required","input":{"message":"hi"},"url":"https://errors.pydantic.dev/2.14/v/missing"},'
        b'{"type":"extra_forbidden","loc":["message"],"msg":"Extra inputs are not permitted","input":"hi","url":"https://errors.pydantic.dev/2.14/v/extra_forbidden"}]}',
    ),
    (
        b'{"action":{"type":"call_tool"}}',
        b'{"detail":[{"type":"missing","loc":["tool_name"],"msg":"Field required","input":{"type":"call_tool"},"url":"https://errors.pydantic.dev/2.14/v/missing"}]}',
    ),
    (
        b'{"action":{"type":"list_tools","foo":1}}',
        b'{"detail":[{"type":"extra_forbidden","loc":["foo"],"msg":"Extra inputs are not permitted","input":1,"url":"https://errors.pydantic.dev/2.14/v/extra_forbidden"}]}',
    ),
]


STEP_422 += [
    (
        b'{"action":{"type":"list_tools"},"timeout_s":"abc"}',
        b'{"detail":[{"type":"float_parsing","loc":["body","timeout_s"],"msg":"Input should be a valid number, unable to parse string as a number","input":"abc"}]}',
    ),
    (
        b'{"action":{"type":"list_tools"},"request_id":"' + b"r" * 256 + b'"}',
        b'{"detail":[{"type":"string_too_long","loc":["body","request_id"],"msg":"String should have at most 255 characters","input":"'
        + b"r" * 256
        + b'","ctx":{"max_length":255}}]}',
    ),
]


@pytest.mark.parametrize(
    "body,expected",
    STEP_422,
    ids=["no-body", "empty", "action-string", "bad-json", "timeout-zero", "wrong-action-fields",
         "call-tool-without-name", "list-tools-extra-key", "timeout-string", "request-id-too-long"],
)
def test_step_validation_error_verbatim(http, body, expected):
    response = http.post("/step", content=body, headers={"content-type": "application/json"})
    assert_json_response(response, 422, expected)


def test_step_accepts_timeout_request_id_and_extra_keys(http):
    # spec §3.3: timeout_s, request_id and extra keys are forwarded to step(), not rejected.
    body = {"action": {"type": "call_tool", "tool_name": "echo_message", "arguments": {"message": "kw"}},
            "timeout_s": 2.5, "request_id": "rq-9", "render": True}
    response = http.post("/step", json=body)
    assert response.status_code == 200
    assert response.json()["observation"]["result"]["data"] == "kw"


def test_step_arguments_as_json_string_is_422_dict_type(http):
    # delta §3: HTTP step does no preprocessing of string arguments (only /web/step does).
    body = {"action": {"type": "call_tool", "tool_name": "echo_message", "arguments": '{"message":"x"}'}}
    response = http.post("/step", json=body)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert (error["type"], error["loc"]) == ("dict_type", ["arguments"])


def test_http_is_stateless(http):
    # Every HTTP request gets a fresh env: a step does not show in a later /state.
    http.post("/reset", json={"episode_id": "stateless"})
    http.post("/step", json=STEP_ECHO_MESSAGE)
    first, second = http.get("/state"), http.get("/state")
    for response in (first, second):
        assert response.status_code == 200
        state = response.json()
        assert set(state) == {"episode_id", "step_count"}
        assert state["step_count"] == 0
        assert state["episode_id"] != "stateless"
    assert first.json()["episode_id"] != second.json()["episode_id"]


# ---- /metadata, /schema, /openapi.json -----------------------------------------------

def test_metadata_verbatim(http):
    assert_json_response(
        http.get("/metadata"),
        200,
        b'{"name":"EchoEnvironment","description":"EchoEnvironment environment","readme_content":null,'
        b'"version":"1.0.0","author":null,"documentation_url":null}',
    )


def test_schema_action_observation_state_match_spec(http):
    # spec §3.6 quotes the echo schemas verbatim (unchanged in 0.10.0).
    expected = json.loads((GOLDEN / "echo_schema_0.3.0_spec.json").read_text())
    response = http.get("/schema")
    assert response.status_code == 200
    schema = response.json()
    for key in ("action", "observation", "state"):
        assert schema[key] == expected[key], key


@pytest.mark.since_010("reset_observation was added to /schema in 0.10.0")
def test_schema_has_reset_observation_equal_to_observation(http):
    schema = http.get("/schema").json()
    assert set(schema) == {"action", "observation", "reset_observation", "state"}
    assert schema["reset_observation"] == schema["observation"]


EXPECTED_PATHS_010 = {
    "/list_environments": {"get"},
    "/{env_name}/splits": {"get"},
    "/{env_name}/tasks": {"post"},
    "/{env_name}/num_tasks": {"post"},
    "/{env_name}/task": {"post"},
    "/{env_name}/task_range": {"post"},
    "/reset": {"post"},
    "/step": {"post"},
    "/state": {"get"},
    "/metadata": {"get"},
    "/health": {"get"},
    "/schema": {"get"},
    "/mcp": {"post"},
}


def test_openapi_version_1x_and_core_paths(http):
    response = http.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["info"]["title"] == "OpenEnv Environment HTTP API"
    assert isinstance(document["info"]["version"], str)
    assert document["info"]["version"].startswith("1.")  # openenv validate: profile openenv-http/1.x
    for path in ("/reset", "/step", "/state", "/metadata", "/health", "/schema", "/mcp"):
        assert EXPECTED_PATHS_010[path] <= set(document["paths"][path]), path


@pytest.mark.since_010("Task API paths and envelope metadata are 0.10.0 additions")
def test_openapi_paths_and_response_metadata_010(http):
    document = http.get("/openapi.json").json()
    paths = {path: set(methods) for path, methods in document["paths"].items()}
    assert paths == EXPECTED_PATHS_010
    schemas = document["components"]["schemas"]
    for name in ("ResetResponse", "StepResponse"):
        assert schemas[name]["properties"]["metadata"]["anyOf"] == [
            {"additionalProperties": True, "type": "object"},
            {"type": "null"},
        ], name


# ---- Task API (delta §4) ---------------------------------------------------------------

@pytest.mark.since_010("the Task API is new in 0.10.0")
def test_list_environments(http):
    assert_json_response(http.get("/list_environments"), 200, b'["echo_env"]')


TASK_API_501 = [
    ("GET", "/echo_env/splits", None, "list_splits"),
    ("POST", "/echo_env/tasks", {"split": "train"}, "list_tasks"),
    ("POST", "/echo_env/num_tasks", {"split": "train"}, "num_tasks"),
    ("POST", "/echo_env/task", {"split": "train", "index": 0}, "get_task"),
    ("POST", "/echo_env/task_range", {"split": "train"}, "get_task_range"),
    ("GET", "/ECHO_ENV/splits", None, "list_splits"),  # env name match is case-insensitive
]


@pytest.mark.since_010("the Task API is new in 0.10.0")
@pytest.mark.parametrize(
    "method,path,body,operation", TASK_API_501,
    ids=["splits", "tasks", "num_tasks", "task", "task_range", "case-insensitive-name"],
)
def test_task_api_not_supported_by_echo_is_501(http, method, path, body, operation):
    response = http.request(method, path, json=body)
    assert_json_response(
        response, 501, f'{{"detail":"{operation} is not supported for this environment"}}'.encode()
    )


@pytest.mark.since_010("the Task API is new in 0.10.0")
@pytest.mark.parametrize(
    "method,path,body",
    [("GET", "/other_env/splits", None), ("POST", "/other_env/tasks", {"split": "train"})],
    ids=["splits", "tasks"],
)
def test_task_api_unknown_env_is_404(http, method, path, body):
    response = http.request(method, path, json=body)
    assert_json_response(response, 404, b'{"detail":"unknown environment \'other_env\'"}')


@pytest.mark.since_010("the Task API is new in 0.10.0")
@pytest.mark.parametrize(
    "body,expected",
    [
        ({}, b'{"detail":[{"type":"missing","loc":["body","split"],"msg":"Field required","input":{}}]}'),
        (
            {"split": "train", "x": 1},
            b'{"detail":[{"type":"extra_forbidden","loc":["body","x"],"msg":"Extra inputs are not permitted","input":1}]}',
        ),
    ],
    ids=["missing-split", "extra-key"],
)
def test_task_api_body_validation_is_422(http, body, expected):
    assert_json_response(http.post("/echo_env/tasks", json=body), 422, expected)

//! `/openapi.json`: an OpenAPI 3.1 description of the served routes.
//!
//! `openenv validate` reads `info.version` (it must be `1.x`) and infers the mode from the
//! paths: `/reset` present means simulation, which then needs `/step` and `/state`.

use serde_json::{Map, Value, json};

use crate::config::Mode;
use envtorch_worker_protocol::EnvManifest;

fn body(schema: &str) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

fn ok_json(schema: Value) -> Value {
    json!({"200": {"description": "Successful Response", "content": {"application/json": {"schema": schema}}}})
}

fn with_422(mut responses: Value) -> Value {
    if let Value::Object(m) = &mut responses {
        m.insert(
            "422".into(),
            json!({"description": "Validation Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}}}),
        );
    }
    responses
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// Renders the document for the environment and mode.
pub fn document(manifest: &EnvManifest, mode: Mode) -> Value {
    let mut paths = Map::new();
    let task_param = json!([{"name": "env_name", "in": "path", "required": true, "schema": {"type": "string", "title": "Env Name"}}]);
    paths.insert("/list_environments".into(), json!({"get": {"summary": "List Environments", "operationId": "list_environments", "responses": ok_json(json!({"type": "array", "items": {"type": "string"}}))}}));
    paths.insert("/{env_name}/splits".into(), json!({"get": {"summary": "List Splits", "operationId": "list_splits", "parameters": task_param, "responses": with_422(ok_json(json!({})))}}));
    for (path, op) in [
        ("tasks", "list_tasks"),
        ("num_tasks", "num_tasks"),
        ("task", "get_task"),
        ("task_range", "get_task_range"),
    ] {
        paths.insert(
            format!("/{{env_name}}/{path}"),
            json!({"post": {"summary": op, "operationId": op, "parameters": task_param, "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object"}}}}, "responses": with_422(ok_json(json!({})))}}),
        );
    }
    if mode == Mode::Simulation {
        paths.insert("/reset".into(), json!({"post": {"tags": ["Environment Control"], "summary": "Reset the environment", "operationId": "reset", "requestBody": {"content": {"application/json": {"schema": reference("ResetRequest")}}}, "responses": with_422(ok_json(reference("ResetResponse")))}}));
        paths.insert("/step".into(), json!({"post": {"tags": ["Environment Control"], "summary": "Execute an action in the environment", "operationId": "step", "requestBody": body("StepRequest"), "responses": with_422(ok_json(reference("StepResponse")))}}));
        paths.insert("/state".into(), json!({"get": {"tags": ["State Management"], "summary": "Get current environment state", "operationId": "state", "responses": ok_json(reference("State"))}}));
    }
    paths.insert("/metadata".into(), json!({"get": {"tags": ["Environment Info"], "summary": "Get environment metadata", "operationId": "metadata", "responses": ok_json(reference("EnvironmentMetadata"))}}));
    paths.insert("/health".into(), json!({"get": {"tags": ["Health"], "summary": "Health check", "operationId": "health", "responses": ok_json(reference("HealthResponse"))}}));
    paths.insert("/schema".into(), json!({"get": {"tags": ["Schema"], "summary": "Get all JSON schemas", "operationId": "schema", "responses": ok_json(reference("SchemaResponse"))}}));
    paths.insert("/mcp".into(), json!({"post": {"tags": ["MCP"], "summary": "MCP JSON-RPC endpoint", "operationId": "mcp", "responses": ok_json(json!({"type": "object"}))}}));
    let schemas = json!({
        "ResetRequest": {"properties": {"seed": {"anyOf": [{"type": "integer", "minimum": 0.0}, {"type": "null"}], "title": "Seed"}, "episode_id": {"anyOf": [{"type": "string", "maxLength": 255}, {"type": "null"}], "title": "Episode Id"}}, "additionalProperties": true, "type": "object", "title": "ResetRequest"},
        "ResetResponse": {"properties": {"observation": {"type": "object", "additionalProperties": true, "title": "Observation"}, "reward": {"anyOf": [{"type": "number"}, {"type": "null"}], "title": "Reward"}, "done": {"type": "boolean", "default": false, "title": "Done"}, "metadata": {"anyOf": [{"additionalProperties": true, "type": "object"}, {"type": "null"}], "title": "Metadata"}}, "additionalProperties": false, "type": "object", "required": ["observation"], "title": "ResetResponse"},
        "StepRequest": {"properties": {"action": {"type": "object", "additionalProperties": true, "title": "Action"}, "timeout_s": {"anyOf": [{"type": "number", "exclusiveMinimum": 0.0}, {"type": "null"}], "title": "Timeout S"}, "request_id": {"anyOf": [{"type": "string", "maxLength": 255}, {"type": "null"}], "title": "Request Id"}}, "additionalProperties": true, "type": "object", "required": ["action"], "title": "StepRequest"},
        "StepResponse": {"properties": {"observation": {"type": "object", "additionalProperties": true, "title": "Observation"}, "reward": {"anyOf": [{"type": "number"}, {"type": "null"}], "title": "Reward"}, "done": {"type": "boolean", "default": false, "title": "Done"}, "metadata": {"anyOf": [{"additionalProperties": true, "type": "object"}, {"type": "null"}], "title": "Metadata"}}, "additionalProperties": false, "type": "object", "required": ["observation"], "title": "StepResponse"},
        "State": manifest.schemas.state,
        "EnvironmentMetadata": {"properties": {"name": {"type": "string", "title": "Name"}, "description": {"type": "string", "title": "Description"}, "readme_content": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "Readme Content"}, "version": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "Version"}, "author": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "Author"}, "documentation_url": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "Documentation Url"}}, "additionalProperties": false, "type": "object", "required": ["name", "description"], "title": "EnvironmentMetadata"},
        "HealthStatus": {"type": "string", "enum": ["healthy", "unhealthy", "degraded"], "title": "HealthStatus"},
        "HealthResponse": {"properties": {"status": {"$ref": "#/components/schemas/HealthStatus", "default": "healthy"}}, "type": "object", "title": "HealthResponse"},
        "SchemaResponse": {"properties": {"action": {"title": "Action"}, "observation": {"title": "Observation"}, "reset_observation": {"title": "Reset Observation"}, "state": {"title": "State"}}, "type": "object", "required": ["action", "observation", "state"], "title": "SchemaResponse"},
        "ValidationError": {"properties": {"loc": {"items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}, "type": "array", "title": "Location"}, "msg": {"type": "string", "title": "Message"}, "type": {"type": "string", "title": "Error Type"}}, "type": "object", "required": ["loc", "msg", "type"], "title": "ValidationError"},
        "HTTPValidationError": {"properties": {"detail": {"items": {"$ref": "#/components/schemas/ValidationError"}, "type": "array", "title": "Detail"}}, "type": "object", "title": "HTTPValidationError"}
    });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "OpenEnv Environment HTTP API",
            "description": format!("envtorch serving {} ({})", manifest.name, manifest.version),
            "version": "1.0.0",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

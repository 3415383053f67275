//! JSON Schemas shaped like the reference's pydantic models.
//!
//! Schemas come from the Rust types (schemars); this module adds what every OpenEnv model
//! has: actions accept an optional `metadata` object and forbid other keys; observations
//! declare `done`, `reward` and `metadata` first. The runtime validator in `openenv validate`
//! checks observations against these schemas, so every key an environment sends must be here.

use schemars::JsonSchema;
use serde_json::{Map, Value, json};

/// The action schema of `T`, with `metadata` and `additionalProperties: false`.
pub fn action_schema<T: JsonSchema>() -> Value {
    let mut schema = root_schema::<T>();
    if let Value::Object(obj) = &mut schema {
        prepend_properties(obj, vec![("metadata", action_metadata())]);
        obj.insert("additionalProperties".into(), Value::Bool(false));
    }
    schema
}

/// The observation schema of `T`, with `done`, `reward` and `metadata` first.
pub fn observation_schema<T: JsonSchema>() -> Value {
    let mut schema = root_schema::<T>();
    if let Value::Object(obj) = &mut schema {
        prepend_properties(
            obj,
            vec![
                (
                    "done",
                    json!({"default": false, "description": "Whether the episode has terminated", "title": "Done", "type": "boolean"}),
                ),
                (
                    "reward",
                    json!({"anyOf": [{"type": "boolean"}, {"type": "integer"}, {"type": "number"}, {"type": "null"}], "default": null, "description": "Reward signal from the last action", "title": "Reward"}),
                ),
                (
                    "metadata",
                    json!({"additionalProperties": true, "description": "Additional metadata for the observation", "title": "Metadata", "type": "object"}),
                ),
            ],
        );
        obj.insert("additionalProperties".into(), Value::Bool(false));
    }
    schema
}

/// The state schema of `T`.
pub fn state_schema<T: JsonSchema>() -> Value {
    root_schema::<T>()
}

/// The schema of `T` without the `$schema` key (pydantic emits none).
pub fn root_schema<T: JsonSchema>() -> Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(T)).unwrap_or_else(|_| json!({}));
    if let Value::Object(obj) = &mut schema {
        obj.remove("$schema");
    }
    schema
}

/// The `metadata` property every action declares.
pub fn action_metadata() -> Value {
    json!({"additionalProperties": true, "description": "Additional metadata for the action", "title": "Metadata", "type": "object"})
}

fn prepend_properties(obj: &mut Map<String, Value>, first: Vec<(&str, Value)>) {
    let existing = match obj.remove("properties") {
        Some(Value::Object(p)) => p,
        _ => Map::new(),
    };
    let mut props = Map::new();
    for (k, v) in first {
        props.insert(k.to_owned(), v);
    }
    for (k, v) in existing {
        props.entry(k).or_insert(v);
    }
    obj.insert("properties".into(), Value::Object(props));
    if !obj.contains_key("type") {
        obj.insert("type".into(), json!("object"));
    }
}

//! A JSON Schema subset validator that reports pydantic-shaped issues.
//!
//! It covers what schemars derives for plain Rust types and what MCP tool schemas use:
//! `type` (one or several), `properties`, `required`, `additionalProperties`, `items`,
//! `const`, `enum`, `anyOf`/`oneOf`, `$ref` into `$defs`, `minimum`/`maximum`,
//! `minLength`/`maxLength`. Fields are checked in declaration order and extra keys after them,
//! in input order, which is the order pydantic reports them in.

use serde_json::{Map, Value, json};

use envtorch_wire::{Loc, ValidationIssue};

/// All issues of `value` against `schema` (empty when valid). Issues have no `url`.
pub fn validate(schema: &Value, value: &Value) -> Vec<ValidationIssue> {
    let mut issues = Vec::new();
    let mut loc = Vec::new();
    check(schema, schema, value, &mut loc, &mut issues);
    issues
}

fn check(
    root: &Value,
    schema: &Value,
    value: &Value,
    loc: &mut Vec<Loc>,
    issues: &mut Vec<ValidationIssue>,
) {
    let Some(s) = schema.as_object() else { return };
    if let Some(target) = s.get("$ref").and_then(Value::as_str) {
        if let Some(resolved) = resolve(root, target) {
            check(root, resolved, value, loc, issues);
        }
        return;
    }
    if let Some(branches) = s
        .get("anyOf")
        .or_else(|| s.get("oneOf"))
        .and_then(Value::as_array)
    {
        check_union(root, branches, value, loc, issues);
        return;
    }
    if let Some(expected) = s.get("const") {
        if value != expected {
            let shown = literal(expected);
            issues.push(
                ValidationIssue::new(
                    "literal_error",
                    loc.clone(),
                    format!("Input should be {shown}"),
                    value.clone(),
                )
                .with_ctx(json!({"expected": shown})),
            );
        }
        return;
    }
    if let Some(options) = s.get("enum").and_then(Value::as_array) {
        check_enum(options.iter(), value, loc, issues);
        return;
    }
    if let Some(types) = s.get("type") {
        let allowed: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !allowed.is_empty() && !allowed.iter().any(|t| has_type(value, t)) {
            let expected = allowed
                .iter()
                .copied()
                .find(|t| *t != "null")
                .unwrap_or("null");
            issues.push(ValidationIssue::wrong_type(
                expected,
                loc.clone(),
                value.clone(),
            ));
            return;
        }
    }
    match value {
        Value::Object(map) => check_object(root, s, map, value, loc, issues),
        Value::Array(items) => {
            if let Some(item_schema) = s.get("items") {
                for (i, item) in items.iter().enumerate() {
                    loc.push(Loc::Index(i as u64));
                    check(root, item_schema, item, loc, issues);
                    loc.pop();
                }
            }
        }
        Value::Number(n) => {
            if let (Some(min), Some(x)) = (s.get("minimum").and_then(Value::as_f64), n.as_f64()) {
                if x < min {
                    issues.push(
                        ValidationIssue::new(
                            "greater_than_equal",
                            loc.clone(),
                            format!("Input should be greater than or equal to {}", num(min)),
                            value.clone(),
                        )
                        .with_ctx(json!({"ge": min})),
                    );
                }
            }
            if let (Some(max), Some(x)) = (s.get("maximum").and_then(Value::as_f64), n.as_f64()) {
                if x > max {
                    issues.push(
                        ValidationIssue::new(
                            "less_than_equal",
                            loc.clone(),
                            format!("Input should be less than or equal to {}", num(max)),
                            value.clone(),
                        )
                        .with_ctx(json!({"le": max})),
                    );
                }
            }
        }
        Value::String(text) => {
            let len = text.chars().count() as u64;
            if let Some(max) = s.get("maxLength").and_then(Value::as_u64) {
                if len > max {
                    issues.push(
                        ValidationIssue::new(
                            "string_too_long",
                            loc.clone(),
                            format!("String should have at most {max} character{}", plural(max)),
                            value.clone(),
                        )
                        .with_ctx(json!({"max_length": max})),
                    );
                }
            }
            if let Some(min) = s.get("minLength").and_then(Value::as_u64) {
                if len < min {
                    issues.push(
                        ValidationIssue::new(
                            "string_too_short",
                            loc.clone(),
                            format!("String should have at least {min} character{}", plural(min)),
                            value.clone(),
                        )
                        .with_ctx(json!({"min_length": min})),
                    );
                }
            }
        }
        _ => {}
    }
}

fn check_object(
    root: &Value,
    s: &Map<String, Value>,
    map: &Map<String, Value>,
    value: &Value,
    loc: &mut Vec<Loc>,
    issues: &mut Vec<ValidationIssue>,
) {
    let empty = Map::new();
    let props = s
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let required: Vec<&str> = s
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (name, prop_schema) in props {
        loc.push(Loc::Key(name.clone()));
        match map.get(name) {
            Some(v) => check(root, prop_schema, v, loc, issues),
            None if required.contains(&name.as_str()) => {
                issues.push(ValidationIssue::missing(loc.clone(), value.clone()));
            }
            None => {}
        }
        loc.pop();
    }
    for name in required {
        if !props.contains_key(name) && !map.contains_key(name) {
            loc.push(Loc::Key(name.to_owned()));
            issues.push(ValidationIssue::missing(loc.clone(), value.clone()));
            loc.pop();
        }
    }
    match s.get("additionalProperties") {
        Some(Value::Bool(false)) => {
            for (k, v) in map {
                if !props.contains_key(k) {
                    loc.push(Loc::Key(k.clone()));
                    issues.push(ValidationIssue::extra_forbidden(loc.clone(), v.clone()));
                    loc.pop();
                }
            }
        }
        Some(extra_schema @ Value::Object(_)) => {
            for (k, v) in map {
                if !props.contains_key(k) {
                    loc.push(Loc::Key(k.clone()));
                    check(root, extra_schema, v, loc, issues);
                    loc.pop();
                }
            }
        }
        _ => {}
    }
}

/// Unions: valid if any branch is; `Optional[X]` reports X's issues, like pydantic.
fn check_union(
    root: &Value,
    branches: &[Value],
    value: &Value,
    loc: &mut Vec<Loc>,
    issues: &mut Vec<ValidationIssue>,
) {
    // schemars writes an enum whose variants carry doc comments as a `oneOf` of `const`s:
    // report it as one enum, as pydantic does for a `Literal`/`Enum`.
    let consts: Option<Vec<&Value>> = branches.iter().map(|b| b.get("const")).collect();
    if let Some(consts) = consts.filter(|c| c.len() > 1) {
        check_enum(consts.into_iter(), value, loc, issues);
        return;
    }
    let mut first_failure = None;
    for branch in branches {
        let mut branch_issues = Vec::new();
        check(root, branch, value, loc, &mut branch_issues);
        if branch_issues.is_empty() {
            return;
        }
        let is_null_branch = branch.get("type").and_then(Value::as_str) == Some("null");
        if first_failure.is_none() && !is_null_branch {
            first_failure = Some(branch_issues);
        }
    }
    issues.extend(first_failure.unwrap_or_default());
}

/// `enum` issue unless `value` is one of `options` (pydantic's words for a Literal/Enum).
fn check_enum<'v>(
    options: impl Iterator<Item = &'v Value> + Clone,
    value: &Value,
    loc: &[Loc],
    issues: &mut Vec<ValidationIssue>,
) {
    if options.clone().any(|o| o == value) {
        return;
    }
    let shown: Vec<String> = options.map(literal).collect();
    let expected = join_or(&shown);
    issues.push(
        ValidationIssue::new(
            "enum",
            loc.to_vec(),
            format!("Input should be {expected}"),
            value.clone(),
        )
        .with_ctx(json!({"expected": expected})),
    );
}

fn resolve<'a>(root: &'a Value, target: &str) -> Option<&'a Value> {
    let path = target.strip_prefix("#/")?;
    path.split('/').try_fold(root, |node, part| node.get(part))
}

fn has_type(value: &Value, ty: &str) -> bool {
    match ty {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => {
            value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => true,
    }
}

fn literal(v: &Value) -> String {
    match v {
        Value::String(s) => format!("'{s}'"),
        other => envtorch_wire::pyjson::py_repr(other),
    }
}

fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn num(f: f64) -> String {
    if f.fract() == 0.0 {
        format!("{}", f as i64)
    } else {
        f.to_string()
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_schema() -> Value {
        json!({"additionalProperties":false,"properties":{"metadata":{"additionalProperties":true,"type":"object"},"type":{"const":"call_tool","default":"call_tool","type":"string"},"tool_name":{"type":"string"},"arguments":{"additionalProperties":true,"type":"object"}},"required":["tool_name"],"type":"object"})
    }

    #[test]
    fn reports_missing_then_extra_like_pydantic() {
        let issues = validate(&echo_schema(), &json!({"message": "hi"}));
        let out: Vec<Value> = issues
            .into_iter()
            .map(|i| serde_json::to_value(i.with_url()).unwrap())
            .collect();
        assert_eq!(
            Value::Array(out).to_string(),
            r#"[{"type":"missing","loc":["tool_name"],"msg":"Field required","input":{"message":"hi"},"url":"https://errors.pydantic.dev/2.14/v/missing"},{"type":"extra_forbidden","loc":["message"],"msg":"Extra inputs are not permitted","input":"hi","url":"https://errors.pydantic.dev/2.14/v/extra_forbidden"}]"#
        );
    }

    #[test]
    fn types_consts_and_optionals() {
        let schema = echo_schema();
        let issues = validate(
            &schema,
            &json!({"type": "bogus", "tool_name": 3, "metadata": []}),
        );
        let kinds: Vec<&str> = issues.iter().map(|i| i.kind.as_str()).collect();
        assert_eq!(kinds, ["dict_type", "literal_error", "string_type"]);
        let optional =
            json!({"type":"object","properties":{"n":{"type":["integer","null"],"minimum":0}}});
        assert!(validate(&optional, &json!({"n": null})).is_empty());
        assert_eq!(
            validate(&optional, &json!({"n": -1}))[0].kind,
            "greater_than_equal"
        );
        assert_eq!(validate(&optional, &json!({"n": "x"}))[0].kind, "int_type");
    }

    #[test]
    fn one_of_consts_is_an_enum() {
        let schema = json!({"oneOf": [{"const": "up", "description": "Up."}, {"const": "down"}]});
        assert!(validate(&schema, &json!("down")).is_empty());
        let issue = &validate(&schema, &json!("sideways"))[0];
        assert_eq!(
            (issue.kind.as_str(), issue.msg.as_str()),
            ("enum", "Input should be 'up' or 'down'")
        );
    }
}

//! Parse a JSON object without building a tree.
//!
//! Every `/ws` frame and `/mcp` request is a JSON object whose payload (`data`, `params`) is
//! passed on to an environment worker. Parsing it into [`RawObject`] keeps the payload's bytes
//! as they came ([`RawValue`]) and keeps key order, which pydantic-shaped errors report in.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// A JSON object's entries in input order, values unparsed.
#[derive(Debug, Default)]
pub struct RawObject<'a> {
    entries: Vec<(Cow<'a, str>, &'a RawValue)>,
}

/// Why a text is not a [`RawObject`].
#[derive(Debug)]
pub enum NotAnObject {
    /// The text is not JSON at all (syntax error or truncated input).
    Syntax(serde_json::Error),
    /// The text is JSON, but not an object (e.g. `[1,2]`, `null`, `"x"`).
    OtherValue(&'static str),
    /// The text nests deeper than the parser allows (128 levels). Python's decoder raises
    /// `RecursionError` here (at about 1,000 levels), which the reference does not treat as a
    /// JSON syntax error, so neither do we.
    TooDeep,
}

/// The deepest nesting accepted in a frame: about where Python's decoder gives up.
pub const MAX_DEPTH: usize = 1000;

/// Whether `text` nests arrays/objects deeper than `limit`. One pass over the bytes, skipping
/// strings; `serde_json` does not limit depth when it only captures raw values.
pub fn nesting_exceeds(text: &str, limit: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text.as_bytes() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Whether a `serde_json` error is its nesting limit.
pub fn is_too_deep(err: &serde_json::Error) -> bool {
    err.to_string().starts_with("recursion limit exceeded")
}

impl<'a> RawObject<'a> {
    /// Parses `text` as one JSON object.
    pub fn parse(text: &'a str) -> Result<Self, NotAnObject> {
        if nesting_exceeds(text, MAX_DEPTH) {
            return Err(NotAnObject::TooDeep);
        }
        // First make sure it is JSON, then look at the first significant byte, so that a
        // syntax error is never mistaken for "valid JSON of another type".
        let raw: &'a RawValue = serde_json::from_str(text).map_err(|e| {
            if is_too_deep(&e) {
                NotAnObject::TooDeep
            } else {
                NotAnObject::Syntax(e)
            }
        })?;
        match raw.get().as_bytes().first() {
            Some(b'{') => {}
            Some(b'[') => return Err(NotAnObject::OtherValue("list")),
            Some(b'"') => return Err(NotAnObject::OtherValue("str")),
            Some(b'n') => return Err(NotAnObject::OtherValue("NoneType")),
            Some(b't' | b'f') => return Err(NotAnObject::OtherValue("bool")),
            _ => {
                let kind = if raw.get().contains(['.', 'e', 'E']) {
                    "float"
                } else {
                    "int"
                };
                return Err(NotAnObject::OtherValue(kind));
            }
        }
        let mut de = serde_json::Deserializer::from_str(raw.get());
        let entries = de.deserialize_map(EntriesVisitor).map_err(|e| {
            if is_too_deep(&e) {
                NotAnObject::TooDeep
            } else {
                NotAnObject::Syntax(e)
            }
        })?;
        Ok(Self { entries })
    }

    /// The value of `key` (the last one, if the key repeats, as Python's `json` does).
    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| *v)
    }

    /// All entries in input order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &'a RawValue)> {
        self.entries.iter().map(|(k, v)| (k.as_ref(), *v))
    }

    /// Keys not in `allowed`, in input order (for `extra_forbidden` issues).
    pub fn extra_keys<'s>(
        &'s self,
        allowed: &'s [&str],
    ) -> impl Iterator<Item = (&'s str, &'a RawValue)> + 's {
        self.entries().filter(|(k, _)| !allowed.contains(k))
    }

    /// The object as a `serde_json::Value`, for error reports that echo the input.
    pub fn to_value(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for (k, v) in self.entries() {
            map.insert(k.to_owned(), raw_to_value(v));
        }
        serde_json::Value::Object(map)
    }
}

/// Parses a raw value into a tree; only used on error paths, where the input is echoed.
pub fn raw_to_value(raw: &RawValue) -> serde_json::Value {
    parse_deep(raw.get()).unwrap_or(serde_json::Value::Null)
}

/// Parses untrusted JSON nested up to [`MAX_DEPTH`] levels, like Python's decoder, instead of
/// `serde_json`'s default 128. Deeper input is refused before parsing, which bounds the
/// recursion (and so the stack) the parser may use.
pub fn parse_deep<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, DeepParseError> {
    if nesting_exceeds(text, MAX_DEPTH) {
        return Err(DeepParseError::TooDeep);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    de.disable_recursion_limit();
    let value = T::deserialize(&mut de).map_err(DeepParseError::Json)?;
    de.end().map_err(DeepParseError::Json)?;
    Ok(value)
}

/// Why [`parse_deep`] failed.
#[derive(Debug)]
pub enum DeepParseError {
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// Not valid JSON for the target type.
    Json(serde_json::Error),
}

impl std::fmt::Display for DeepParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeepParseError::TooDeep => write!(f, "nested deeper than {MAX_DEPTH} levels"),
            DeepParseError::Json(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for DeepParseError {}

/// True if the raw value is a JSON object.
pub fn is_object(raw: &RawValue) -> bool {
    raw.get().as_bytes().first() == Some(&b'{')
}

/// True if the raw value is JSON `null`.
pub fn is_null(raw: &RawValue) -> bool {
    raw.get() == "null"
}

struct EntriesVisitor;

impl<'de> Visitor<'de> for EntriesVisitor {
    type Value = Vec<(Cow<'de, str>, &'de RawValue)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(4));
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let value: &'de RawValue = map.next_value()?;
            entries.push((key, value));
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_raw_bytes() {
        let obj = RawObject::parse(r#"{"type": "step", "data": {"a" : 1}, "x\"y": 2}"#).unwrap();
        let keys: Vec<_> = obj.entries().map(|(k, _)| k.to_owned()).collect();
        assert_eq!(keys, ["type", "data", "x\"y"]);
        assert_eq!(obj.get("data").unwrap().get(), r#"{"a" : 1}"#);
    }

    #[test]
    fn measures_nesting_outside_strings() {
        assert!(!nesting_exceeds(r#"{"a":[[1]]}"#, 3));
        assert!(nesting_exceeds(r#"{"a":[[[1]]]}"#, 3));
        assert!(!nesting_exceeds(r#"{"a":"[[[[\"[[["}"#, 1));
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(2000), "]".repeat(2000));
        assert!(matches!(RawObject::parse(&deep), Err(NotAnObject::TooDeep)));
    }

    #[test]
    fn tells_syntax_errors_from_other_values() {
        assert!(matches!(
            RawObject::parse("{oops"),
            Err(NotAnObject::Syntax(_))
        ));
        assert!(matches!(
            RawObject::parse("[1,2]"),
            Err(NotAnObject::OtherValue("list"))
        ));
        assert!(matches!(
            RawObject::parse(" null "),
            Err(NotAnObject::OtherValue("NoneType"))
        ));
        assert!(matches!(
            RawObject::parse("1.5"),
            Err(NotAnObject::OtherValue("float"))
        ));
    }
}

//! The observation envelope: what reset and step return.
//!
//! Environments produce `{"observation":{…},"reward":…,"done":…,"metadata":{…}}` once (see
//! [`ObservationReply`]); the server renders it per transport, as openenv 0.10.0 does:
//! - `/ws`: `{"observation","reward","done"}` plus `"metadata"` only when it is non-empty;
//!   an integer reward stays an integer.
//! - HTTP: `metadata` always present (`null` when empty) and `reward` coerced to a float,
//!   because FastAPI serializes `Optional[float]`.
//!
//! The observation itself is passed through as bytes.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::pyjson::py_float_repr;

/// An environment's answer to reset or step, with every part still serialized.
#[derive(Debug, Deserialize)]
pub struct ObservationReply<'a> {
    /// The observation object (including its own `metadata` key, first).
    #[serde(borrow)]
    pub observation: &'a RawValue,
    /// A number or `null`.
    #[serde(borrow)]
    pub reward: &'a RawValue,
    /// Whether the episode ended.
    pub done: bool,
    /// The observation's metadata object (duplicated at the top level of the envelope).
    #[serde(borrow, default)]
    pub metadata: Option<&'a RawValue>,
}

impl ObservationReply<'_> {
    fn metadata_if_non_empty(&self) -> Option<&str> {
        self.metadata
            .map(RawValue::get)
            .filter(|m| !is_empty_object(m) && *m != "null")
    }

    /// The envelope as `/ws` sends it in `data`.
    pub fn render_ws(&self) -> String {
        let mut out = String::with_capacity(self.observation.get().len() + 64);
        out.push_str(r#"{"observation":"#);
        out.push_str(self.observation.get());
        out.push_str(r#","reward":"#);
        out.push_str(self.reward.get());
        out.push_str(r#","done":"#);
        out.push_str(if self.done { "true" } else { "false" });
        if let Some(m) = self.metadata_if_non_empty() {
            out.push_str(r#","metadata":"#);
            out.push_str(m);
        }
        out.push('}');
        out
    }

    /// The envelope as HTTP `/reset` and `/step` send it.
    pub fn render_http(&self) -> String {
        let mut out = String::with_capacity(self.observation.get().len() + 64);
        out.push_str(r#"{"observation":"#);
        out.push_str(self.observation.get());
        out.push_str(r#","reward":"#);
        out.push_str(&reward_as_float(self.reward.get()));
        out.push_str(r#","done":"#);
        out.push_str(if self.done { "true" } else { "false" });
        out.push_str(r#","metadata":"#);
        out.push_str(self.metadata_if_non_empty().unwrap_or("null"));
        out.push('}');
        out
    }
}

fn is_empty_object(text: &str) -> bool {
    let t = text.trim();
    t.starts_with('{') && t.ends_with('}') && t[1..t.len() - 1].trim().is_empty()
}

/// `Optional[float]` serialization of a JSON reward: `1` → `1.0`, `true` → `1.0`.
fn reward_as_float(raw: &str) -> String {
    match raw {
        "null" => "null".to_owned(),
        "true" => "1.0".to_owned(),
        "false" => "0.0".to_owned(),
        number => match number.parse::<f64>() {
            Ok(f) if f.is_finite() => py_float_repr(f),
            _ => "null".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESET: &str = r#"{"observation":{"metadata":{"status":"ready","message":"Echo environment ready!"}},"reward":0.0,"done":false,"metadata":{"status":"ready","message":"Echo environment ready!"}}"#;

    #[test]
    fn ws_keeps_non_empty_metadata_and_raw_reward() {
        let r: ObservationReply<'_> = serde_json::from_str(RESET).unwrap();
        assert_eq!(r.render_ws(), RESET);
        let step = r#"{"observation":{"metadata":{},"x":1},"reward":1,"done":false,"metadata":{}}"#;
        let r: ObservationReply<'_> = serde_json::from_str(step).unwrap();
        assert_eq!(
            r.render_ws(),
            r#"{"observation":{"metadata":{},"x":1},"reward":1,"done":false}"#
        );
    }

    #[test]
    fn http_always_has_metadata_and_float_reward() {
        let step = r#"{"observation":{"metadata":{}},"reward":1,"done":true,"metadata":{}}"#;
        let r: ObservationReply<'_> = serde_json::from_str(step).unwrap();
        assert_eq!(
            r.render_http(),
            r#"{"observation":{"metadata":{}},"reward":1.0,"done":true,"metadata":null}"#
        );
        let r: ObservationReply<'_> = serde_json::from_str(RESET).unwrap();
        assert!(r.render_http().ends_with(r#""reward":0.0,"done":false,"metadata":{"status":"ready","message":"Echo environment ready!"}}"#));
    }
}

//! Python's words for JSON values and JSON syntax errors.
//!
//! Reference error messages embed Python's `json` decoder messages and Python `repr`s
//! (`Invalid JSON: Expecting value: line 1 column 1 (char 0)`). Matching them keeps error
//! texts identical for the common cases, so logs and tests read the same against either server.

use serde_json::Value;
use serde_json::error::Category;

/// A JSON syntax error described as Python's `json.JSONDecodeError` would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PyJsonError {
    /// The message without position, e.g. `Expecting value`.
    pub msg: &'static str,
    /// Character (code point) offset of the error in the document.
    pub pos: usize,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
}

impl PyJsonError {
    /// Translates a `serde_json` error on `text` into Python's terms.
    pub fn from_serde(err: &serde_json::Error, text: &str) -> Self {
        let s = err.to_string();
        let msg = if s.starts_with("key must be a string") {
            "Expecting property name enclosed in double quotes"
        } else if s.starts_with("expected `:`") {
            "Expecting ':' delimiter"
        } else if s.starts_with("expected `,` or") || s.starts_with("EOF while parsing a list") {
            "Expecting ',' delimiter"
        } else if s.starts_with("EOF while parsing an object") {
            if text.trim_end().ends_with('{') || text.trim_end().ends_with(',') {
                "Expecting property name enclosed in double quotes"
            } else {
                "Expecting ',' delimiter"
            }
        } else if s.starts_with("trailing characters") {
            "Extra data"
        } else if s.starts_with("EOF while parsing a string") {
            "Unterminated string starting at"
        } else if s.starts_with("control character") {
            "Invalid control character at"
        } else if s.starts_with("invalid escape") || s.starts_with("invalid unicode") {
            "Invalid \\escape"
        } else if s.starts_with("recursion limit exceeded") {
            "Nesting too deep"
        } else {
            "Expecting value"
        };
        let (line, col0) = if err.classify() == Category::Eof {
            end_position(text)
        } else {
            (err.line().max(1), err.column().saturating_sub(1))
        };
        let pos = char_offset(text, line, col0);
        let line_start = char_offset(text, line, 0);
        Self {
            msg,
            pos,
            line,
            col: pos - line_start + 1,
        }
    }
}

impl std::fmt::Display for PyJsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: line {} column {} (char {})",
            self.msg, self.line, self.col, self.pos
        )
    }
}

fn end_position(text: &str) -> (usize, usize) {
    let line = text.matches('\n').count() + 1;
    let col = text.rsplit('\n').next().map_or(0, str::len);
    (line, col)
}

/// Character offset of the byte column `col0` (0-based) on 1-based `line`.
fn char_offset(text: &str, line: usize, col0: usize) -> usize {
    let mut chars_before = 0;
    for (i, l) in text.split('\n').enumerate() {
        if i + 1 == line {
            let upto = floor_char_boundary(l, col0.min(l.len()));
            return chars_before + l[..upto].chars().count();
        }
        chars_before += l.chars().count() + 1;
    }
    text.chars().count()
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Python's `type(x).__name__` for the value `json.loads` would make.
pub fn py_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Python's `repr(x)` for the value `json.loads` would make.
pub fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => py_float_repr(f),
            _ => n.to_string(),
        },
        Value::String(s) => py_str_repr(s),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(py_repr).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", py_str_repr(k), py_repr(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

/// Python's `repr(float)`: shortest round-trip digits, `.0` for integral values, `inf`/`nan`.
pub fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
        // Python switches to exponent notation here and writes `1e+16`, `1e-05`.
        let s = format!("{f:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    let s = format!("{f}");
    if s.contains('.') { s } else { format!("{s}.0") }
}

fn py_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn py_err(text: &str) -> String {
        let err = serde_json::from_str::<Value>(text).unwrap_err();
        PyJsonError::from_serde(&err, text).to_string()
    }

    #[test]
    fn matches_python_messages_for_common_mistakes() {
        assert_eq!(
            py_err("{not json"),
            "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
        );
        assert_eq!(py_err("x"), "Expecting value: line 1 column 1 (char 0)");
        assert_eq!(
            py_err("{\"a\" 1}"),
            "Expecting ':' delimiter: line 1 column 6 (char 5)"
        );
        assert_eq!(py_err("{} x"), "Extra data: line 1 column 4 (char 3)");
    }

    #[test]
    fn repr_like_python() {
        assert_eq!(
            py_repr(&json!({"a": [1, 2.5, null, true], "b": "it's"})),
            r#"{'a': [1, 2.5, None, True], 'b': "it's"}"#
        );
        assert_eq!(py_float_repr(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(py_float_repr(1.0), "1.0");
        assert_eq!(py_float_repr(1e16), "1e+16");
        assert_eq!(py_float_repr(1e-5), "1e-05");
    }
}

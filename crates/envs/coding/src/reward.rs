//! Rewards, exactly as the reference's `CodeSafetyTransform` then `CodeQualityTransform`.
//!
//! * **Safety**: if the code matches any of `import\s+os`, `import\s+subprocess`, `eval\(`,
//!   `exec\(`, `__import__`, `open\(` (Python `re.search`), the reward is −1.0, else 0.0.
//! * **Quality**: `q = 0.0`; `q += 0.1` if `len(code.strip()) <= 100` (Python `str.strip()`
//!   whitespace, length in code points); `q += -0.2` if `ast.parse(code)` fails.
//! * The step reward is `safety + q`, in that order of float operations, so the values are
//!   bit-identical to Python's: `0.1`, `-0.9`, `-0.1` (`0.1 + -0.2`), `-1.1`
//!   (`-1.0 + -0.1`), `0.0`, `-1.0`, `-0.2`, `-1.2`.
//! * A reset's reward is 0.0. Rewards never depend on the execution's outcome.
//!
//! The patterns are matched here in Rust rather than in the session's interpreter, because
//! earlier steps' code could patch that interpreter's `re`/`ast` and choose its own reward.

/// The reference's `CodeSafetyTransform` penalty.
pub const UNSAFE_PENALTY: f64 = -1.0;
/// The reference's concise-code bonus.
pub const CONCISE_BONUS: f64 = 0.1;
/// The reference's length threshold (code points after `strip()`).
pub const CONCISE_MAX_CHARS: usize = 100;
/// The reference's penalty for code that does not parse.
pub const SYNTAX_PENALTY: f64 = -0.2;
/// Reward of a reset.
pub const RESET_REWARD: f64 = 0.0;

/// Python's `str.isspace()` (and so `str.strip()` and `re`'s `\s` on `str`): Unicode
/// `White_Space` plus U+001C..U+001F, which Python also counts.
pub fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `re.search(r"import\s+<module>", code)`.
fn imports(code: &str, module: &str) -> bool {
    code.match_indices("import").any(|(at, word)| {
        let rest = &code[at + word.len()..];
        let after = rest.trim_start_matches(py_isspace);
        after.len() < rest.len() && after.starts_with(module)
    })
}

/// Whether the code matches one of the reference's "dangerous" patterns. These are text
/// patterns, not a security boundary (the sandbox is); they only shape the reward.
pub fn is_flagged_unsafe(code: &str) -> bool {
    imports(code, "os")
        || imports(code, "subprocess")
        || ["eval(", "exec(", "__import__", "open("]
            .iter()
            .any(|p| code.contains(p))
}

/// The step reward for `code`, given whether it parses (see [`crate::SyntaxChecker`]).
pub fn step_reward(code: &str, parses: bool) -> f64 {
    let safety = if is_flagged_unsafe(code) {
        UNSAFE_PENALTY
    } else {
        0.0
    };
    let mut quality = 0.0;
    if code.trim_matches(py_isspace).chars().count() <= CONCISE_MAX_CHARS {
        quality += CONCISE_BONUS;
    }
    if !parses {
        quality += SYNTAX_PENALTY;
    }
    safety + quality
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_values() {
        assert_eq!(step_reward("print('hello')", true), 0.1);
        assert_eq!(step_reward("import os\nos.getcwd()", true), -0.9);
        assert_eq!(step_reward("open('x')", true), -0.9);
        assert_eq!(step_reward("def f(:", false), -0.1);
        let long = format!("# {}\nprint(1)", "c".repeat(120));
        assert_eq!(step_reward(&long, true), 0.0);
        assert_eq!(step_reward("eval(", false), -1.1);
        assert_eq!(format!("{:?}", step_reward("def f(:", false)), "-0.1");
        assert_eq!(format!("{:?}", step_reward("import  os", true)), "-0.9");
    }

    #[test]
    fn patterns() {
        assert!(is_flagged_unsafe("import\t\nos"));
        assert!(is_flagged_unsafe("import\u{1c}os"));
        assert!(is_flagged_unsafe("from x import  osmosis"));
        assert!(!is_flagged_unsafe("importos"));
        assert!(!is_flagged_unsafe("import sys"));
        assert!(is_flagged_unsafe("x.__import__"));
    }
}

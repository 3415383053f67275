//! Output mapping, persistence, reset, rewards and bad input, against real Python.

mod common;

use std::time::Duration;

use coding_env::reward::{py_isspace, step_reward};
use coding_env::{EngineError, PythonSession, SyntaxChecker};

// A helper, not a #[test], so clippy's test allowance does not cover it.
#[allow(clippy::expect_used)]
fn run(s: &mut PythonSession, code: &str) -> coding_env::StepOutput {
    s.step(code, None).expect("step")
}

#[test]
fn reference_output_examples() {
    let mut s = common::session();
    let cases = [
        ("print('hello')", "hello\n"),
        ("1 + 1", "2"),
        ("z = 1", "1"),
        ("y = {'a': [1, 2]}\ny", "{\"a\": [1, 2]}"),
        ("print('a')\nprint('b')\n42", "a\nb\n\n42"),
        ("None", ""),
        ("x = None", ""),
        ("'s'", "\"s\""),
        ("{1, 2}", "{1, 2}"), // not JSON: repr
        ("a = b = [3]", "[3]"),
        ("a += [4]", "[3, 4]"),
        ("c: int = 5", "5"),
        ("for i in range(2):\n    print(i)", "0\n1\n"),
        ("def f():\n    return 1", ""),
    ];
    for (code, want) in cases {
        let out = run(&mut s, code);
        assert_eq!(out.stdout, want, "code {code:?}: {out:?}");
        assert_eq!(out.stderr, "", "code {code:?}");
        assert_eq!(out.exit_code, 0, "code {code:?}");
    }
    // `a = b = expr` evaluates expr once.
    let out = run(
        &mut s,
        "k = 0\ndef g():\n    global k\n    k += 1\n    return k\nu = w = g()\nk",
    );
    assert_eq!(out.stdout, "1");
}

#[test]
fn exceptions_discard_stdout_and_give_traceback() {
    let mut s = common::session();
    let out = run(&mut s, "print('before')\n1/0");
    assert_eq!(out.stdout, "");
    assert_eq!(out.exit_code, 1);
    assert!(
        out.stderr.starts_with("Traceback (most recent call last):"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("ZeroDivisionError: division by zero"),
        "{out:?}"
    );
    assert!(out.stderr.contains("line 2"), "{out:?}");
    assert!(
        !out.stderr.contains("_execute"),
        "driver frames leak: {out:?}"
    );

    let out = run(&mut s, "def f(:");
    assert_eq!(out.exit_code, 1);
    assert!(out.stderr.contains("SyntaxError"), "{out:?}");

    let out = run(&mut s, "import sys\nsys.exit(3)");
    assert_eq!(out.exit_code, 3);
    assert_eq!(run(&mut s, "sys.exit()").exit_code, 0);
    assert_eq!(run(&mut s, "sys.exit(2**80)").exit_code, 1);
    assert_eq!(run(&mut s, "sys.exit('bye')").stderr, "bye\n");
    // The session survives all of it.
    assert_eq!(run(&mut s, "40 + 2").stdout, "42");
}

#[test]
fn stderr_and_subprocess_output_are_captured() {
    let mut s = common::session();
    let out = run(
        &mut s,
        "import sys\nprint('to err', file=sys.stderr)\nprint('to out')",
    );
    assert_eq!(out.stdout, "to out\n");
    assert_eq!(out.stderr, "to err\n");
    let out = run(
        &mut s,
        "import os, subprocess\nprint('a')\nsubprocess.run(['echo', 'b'])\nos.write(1, b'c\\n')\nos.system('echo d >&2')\nNone",
    );
    assert_eq!(out.stdout, "a\nb\nc\n");
    assert_eq!(out.stderr, "d\n");
    // Replacing or closing sys.stdout does not break the next step.
    run(&mut s, "import io\nsys.stdout = io.StringIO()");
    assert_eq!(run(&mut s, "print('back')").stdout, "back\n");
    run(&mut s, "sys.stdout.close()");
    assert_eq!(run(&mut s, "print('again')").stdout, "again\n");
}

#[test]
fn invalid_utf8_and_surrogates_are_replaced() {
    let mut s = common::session();
    let out = run(
        &mut s,
        "import sys\nsys.stdout.buffer.write(b'\\xff\\xfeok')\nNone",
    );
    assert_eq!(out.stdout, "\u{fffd}\u{fffd}ok");
    let out = run(&mut s, "print('\\udc80x')");
    assert_eq!(out.exit_code, 0, "{out:?}");
    assert!(out.stdout.contains('x'), "{out:?}");
    let out = run(&mut s, "'\\udc80'");
    assert_eq!(out.stdout, "\"\\udc80\"");
    let out = run(&mut s, "print('h\\u00e9llo \\u2603')");
    assert_eq!(out.stdout, "h\u{e9}llo \u{2603}\n");
}

#[test]
fn state_persists_and_reset_starts_fresh() {
    let mut s = common::session();
    run(&mut s, "x = 41\nimport math");
    assert_eq!(run(&mut s, "print(x + 1)").stdout, "42\n");
    assert_eq!(run(&mut s, "math.floor(2.5)").stdout, "2");
    run(&mut s, "open('note.txt', 'w').write('kept')");
    assert_eq!(run(&mut s, "open('note.txt').read()").stdout, "\"kept\"");
    let old_dir = s.scratch_dir().expect("dir").to_path_buf();
    // Reset = drop the session, start another: new namespace, new directory.
    drop(s);
    assert!(!old_dir.exists(), "scratch dir not removed");
    let mut s = common::session();
    let out = run(&mut s, "x");
    assert_eq!(out.exit_code, 1);
    assert!(out.stderr.contains("NameError"), "{out:?}");
    assert_eq!(
        run(&mut s, "import os\nos.path.exists('note.txt')").stdout,
        "false"
    );
}

#[test]
fn scratch_dir_is_cwd_home_and_tmp() {
    let mut s = common::session();
    let dir = s.scratch_dir().expect("dir").to_string_lossy().into_owned();
    let out = run(
        &mut s,
        "import os, tempfile\n[os.getcwd(), os.environ['HOME'], tempfile.gettempdir()]",
    );
    assert_eq!(out.stdout, format!("[\"{dir}\", \"{dir}\", \"{dir}\"]"));
    // A module written to the scratch directory can be imported.
    run(&mut s, "open('mymod.py', 'w').write('V = 7\\n')");
    assert_eq!(run(&mut s, "import mymod\nmymod.V").stdout, "7");
    // Removed even if the code made it hard.
    run(
        &mut s,
        "os.makedirs('ro/sub')\nopen('ro/sub/f', 'w').write('x')\nos.chmod('ro/sub', 0)\nos.chmod('ro', 0o500)",
    );
    let path = std::path::PathBuf::from(&dir);
    s.close();
    assert!(!path.exists(), "scratch dir survived close");
}

#[test]
fn rewards_match_reference() {
    let checker = SyntaxChecker::new(common::config());
    let reward = |code: &str| step_reward(code, checker.parses(code).expect("checker"));
    assert_eq!(reward("print('hello')"), 0.1);
    assert_eq!(reward("import os\nprint(os.getcwd())"), -0.9);
    assert_eq!(reward("open('/etc/passwd').read()"), -0.9);
    assert_eq!(reward("def f(:"), -0.1);
    assert_eq!(reward(&format!("# {}\nprint(1)", "c".repeat(120))), 0.0);
    assert_eq!(reward("1/0"), 0.1);
    assert_eq!(reward("eval("), -1.1);
    assert_eq!(reward(&format!("x = (\n{}", "1 +\n".repeat(60))), -0.2);
    assert_eq!(reward("a\0b"), -0.1);
    assert_eq!(reward(&"(".repeat(100_000)), -0.2);
    // Exactly what Python computes, bit for bit and as printed.
    let out = std::process::Command::new(&common::python().executable)
        .args([
            "-c",
            "print(repr(-1.0 + (0.1 + -0.2)), repr(0.0 + (0.1 + -0.2)), repr(-1.0 + 0.1))",
        ])
        .output()
        .expect("python");
    let py = String::from_utf8_lossy(&out.stdout);
    let ours = format!(
        "{:?} {:?} {:?}",
        step_reward("eval(", false),
        step_reward("(", false),
        step_reward("eval()", true)
    );
    assert_eq!(py.trim(), ours);
}

#[test]
fn reward_patterns_and_strip_match_python() {
    // Python's own answers for a set of tricky inputs.
    let cases = [
        "import os",
        "import\u{1c}os",
        "import\u{a0}subprocess",
        "import\u{200b}os",
        "importos",
        "x=1 #import  os",
        "eval (1)",
        "exec(1)",
        "__import__('x')",
        "open (1)",
        "fopen(1)",
        "\u{85}\u{3000}x\u{1f}",
        " \u{200b} ",
    ];
    let script = "import re, sys, json\n\
        pats = [r'import\\s+os', r'import\\s+subprocess', r'eval\\(', r'exec\\(', r'__import__', r'open\\(']\n\
        for code in json.load(sys.stdin):\n    print(any(re.search(p, code) for p in pats), len(code.strip()))";
    let mut child = std::process::Command::new(&common::python().executable)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&cases).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    for (code, line) in cases.iter().zip(&lines) {
        let ours = format!(
            "{} {}",
            if coding_env::reward::is_flagged_unsafe(code) {
                "True"
            } else {
                "False"
            },
            code.trim_matches(py_isspace).chars().count()
        );
        assert_eq!(&ours, line, "code {code:?}");
    }
    // And str.isspace over every code point.
    let out = std::process::Command::new(&common::python().executable)
        .args([
            "-c",
            "print(','.join(str(c) for c in range(0x110000) if chr(c).isspace()))",
        ])
        .output()
        .unwrap();
    let py: Vec<u32> = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .split(',')
        .map(|s| s.parse().unwrap())
        .collect();
    let ours: Vec<u32> = (0..0x110000u32)
        .filter_map(char::from_u32)
        .filter(|c| py_isspace(*c))
        .map(u32::from)
        .collect();
    assert_eq!(py, ours);
}

#[test]
fn bad_input_is_an_error_or_an_output_never_a_crash() {
    let cfg = common::config_with(|c| c.max_code_bytes = 1000);
    let mut s = PythonSession::start(cfg).expect("start");
    match s.step(&"x".repeat(1001), None) {
        Err(EngineError::CodeTooLarge {
            len: 1001,
            limit: 1000,
        }) => {}
        other => panic!("unexpected {other:?}"),
    }
    let out = run(&mut s, "a\0b");
    assert_eq!(out.exit_code, 1);
    assert!(out.stderr.contains("null bytes"), "{out:?}");
    assert_eq!(run(&mut s, "'ok'").stdout, "\"ok\"");
    let out = run(&mut s, "\u{feff}1");
    assert_eq!(out.exit_code, 1, "{out:?}");
    assert_eq!(run(&mut s, "'\\x00'").stdout, "\"\\u0000\"");
    // The driver itself can be broken by the code; that loses state, not the session.
    let out = s
        .step("import os\nos._exit(0)", Some(Duration::from_secs(5)))
        .unwrap();
    assert!(out.state_lost && out.exit_code == 1, "{out:?}");
    assert_eq!(run(&mut s, "1").stdout, "1");
    // The driver keeps its own references: patching modules does not break it.
    assert_eq!(run(&mut s, "import json\njson.dumps = None\n1").stdout, "1");
    assert_eq!(run(&mut s, "2").stdout, "2");
}

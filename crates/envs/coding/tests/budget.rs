//! The process budget under many sessions. In its own test binary, so no fork bomb from the
//! other tests runs at the same time (the budget is relative to the uid's task count).
//!
//! Re-basing the budget uses `prlimit` on the interpreter, which needs the worker and the
//! interpreter to share a uid, as in production. When the tests run as root, the worker is
//! therefore started as uid/gid 65534 (the uid the sandbox drops to).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

#[test]
fn process_budget_follows_other_sessions() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coding-env"));
    cmd.env("CODING_ENV_PYTHON", &common::python().executable)
        .env("TMPDIR", "/tmp")
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    if rustix::process::geteuid().is_root() {
        // std also drops supplementary groups when it changes the uid.
        cmd.uid(65534).gid(65534);
    }
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let mut id = 0u64;
    let mut call = move |op: &str, session: &str, data: Value| -> Value {
        id += 1;
        writeln!(
            stdin,
            "{}",
            json!({"id": id, "op": op, "session": session, "data": data})
        )
        .unwrap();
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap()
    };
    for session in ["first", "second", "third"] {
        assert_eq!(call("open", session, Value::Null)["ok"], json!({}));
    }
    let spawn_many = "import subprocess\nps = []\nfor _ in range(50):\n    ps.append(subprocess.Popen(['sleep', '30']))\nlen(ps)";
    let mut step = |session: &str, code: &str| -> Value {
        let reply = call("step", session, json!({"code": code}));
        assert!(reply["ok"].is_object(), "{reply}");
        reply["ok"]["observation"].clone()
    };
    // A session started first must still be able to create processes after other sessions
    // have used up their own budgets (RLIMIT_NPROC counts the whole uid).
    assert_eq!(step("first", "1")["stdout"], "1");
    for other in ["second", "third"] {
        let out = step(other, spawn_many);
        assert_eq!(out["stdout"], "50", "{out}");
    }
    let out = step("first", spawn_many);
    assert_eq!(out["stdout"], "50", "{out}");
    // Its own leftovers count against its own budget: it cannot accumulate across steps.
    let out = step("first", spawn_many);
    assert_eq!(out["exit_code"], 1, "{out}");
    assert!(
        out["stderr"]
            .as_str()
            .unwrap()
            .contains("Resource temporarily unavailable"),
        "{out}"
    );
    drop(call); // closes the worker's stdin: it exits
    assert!(child.wait().unwrap().success());
}

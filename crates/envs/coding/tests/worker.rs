//! The `coding-env` binary over the worker protocol (JSON lines on stdin/stdout), as the
//! server drives it: handshake, reset, step, state, rewards, validation, close.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

struct Worker {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
}

// Helpers, not #[test]s, so clippy's test allowance does not cover them.
#[allow(clippy::unwrap_used)]
impl Worker {
    fn start() -> (Self, Value) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_coding-env"))
            .env("CODING_ENV_PYTHON", &common::python().executable)
            .env("CODING_ENV_TEST_SECRET", "hunter2")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut hello = String::new();
        stdout.read_line(&mut hello).unwrap();
        let hello = serde_json::from_str(&hello).unwrap();
        (
            Self {
                child,
                stdin,
                stdout,
            },
            hello,
        )
    }

    fn call(&mut self, request: Value) -> Value {
        writeln!(self.stdin, "{request}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let reply: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(reply["id"], request["id"]);
        reply
    }

    fn step(&mut self, id: u64, code: &str) -> Value {
        let reply =
            self.call(json!({"id": id, "op": "step", "session": "s", "data": {"code": code}}));
        reply["ok"].clone()
    }
}

#[test]
fn worker_protocol_end_to_end() {
    let (mut w, hello) = Worker::start();
    assert_eq!(hello["env"]["name"], "coding_env");
    assert_eq!(hello["env"]["metadata"]["name"], "PythonCodeActEnv");
    assert_eq!(hello["env"]["schemas"]["action"]["title"], "CodeAction");
    assert_eq!(
        w.call(json!({"id": 1, "op": "open", "session": "s"}))["ok"],
        json!({})
    );
    let reset = w.call(json!({"id": 2, "op": "reset", "session": "s", "data": {}}));
    assert_eq!(reset["ok"]["reward"], json!(0.0));
    assert_eq!(reset["ok"]["observation"]["stdout"], "");

    let r = w.step(3, "print('hello')");
    assert_eq!(r["observation"]["stdout"], "hello\n");
    assert_eq!(r["observation"]["exit_code"], 0);
    assert_eq!(r["reward"], json!(0.1));
    assert_eq!(r["done"], false);

    let r = w.step(4, "x = 41");
    assert_eq!(r["observation"]["stdout"], "41");
    let r = w.step(
        5,
        "import os\nprint(x + 1, os.environ.get('CODING_ENV_TEST_SECRET'))",
    );
    assert_eq!(r["observation"]["stdout"], "42 None\n");
    assert_eq!(r["reward"], json!(-0.9));
    let r = w.step(6, "def f(:");
    assert_eq!(r["observation"]["exit_code"], 1);
    assert_eq!(r["reward"], json!(-0.1));

    let state = w.call(json!({"id": 7, "op": "state", "session": "s"}));
    assert_eq!(state["ok"]["step_count"], 4);
    assert_eq!(state["ok"]["last_exit_code"], 1);

    let bad =
        w.call(json!({"id": 8, "op": "step", "session": "s", "data": {"code": "1", "extra": 2}}));
    assert_eq!(bad["err"]["kind"], "validation", "{bad}");
    let bad = w.call(json!({"id": 9, "op": "step", "session": "s", "data": {"code": 5}}));
    assert_eq!(bad["err"]["kind"], "validation", "{bad}");

    // timeout_s shortens the step limit.
    let r = w.call(json!({"id": 10, "op": "step", "session": "s", "data": {"code": "while True: pass"}, "timeout_s": 1.0}));
    assert_eq!(r["ok"]["observation"]["exit_code"], 1);
    assert!(
        r["ok"]["observation"]["stderr"]
            .as_str()
            .unwrap()
            .contains("time limit")
    );

    // Absurd timeouts fall back to the configured limit instead of failing.
    for (id, t) in [(20, json!(1e300)), (21, json!(-1)), (22, json!(0))] {
        let r = w.call(json!({"id": id, "op": "step", "session": "s", "data": {"code": "'ok'"}, "timeout_s": t}));
        assert_eq!(r["ok"]["observation"]["stdout"], "\"ok\"", "{r}");
    }

    // Reset gives a fresh namespace.
    w.call(json!({"id": 11, "op": "reset", "session": "s", "data": {}}));
    let r = w.step(12, "x");
    assert!(
        r["observation"]["stderr"]
            .as_str()
            .unwrap()
            .contains("NameError")
    );
    assert_eq!(
        w.call(json!({"id": 13, "op": "close", "session": "s"}))["ok"],
        json!({})
    );

    // Stateless (HTTP-style) step: a fresh environment per request.
    let r = w.call(json!({"id": 14, "op": "step", "data": {"code": "1 + 1"}}));
    assert_eq!(r["ok"]["observation"]["stdout"], "2");

    drop(w.stdin);
    let status = w.child.wait().unwrap();
    assert!(status.success(), "{status}");
}

/// True once `pid` has exited (gone, or a zombie waiting to be reaped).
fn exited(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => true,
    }
}

#[test]
fn nothing_outlives_a_killed_worker() {
    let (mut w, _) = Worker::start();
    w.call(json!({"id": 1, "op": "open", "session": "s"}));
    w.call(json!({"id": 2, "op": "open", "session": "busy"}));
    let child = w.step(
        3,
        "import subprocess\nsubprocess.Popen(['sleep', '1000']).pid",
    );
    let child: i64 = child["observation"]["stdout"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let idle = w.step(4, "import os\nos.getpid()");
    let idle: i64 = idle["observation"]["stdout"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let busy = w.call(json!({"id": 5, "op": "step", "session": "busy", "data": {"code": "import os, subprocess\np = subprocess.Popen(['sleep', '1000'])\n[os.getpid(), p.pid]"}}));
    let pids: Vec<i64> =
        serde_json::from_str(busy["ok"]["observation"]["stdout"].as_str().unwrap()).unwrap();
    // Keep the busy session busy, then kill the worker without letting it clean up.
    writeln!(
        w.stdin,
        "{}",
        json!({"id": 6, "op": "step", "session": "busy", "data": {"code": "while True: pass"}})
    )
    .unwrap();
    w.stdin.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    w.child.kill().unwrap();
    w.child.wait().unwrap();
    let all = [child, idle, pids[0], pids[1]];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !all.iter().all(|p| exited(*p)) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    for pid in all {
        assert!(exited(pid), "process {pid} outlived the worker");
    }
}

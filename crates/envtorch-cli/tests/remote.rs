//! `envtorch health|metadata|schema|reset|step|state|session` against a real envtorch echo
//! server, and `envtorch run` against Docker (the `container_*` test).

// Helpers outside `#[test]` functions may unwrap and panic too: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ENVTORCH: &str = env!("CARGO_BIN_EXE_envtorch");

/// The debug binaries: `$ENVTORCH_BIN_DIR`, else this test's profile directory.
fn bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("ENVTORCH_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(ENVTORCH).parent().unwrap().to_path_buf());
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build -p envtorch-server -p echo-env` first",
        path.display()
    );
    path
}

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn echo_server() -> Server {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin("envtorch-server"))
        .arg("--env")
        .arg(bin("echo-env"))
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !envtorch(&["health", "--url", &server.url], None)
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

fn envtorch(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(ENVTORCH)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

fn json_lines(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "status {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn cli_one_shot_commands() {
    let server = echo_server();
    let url = server.url.as_str();
    assert_eq!(
        json_lines(&envtorch(&["health", "--url", url], None)),
        [json!({"status": "healthy"})]
    );
    let meta = json_lines(&envtorch(&["metadata", "--url", url], None));
    assert_eq!(meta[0]["name"], "EchoEnvironment");
    let schema = json_lines(&envtorch(&["schema", "--url", url], None));
    assert!(schema[0]["action"].is_object());

    let reset = json_lines(&envtorch(
        &["reset", "--url", url, "--seed", "1", "--episode-id", "e1"],
        None,
    ));
    assert_eq!(reset[0]["reward"], 0.0);
    assert_eq!(reset[0]["done"], false);

    // Two actions in one session (after a reset); one more read from stdin.
    let steps = json_lines(&envtorch(
        &[
            "step",
            "--url",
            url,
            r#"{"type":"call_tool","tool_name":"echo_message","arguments":{"message":"one"}}"#,
            "-",
        ],
        Some("{\"type\":\"list_tools\"}\n"),
    ));
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0]["observation"]["result"]["data"], "one");
    assert!(steps[1]["observation"]["tools"].is_array());

    let state = json_lines(&envtorch(&["state", "--url", url], None));
    assert_eq!(state[0]["step_count"], 0);

    // A server error: non-zero exit, the code on stderr.
    let out = envtorch(&["step", "--url", url, r#"{"message":"x"}"#], None);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("VALIDATION_ERROR"), "{stderr}");

    // Bad input is refused before connecting.
    let out = envtorch(&["step", "--url", url, "not json"], None);
    assert!(!out.status.success());

    // No server.
    let out = envtorch(&["health", "--url", "http://127.0.0.1:1"], None);
    assert!(!out.status.success());
}

#[test]
fn cli_session_reads_commands_from_stdin() {
    let server = echo_server();
    let input = r#"
# comments and blank lines are skipped
reset {"episode_id": "cli-ep", "seed": 5}
step {"type": "call_tool", "tool_name": "echo_with_length", "arguments": {"message": "abc"}}
{"type": "call_tool", "tool_name": "echo_message", "arguments": {"message": "bare"}}
{"message": "invalid"}
frobnicate
state
close
"#;
    let lines = json_lines(&envtorch(&["session", "--url", &server.url], Some(input)));
    assert_eq!(lines.len(), 6, "{lines:#?}");
    assert_eq!(lines[0]["reward"], 0.0);
    assert_eq!(
        lines[1]["observation"]["result"]["data"],
        json!({"message": "abc", "length": 3})
    );
    assert_eq!(lines[2]["observation"]["result"]["data"], "bare");
    assert_eq!(lines[3]["error"]["code"], "VALIDATION_ERROR");
    assert_eq!(lines[4]["error"]["code"], "USAGE");
    assert_eq!(lines[5], json!({"episode_id": "cli-ep", "step_count": 2}));
}

#[test]
fn container_cli_run_with_a_session() {
    // The image comes from the test-image builder (built here if needed).
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let docker = runtime.block_on(async {
        let docker = envtorch_docker::DockerProvider::connect().await.unwrap();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let inputs = envtorch_docker::test_images::BuildInputs::from_repo(&repo).unwrap();
        envtorch_docker::test_images::build_all(docker.docker(), &inputs)
            .await
            .unwrap();
        docker
    });
    let name = format!("envtorch-cli-run-{}", std::process::id());
    let out = envtorch(
        &[
            "run",
            envtorch_docker::test_images::ECHO_TAG,
            "-e",
            "MAX_CONCURRENT_ENVS=1",
            "--name",
            &name,
            "--session",
        ],
        Some("reset {\"episode_id\": \"in-docker\"}\nstep {\"type\": \"list_tools\"}\nstate\n"),
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(lines[1]["observation"]["tools"].is_array());
    assert_eq!(
        lines[2],
        json!({"episode_id": "in-docker", "step_count": 1})
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&name), "{stderr}");
    // The container is gone.
    let left = runtime
        .block_on(docker.list_labelled(envtorch_docker::MANAGED_LABEL))
        .unwrap();
    for id in left {
        let info = runtime
            .block_on(docker.docker().inspect_container(&id, None))
            .ok();
        let left_name = info.and_then(|i| i.name).unwrap_or_default();
        assert_ne!(left_name.trim_start_matches('/'), name, "left behind");
    }

    // A missing image is a clear error.
    let out = envtorch(&["run", "envtorch-no-such-image:test"], None);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not found locally"), "{stderr}");

    // DOCKER_HOST is honoured: pointing it nowhere gives an unreachable-daemon error.
    let out = Command::new(ENVTORCH)
        .args(["run", envtorch_docker::test_images::ECHO_TAG])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unreachable"), "{stderr}");
    assert!(stderr.contains("/nonexistent/docker.sock"), "{stderr}");
}

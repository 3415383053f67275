//! `envtorch new` end to end: create an environment in a scratch workspace, build and test it
//! with cargo, serve it with `envtorch-server`, and play it over a real WebSocket.
//!
//! The scratch workspace has this workspace's settings (package keys, lints, dependency
//! versions, Cargo.lock) with `crates/envs/*` as its only member glob and the project crates
//! as absolute path dependencies, so the build shares this workspace's target directory and
//! its compiled dependencies: only the new crate is compiled.

// Helpers outside `#[test]` functions may unwrap and panic too: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const NAME: &str = "new-smoke";
const PACKAGE: &str = "new-smoke-env";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_owned()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_absolute() {
                p
            } else {
                repo_root().join(p)
            }
        })
        .unwrap_or_else(|| repo_root().join("target"))
}

/// Where cargo puts debug binaries (under the target triple when one is forced).
fn debug_bin_dir() -> PathBuf {
    match std::env::var("CARGO_BUILD_TARGET") {
        Ok(triple) if !triple.is_empty() => target_dir().join(triple).join("debug"),
        _ => target_dir().join("debug"),
    }
}

fn cargo(dir: &Path, args: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(&cargo)
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir())
        .status()
        .unwrap_or_else(|e| panic!("{cargo} {args:?}: {e}"));
    assert!(
        status.success(),
        "cargo {args:?} in {} failed",
        dir.display()
    );
}

/// A workspace in `dir` with this workspace's settings, `crates/envs/*` as members, the
/// project crates as absolute path dependencies, and a copy of `nix/envs.nix`.
fn scratch_workspace(dir: &Path) {
    let root = repo_root();
    let text = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let mut manifest: toml::Table = text.parse().unwrap();
    let workspace = manifest
        .get_mut("workspace")
        .and_then(toml::Value::as_table_mut)
        .unwrap();
    workspace.insert(
        "members".into(),
        toml::Value::Array(vec!["crates/envs/*".into()]),
    );
    workspace.remove("exclude");
    if let Some(deps) = workspace
        .get_mut("dependencies")
        .and_then(toml::Value::as_table_mut)
    {
        for (_, spec) in deps.iter_mut() {
            if let Some(path) = spec.get_mut("path") {
                let absolute = root.join(path.as_str().unwrap());
                *path = absolute.to_str().unwrap().into();
            }
        }
    }
    std::fs::write(dir.join("Cargo.toml"), toml::to_string(&manifest).unwrap()).unwrap();
    for file in ["Cargo.lock", "rustfmt.toml", "clippy.toml"] {
        if root.join(file).is_file() {
            std::fs::copy(root.join(file), dir.join(file)).unwrap();
        }
    }
    std::fs::create_dir_all(dir.join("nix")).unwrap();
    std::fs::copy(root.join("nix/envs.nix"), dir.join("nix/envs.nix")).unwrap();
}

fn envtorch(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_envtorch"))
        .args(args)
        .output()
        .unwrap()
}

/// The server process; killed on drop (its workers exit when their stdin closes).
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /health` over a plain TCP connection: the status line and the body.
async fn health(port: u16) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request =
        format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    Some(response)
}

/// Starts the server on a free port and waits for `/health`; its output goes to `log`.
async fn start_server(server_bin: &Path, env_bin: &Path, log: &Path) -> Server {
    for _attempt in 0..3 {
        let port = free_port();
        let output = std::fs::File::create(log).unwrap();
        let child = Command::new(server_bin)
            .arg("--env")
            .arg(env_bin)
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env_remove("MAX_CONCURRENT_ENVS")
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .spawn()
            .unwrap();
        let mut server = Server { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if server.child.try_wait().unwrap().is_some() {
                break;
            }
            if let Some(response) = health(port).await {
                assert!(response.starts_with("HTTP/1.1 200"), "{response}");
                assert!(response.ends_with(r#"{"status":"healthy"}"#), "{response}");
                return server;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = server.child.kill();
    }
    let output = std::fs::read_to_string(log).unwrap_or_default();
    panic!("envtorch-server did not become healthy:\n{output}");
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn request(ws: &mut Socket, message: Value) -> Value {
    ws.send(Message::text(message.to_string())).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(15), ws.next())
        .await
        .expect("no reply within 15 s")
        .expect("socket closed")
        .unwrap();
    serde_json::from_str(reply.to_text().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_environment_builds_serves_and_steps() {
    if std::env::var_os("NIX_BUILD_TOP").is_some() {
        eprintln!("skipped in the Nix build sandbox: it runs cargo builds and a server");
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    scratch_workspace(scratch.path());
    let workspace = scratch.path().to_str().unwrap();

    // Refusals leave the workspace untouched.
    let bad = envtorch(&["new", "Not_Valid", "--workspace", workspace]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid environment name"));
    assert!(!scratch.path().join("crates/envs").exists());

    let created = envtorch(&["new", NAME, "--workspace", workspace]);
    let stdout = String::from_utf8_lossy(&created.stdout);
    assert!(
        created.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&created.stderr)
    );
    assert!(
        stdout.contains(&format!("crates/envs/{NAME} (package")),
        "{stdout}"
    );
    let nix = std::fs::read_to_string(scratch.path().join("nix/envs.nix")).unwrap();
    assert!(nix.contains(&format!("name = \"{PACKAGE}\";")), "{nix}");
    assert!(nix.trim_end().ends_with(']'), "{nix}");
    let again = envtorch(&["new", NAME, "--workspace", workspace]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    // The crate is formatted, its tests pass, and it builds.
    let cargo_fmt_available = Command::new("cargo")
        .args(["fmt", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if cargo_fmt_available {
        cargo(scratch.path(), &["fmt", "--check", "-p", PACKAGE]);
    }
    cargo(scratch.path(), &["test", "-p", PACKAGE]);
    cargo(scratch.path(), &["build", "-p", PACKAGE]);

    let server_bin = debug_bin_dir().join("envtorch-server");
    if !server_bin.is_file() {
        cargo(&repo_root(), &["build", "-p", "envtorch-server"]);
    }
    let log = scratch.path().join("server.log");
    let server = start_server(&server_bin, &debug_bin_dir().join(PACKAGE), &log).await;

    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/ws", server.port))
            .await
            .unwrap();
    let reset = request(&mut ws, json!({"type": "reset", "data": {"seed": 1}})).await;
    assert_eq!(reset["type"], "observation", "{reset}");
    assert_eq!(reset["data"]["observation"]["echoed_message"], "");

    let step = request(
        &mut ws,
        json!({"type": "step", "data": {"message": "hello"}}),
    )
    .await;
    assert_eq!(step["type"], "observation", "{step}");
    assert_eq!(step["data"]["observation"]["echoed_message"], "hello");
    assert_eq!(step["data"]["observation"]["message_length"], 5);
    assert_eq!(step["data"]["reward"], 5);
    assert_eq!(step["data"]["done"], false);

    let bad = request(&mut ws, json!({"type": "step", "data": {"msg": "hi"}})).await;
    assert_eq!(bad["type"], "error", "{bad}");
    assert_eq!(bad["data"]["code"], "VALIDATION_ERROR");
    let kinds: Vec<&str> = bad["data"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["missing", "extra_forbidden"]);

    let state = request(&mut ws, json!({"type": "state"})).await;
    assert_eq!(state["type"], "state", "{state}");
    assert_eq!(state["data"]["step_count"], 1);
    assert!(state["data"]["episode_id"].is_string());

    ws.send(Message::text(json!({"type": "close"}).to_string()))
        .await
        .unwrap();
    let _ = ws.close(None).await;
    drop(server);
}

//! Real servers for the client tests: envtorch's (built binaries) and the Python reference
//! (uvicorn from the venvs of `scripts/setup-python.sh`), each on 127.0.0.1 with a free port,
//! killed when the guard drops.

// Helpers outside `#[test]` functions may unwrap and panic too: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use envtorch_client::EnvClient;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where the debug binaries are: `$ENVTORCH_BIN_DIR`, else the profile directory of this test
/// executable (`target/debug`).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ENVTORCH_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/<test> -> target/debug
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build -p envtorch-server -p echo-env` first (or set ENVTORCH_BIN_DIR)",
        path.display()
    );
    path
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server process, killed (SIGKILL) on drop.
pub struct ServerProcess {
    pub child: Child,
    pub port: u16,
    pub url: String,
}

impl ServerProcess {
    pub fn client(&self) -> EnvClient {
        EnvClient::new(&self.url).unwrap()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// envtorch-server --env echo-env on a free port.
pub async fn envtorch_echo(extra_env: &[(&str, &str)]) -> ServerProcess {
    let port = free_port();
    let mut cmd = Command::new(bin("envtorch-server"));
    cmd.arg("--env")
        .arg(bin("echo-env"))
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env_remove("MAX_CONCURRENT_ENVS")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    start(cmd, port, Duration::from_secs(30)).await
}

/// The Python reference echo server (`tests/compat/reference/echo_app.py`) from the venv
/// `.venv/<venv>`, e.g. `openenv-0.10.0` or `openenv-core-0.3.0`.
///
/// A missing venv fails the test, unless `ENVTORCH_SKIP_REFERENCE=1` (for builds without
/// network access to create it, such as the Nix sandbox): then `None`.
pub async fn reference_echo(venv: &str, extra_env: &[(&str, &str)]) -> Option<ServerProcess> {
    let python = repo_root().join(".venv").join(venv).join("bin/python");
    if !python.exists() {
        if std::env::var("ENVTORCH_SKIP_REFERENCE").is_ok_and(|v| v == "1") {
            eprintln!(
                "{} is missing; skipped (ENVTORCH_SKIP_REFERENCE=1)",
                python.display()
            );
            return None;
        }
        panic!(
            "{} is missing: run scripts/setup-python.sh (or set ENVTORCH_SKIP_REFERENCE=1)",
            python.display()
        );
    }
    let port = free_port();
    let mut cmd = Command::new(python);
    cmd.args([
        "-m",
        "uvicorn",
        "echo_app:app",
        "--host",
        "127.0.0.1",
        "--port",
    ])
    .arg(port.to_string())
    .current_dir(repo_root().join("tests/compat/reference"))
    .env_remove("MAX_CONCURRENT_ENVS")
    .env_remove("OPENENV_MODE")
    .env_remove("ENABLE_WEB_INTERFACE")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    Some(start(cmd, port, Duration::from_secs(90)).await)
}

async fn start(mut cmd: Command, port: u16, within: Duration) -> ServerProcess {
    let child = cmd.spawn().unwrap();
    let mut server = ServerProcess {
        child,
        port,
        url: format!("http://127.0.0.1:{port}"),
    };
    let client = server.client();
    let deadline = Instant::now() + within;
    loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("server exited early with {status}");
        }
        if client.health().await.is_ok() {
            return server;
        }
        assert!(
            Instant::now() < deadline,
            "server not healthy within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

//! Starting and stopping the two servers under test. Each is started in a process group of
//! its own, bound to 127.0.0.1, and the whole group is stopped afterwards.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rustix::process::{Pid, Signal, kill_process_group};
use serde::Serialize;
use tokio::process::{Child, Command};

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum Kind {
    /// envtorch-server with the echo environment (release build).
    #[serde(rename = "envtorch")]
    Ours,
    /// The Python reference: openenv-core 0.3.0 echo app under uvicorn.
    #[serde(rename = "reference")]
    Reference,
}

impl Kind {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Kind::Ours => "envtorch",
            Kind::Reference => "reference",
        }
    }
}

/// How to start each server.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub(crate) server_bin: PathBuf,
    pub(crate) echo_bin: PathBuf,
    /// `ENVTORCH_WORKERS`; None leaves the server's default (one per core).
    pub(crate) workers: Option<usize>,
    pub(crate) venv: PathBuf,
    pub(crate) app_dir: PathBuf,
    pub(crate) max_sessions: usize,
    pub(crate) log_dir: PathBuf,
}

/// A running server.
pub(crate) struct Running {
    pub(crate) kind: Kind,
    pub(crate) port: u16,
    pub(crate) pid: u32,
    pub(crate) launched: Instant,
    child: Option<Child>,
}

/// A free port on 127.0.0.1 (bound and released; the server binds it right after).
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl Running {
    /// Launches the server (does not wait for it to be ready).
    pub(crate) fn launch(kind: Kind, spec: &Spec, tag: &str) -> anyhow::Result<Self> {
        let port = free_port()?;
        std::fs::create_dir_all(&spec.log_dir)?;
        let log_path = spec.log_dir.join(format!("{}-{tag}.log", kind.label()));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("open {}", log_path.display()))?;
        let log2 = log.try_clone()?;
        let mut cmd = match kind {
            Kind::Ours => {
                let mut c = Command::new(&spec.server_bin);
                c.arg("--env").arg(&spec.echo_bin);
                if let Some(w) = spec.workers {
                    c.env("ENVTORCH_WORKERS", w.to_string());
                } else {
                    c.env_remove("ENVTORCH_WORKERS");
                }
                c.env_remove("RUST_LOG");
                c
            }
            Kind::Reference => {
                let mut c = Command::new(spec.venv.join("bin/uvicorn"));
                // The reference at its best: no access log, warnings only (its per-request
                // logging would otherwise cost it throughput).
                c.args(["echo_app:app", "--host", "127.0.0.1", "--port"])
                    .arg(port.to_string())
                    .args(["--log-level", "warning", "--no-access-log"])
                    .current_dir(&spec.app_dir)
                    .env("PYTHONUNBUFFERED", "1")
                    .env_remove("OPENENV_MODE");
                c
            }
        };
        cmd.env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("MAX_CONCURRENT_ENVS", spec.max_sessions.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .process_group(0)
            .kill_on_drop(true);
        let launched = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("start the {} server", kind.label()))?;
        let pid = child.id().context("server pid")?;
        Ok(Self {
            kind,
            port,
            pid,
            launched,
            child: Some(child),
        })
    }

    /// Waits until a `/ws` session answers a reset (connect + reset + close). Returns the
    /// time from launch to the first successful round trip.
    pub(crate) async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<Duration> {
        let deadline = self.launched + timeout;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    bail!(
                        "{} server exited during startup ({status})",
                        self.kind.label()
                    );
                }
            }
            let last_err = match crate::ws::connect(self.port).await {
                Ok(mut ws) => match crate::ws::call(&mut ws, crate::ws::RESET_FRAME).await {
                    Ok(()) => {
                        let t = self.launched.elapsed();
                        crate::ws::close(ws, Duration::from_secs(2)).await;
                        return Ok(t);
                    }
                    Err(e) => format!("{e:#}"),
                },
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() >= deadline {
                bail!(
                    "{} server not ready within {timeout:?}: {last_err}",
                    self.kind.label()
                );
            }
            // Poll fast: the poll interval bounds the cold-start resolution.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Stops the whole process group: SIGTERM, then SIGKILL after `grace`.
    pub(crate) async fn stop(mut self, grace: Duration) {
        let group = Pid::from_raw(self.pid as i32);
        if let Some(g) = group {
            let _ = kill_process_group(g, Signal::TERM);
        }
        if let Some(mut child) = self.child.take() {
            if tokio::time::timeout(grace, child.wait()).await.is_err() {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
        }
        // Workers (children of the server) are in the same group: make sure none is left.
        if let Some(g) = group {
            let _ = kill_process_group(g, Signal::KILL);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.is_some() {
            if let Some(g) = Pid::from_raw(self.pid as i32) {
                let _ = kill_process_group(g, Signal::KILL);
            }
        }
    }
}

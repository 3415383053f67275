//! Start an environment image, wait until it really serves sessions, and always clean up.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use envtorch_client::{ClientConfig, ClientError, EnvClient, ServerUrl};
use futures_util::StreamExt;

use crate::error::DockerError;

/// Label put on every container this crate starts, so leftovers (e.g. after the process was
/// SIGKILLed, when no destructor runs) can be found and removed: see
/// [`DockerProvider::remove_labelled`].
pub const MANAGED_LABEL: &str = "io.envtorch.managed";

/// How to start a container. The defaults fit an envtorch or OpenEnv image.
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// The port the server listens on inside the container (OpenEnv images: 8000).
    pub container_port: u16,
    /// Host port to publish on; `None` lets Docker pick a free one (no race with other
    /// processes choosing ports).
    pub host_port: Option<u16>,
    /// Host address to publish on. Loopback by default: environments run code for whoever
    /// connects, so they are not exposed beyond this machine unless asked.
    pub host_ip: String,
    /// How long the server may take to answer a `/ws` round trip.
    pub ready_timeout: Duration,
    /// Grace period between SIGTERM and SIGKILL when the container is stopped.
    pub stop_timeout: Duration,
    /// Container name; default `<image name>-<millis>-<pid>`.
    pub name: Option<String>,
    /// Extra labels (the managed label is always added).
    pub labels: HashMap<String, String>,
    /// Replaces the image's command (arguments to its entrypoint), if set.
    pub cmd: Option<Vec<String>>,
    /// Memory limit in bytes, if any.
    pub memory_bytes: Option<i64>,
}

impl Default for StartOptions {
    fn default() -> Self {
        Self {
            container_port: 8000,
            host_port: None,
            host_ip: "127.0.0.1".into(),
            ready_timeout: Duration::from_secs(60),
            stop_timeout: Duration::from_secs(10),
            name: None,
            labels: HashMap::new(),
            cmd: None,
            memory_bytes: None,
        }
    }
}

/// A connection to a Docker daemon that starts environment containers.
#[derive(Debug, Clone)]
pub struct DockerProvider {
    docker: Docker,
    host: String,
}

impl DockerProvider {
    /// Connects to the daemon named by `DOCKER_HOST` (default: the local unix socket),
    /// negotiates the API version (so older engines such as 20.10 work) and pings it, so an
    /// unreachable daemon is reported here rather than at the first container.
    pub async fn connect() -> Result<Self, DockerError> {
        let host = std::env::var("DOCKER_HOST")
            .unwrap_or_else(|_| "unix:///var/run/docker.sock".to_owned());
        Self::connect_to(&host).await
    }

    /// Connects to an explicit daemon address (`unix:///path`, `tcp://host:port`).
    pub async fn connect_to(host: &str) -> Result<Self, DockerError> {
        let unreachable = |reason: String| DockerError::DaemonUnreachable {
            host: host.to_owned(),
            reason,
        };
        let docker = Docker::connect_with_host(host).map_err(|e| unreachable(e.to_string()))?;
        let docker = tokio::time::timeout(Duration::from_secs(10), docker.negotiate_version())
            .await
            .map_err(|_| unreachable("no answer within 10 s".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        tokio::time::timeout(Duration::from_secs(10), docker.ping())
            .await
            .map_err(|_| unreachable("no answer to ping within 10 s".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(Self {
            docker,
            host: host.to_owned(),
        })
    }

    /// The bollard handle, for whatever this crate does not wrap.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// The daemon address in use.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Starts `image` with `env` (`KEY=VALUE` pairs), publishes the server port, and returns
    /// once a `/ws` session has answered a `state` request (a 200 from `/health` only shows
    /// the HTTP layer is up, not that the environment can be created).
    ///
    /// The returned [`Container`] stops and removes the container on [`Container::close`] or
    /// when dropped; on any error here the container is removed before returning.
    pub async fn start(
        &self,
        image: &str,
        env: &[(String, String)],
        options: &StartOptions,
    ) -> Result<Container, DockerError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => {}
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                return Err(DockerError::ImageNotFound {
                    image: image.to_owned(),
                });
            }
            Err(e) => return Err(DockerError::api("inspect image", e)),
        }
        let name = options.name.clone().unwrap_or_else(|| default_name(image));
        let port_key = format!("{}/tcp", options.container_port);
        let mut labels = options.labels.clone();
        labels.insert(MANAGED_LABEL.into(), "true".into());
        let bindings = HashMap::from([(
            port_key.clone(),
            Some(vec![PortBinding {
                host_ip: Some(options.host_ip.clone()),
                host_port: Some(options.host_port.map(|p| p.to_string()).unwrap_or_default()),
            }]),
        )]);
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            exposed_ports: Some(vec![port_key.clone()]),
            labels: Some(labels),
            cmd: options.cmd.clone(),
            host_config: Some(HostConfig {
                port_bindings: Some(bindings),
                memory: options.memory_bytes,
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptionsBuilder::default().name(&name).build()),
                body,
            )
            .await
            .map_err(|e| match e {
                bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                } => DockerError::ImageNotFound {
                    image: image.to_owned(),
                },
                e => DockerError::api("create container", e),
            })?;
        // From here on the guard owns the container: every early return removes it.
        let mut container = Container {
            docker: self.docker.clone(),
            host: self.host.clone(),
            id: created.id,
            name,
            image: image.to_owned(),
            url: ServerUrl::local(0),
            stop_timeout: options.stop_timeout,
            removed: false,
        };
        tracing::info!(container = %container.name, image, "starting container");
        if let Err(e) = self.docker.start_container(&container.id, None).await {
            let message = e.to_string();
            container.close().await.ok();
            if is_port_conflict(&message) {
                return Err(DockerError::PortConflict {
                    port: options.host_port,
                    message,
                });
            }
            return Err(DockerError::api("start container", e));
        }
        let host_port = match container.published_port(&port_key).await {
            Ok(port) => port,
            Err(e) => {
                container.close().await.ok();
                return Err(e);
            }
        };
        let host = if options.host_ip == "0.0.0.0" || options.host_ip.is_empty() {
            "127.0.0.1".to_owned()
        } else {
            options.host_ip.clone()
        };
        container.url = ServerUrl::parse(&format!("http://{host}:{host_port}"))
            .unwrap_or_else(|_| ServerUrl::local(host_port));
        if let Err(e) = container.wait_ready(options.ready_timeout).await {
            container.close().await.ok();
            return Err(e);
        }
        tracing::info!(container = %container.name, url = %container.url, "container ready");
        Ok(container)
    }

    /// Removes (forcibly) every container carrying `label` (`key` or `key=value`), e.g.
    /// [`MANAGED_LABEL`] or a test run's own label. Returns how many were removed.
    pub async fn remove_labelled(&self, label: &str) -> Result<usize, DockerError> {
        let ids = self.list_labelled(label).await?;
        for id in &ids {
            remove_forcibly(&self.docker, id).await;
        }
        Ok(ids.len())
    }

    /// Ids of all containers (running or not) carrying `label` (`key` or `key=value`).
    pub async fn list_labelled(&self, label: &str) -> Result<Vec<String>, DockerError> {
        let filters = HashMap::from([("label", vec![label])]);
        let list = self
            .docker
            .list_containers(Some(
                ListContainersOptionsBuilder::default()
                    .all(true)
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(|e| DockerError::api("list containers", e))?;
        Ok(list.into_iter().filter_map(|c| c.id).collect())
    }
}

/// A running environment container. Stops and removes it on [`Container::close`], or on drop
/// (also while unwinding from a panic): the destructor cannot `await`, so it removes the
/// container from a short-lived thread with its own runtime and waits for it.
#[derive(Debug)]
pub struct Container {
    docker: Docker,
    /// The daemon address, so the destructor can open its own connection.
    host: String,
    id: String,
    name: String,
    image: String,
    url: ServerUrl,
    stop_timeout: Duration,
    removed: bool,
}

impl Container {
    /// The container id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The container name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The image it runs.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// The server's address on this host (`http://127.0.0.1:<published port>`).
    pub fn url(&self) -> &ServerUrl {
        &self.url
    }

    /// A client for the server in this container.
    pub fn client(&self) -> EnvClient {
        EnvClient::with_config(self.url.clone(), ClientConfig::default())
    }

    /// The last `lines` lines of the container's stdout and stderr.
    pub async fn logs(&self, lines: usize) -> String {
        container_logs(&self.docker, &self.id, lines).await
    }

    /// The container's health as Docker reports it (`starting`, `healthy`, `unhealthy`;
    /// `none` without a HEALTHCHECK).
    pub async fn health(&self) -> Result<String, DockerError> {
        let info = self
            .docker
            .inspect_container(&self.id, None)
            .await
            .map_err(|e| DockerError::api("inspect container", e))?;
        Ok(info
            .state
            .and_then(|s| s.health)
            .and_then(|h| h.status)
            .map(|s| s.to_string())
            .unwrap_or_else(|| "none".into()))
    }

    /// Whether the container is running.
    pub async fn is_running(&self) -> Result<bool, DockerError> {
        let info = self
            .docker
            .inspect_container(&self.id, None)
            .await
            .map_err(|e| DockerError::api("inspect container", e))?;
        Ok(info.state.and_then(|s| s.running).unwrap_or(false))
    }

    /// Stops the container (SIGTERM, then SIGKILL after the stop timeout) without removing
    /// it; [`Container::close`] or the destructor still removes it.
    pub async fn stop(&self) -> Result<(), DockerError> {
        let t = i32::try_from(self.stop_timeout.as_secs()).unwrap_or(i32::MAX);
        match self
            .docker
            .stop_container(
                &self.id,
                Some(StopContainerOptionsBuilder::default().t(t).build()),
            )
            .await
        {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(DockerError::api("stop container", e)),
        }
    }

    /// Stops and removes the container. Idempotent.
    pub async fn close(&mut self) -> Result<(), DockerError> {
        if self.removed {
            return Ok(());
        }
        let stopped = self.stop().await;
        let removed = self
            .docker
            .remove_container(&self.id, Some(force_remove()))
            .await;
        match removed {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                self.removed = true;
                tracing::info!(container = %self.name, "container removed");
                stopped
            }
            // "removal already in progress"
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => {
                self.removed = true;
                stopped
            }
            Err(e) => Err(DockerError::api("remove container", e)),
        }
    }

    async fn published_port(&self, port_key: &str) -> Result<u16, DockerError> {
        let info = self
            .docker
            .inspect_container(&self.id, None)
            .await
            .map_err(|e| DockerError::api("inspect container", e))?;
        info.network_settings
            .and_then(|n| n.ports)
            .and_then(|ports| ports.get(port_key).cloned().flatten())
            .and_then(|bindings| {
                bindings
                    .into_iter()
                    .find_map(|b| b.host_port.and_then(|p| p.parse::<u16>().ok()))
            })
            .ok_or_else(|| DockerError::Api {
                operation: "find the published port",
                message: format!("{port_key} is not published"),
            })
    }

    /// Polls until a `/ws` session answers `state`, the container exits, or time runs out.
    async fn wait_ready(&self, timeout: Duration) -> Result<(), DockerError> {
        let deadline = Instant::now() + timeout;
        let probe_config = ClientConfig {
            connect_timeout: Duration::from_secs(2),
            reply_timeout: Duration::from_secs(5),
            ..ClientConfig::default()
        };
        let client = EnvClient::with_config(self.url.clone(), probe_config);
        loop {
            let last_error = match ws_round_trip(&client).await {
                Ok(()) => return Ok(()),
                Err(e) => e.to_string(),
            };
            if !self.is_running().await.unwrap_or(false) {
                return Err(DockerError::Exited {
                    container: self.name.clone(),
                    logs: self.logs(30).await,
                });
            }
            if Instant::now() >= deadline {
                return Err(DockerError::NotReady {
                    container: self.name.clone(),
                    after: timeout,
                    last_error,
                    logs: self.logs(30).await,
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// One real session: connect, `state`, close.
async fn ws_round_trip(client: &EnvClient) -> Result<(), ClientError> {
    let mut session = client.connect().await?;
    let state = session.state_json().await;
    let _ = session.close().await;
    state.map(|_| ())
}

impl Drop for Container {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        let host = self.host.clone();
        let id = self.id.clone();
        let name = self.name.clone();
        // A destructor cannot await, and the caller's runtime may be blocked by this very
        // destructor or shutting down (end of a test, a panic): remove the container from a
        // thread with its own runtime and its own daemon connection (the caller's pooled
        // connections are driven by the caller's runtime), and wait for it.
        let worker = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let removal = async {
                match DockerProvider::connect_to(&host).await {
                    Ok(provider) => remove_forcibly(&provider.docker, &id).await,
                    Err(e) => {
                        tracing::error!(container = %name, "cannot remove the container: {e}");
                    }
                }
            };
            match runtime {
                Ok(rt) => rt.block_on(removal),
                Err(e) => {
                    tracing::error!(container = %name, "cannot remove the container: {e}");
                }
            }
        });
        let _ = worker.join();
    }
}

/// Options of `docker rm -f -v`: kill if running, and remove anonymous volumes too.
fn force_remove() -> bollard::query_parameters::RemoveContainerOptions {
    RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build()
}

/// `docker rm -f` (kills with SIGKILL): used where waiting for a graceful stop is not worth it.
async fn remove_forcibly(docker: &Docker, id: &str) {
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        docker.remove_container(id, Some(force_remove())),
    )
    .await;
    match result {
        Ok(Ok(())) => tracing::info!(container = id, "container removed"),
        Ok(Err(e)) => tracing::warn!(container = id, "removing the container failed: {e}"),
        Err(_) => tracing::warn!(container = id, "removing the container timed out"),
    }
}

async fn container_logs(docker: &Docker, id: &str, lines: usize) -> String {
    let options = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .tail(&lines.to_string())
        .build();
    let mut stream = docker.logs(id, Some(options));
    let mut out = String::new();
    let collect = async {
        while let Some(item) = stream.next().await {
            match item {
                Ok(chunk) => out.push_str(&chunk.to_string()),
                Err(e) => {
                    out.push_str(&format!("[cannot read logs: {e}]"));
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), collect).await;
    out
}

fn is_port_conflict(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("port is already allocated")
        || m.contains("address already in use")
        || m.contains("bind for")
}

fn default_name(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    let base = last.split([':', '@']).next().unwrap_or(last);
    let base: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{base}-{millis}-{}-{n}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_image() {
        let n = default_name("registry.example/org/echo-env:test");
        assert!(n.starts_with("echo-env-"), "{n}");
        assert_ne!(default_name("x"), default_name("x"));
    }

    #[test]
    fn port_conflicts_are_recognized() {
        assert!(is_port_conflict(
            "driver failed programming external connectivity on endpoint x: Bind for 127.0.0.1:8000 failed: port is already allocated"
        ));
        assert!(!is_port_conflict("No such image"));
    }
}

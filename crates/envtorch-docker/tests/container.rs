//! Container tests: real images (built here from the static binaries, see
//! `envtorch_docker::test_images`), started through the provider and driven with the client.
//!
//! Every test is named `container_*`, so `-E 'test(/container/)'` selects them and the Nix
//! sandbox (no Docker) excludes them. They need a Docker daemon and the static binaries:
//!
//! ```sh
//! RUSTFLAGS='-C target-feature=+crt-static' cargo build --release \
//!     --target x86_64-unknown-linux-gnu -p envtorch-server -p echo-env -p coding-env
//! ```
//!
//! Each test labels its containers with its own run label and asserts at the end that none
//! is left.

// Helpers outside `#[test]` functions may unwrap and panic too: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use envtorch_client::{ClientError, ResetOptions};
use envtorch_docker::test_images::{self, BASE_TAG, BuildInputs, CODING_TAG, ECHO_TAG, Layout};
use envtorch_docker::{Container, DockerError, DockerProvider, StartOptions};
use serde_json::json;
use tokio::sync::OnceCell;

static IMAGES: OnceCell<()> = OnceCell::const_new();

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The provider, with the test images built (once per process; a no-op when up to date).
async fn provider() -> DockerProvider {
    let docker = DockerProvider::connect().await.unwrap();
    IMAGES
        .get_or_init(|| async {
            let inputs = BuildInputs::from_repo(repo()).unwrap();
            test_images::build_all(docker.docker(), &inputs)
                .await
                .unwrap();
        })
        .await;
    docker
}

/// Start options carrying this test's run label.
fn options(test: &str) -> (StartOptions, String) {
    let value = format!("{test}-{}", std::process::id());
    let mut options = StartOptions {
        ready_timeout: Duration::from_secs(60),
        ..StartOptions::default()
    };
    options
        .labels
        .insert("io.envtorch.test-run".into(), value.clone());
    (options, format!("io.envtorch.test-run={value}"))
}

async fn assert_none_left(docker: &DockerProvider, label: &str) {
    let left = docker.list_labelled(label).await.unwrap();
    assert!(left.is_empty(), "containers left behind: {left:?}");
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn echo_session(container: &Container, message: &str) {
    let mut session = container.client().connect().await.unwrap();
    let reset = session
        .reset(&ResetOptions::new().episode_id(format!("ep-{message}")))
        .await
        .unwrap();
    assert_eq!(reset.reward, Some(0.0));
    let r = session
        .step_json(json!({"type": "call_tool", "tool_name": "echo_message",
                          "arguments": {"message": message}}))
        .await
        .unwrap();
    assert_eq!(r.observation["result"]["data"], json!(message));
    let state = session.state_json().await.unwrap();
    assert_eq!(state["episode_id"], json!(format!("ep-{message}")));
    assert_eq!(state["step_count"], 1);
    session.close().await.unwrap();
}

#[tokio::test]
async fn container_echo_session_as_the_unprivileged_user() {
    let docker = provider().await;
    let (opts, label) = options("echo");
    let mut container = docker.start(ECHO_TAG, &[], &opts).await.unwrap();
    let client = container.client();
    assert_eq!(client.health().await.unwrap().status, "healthy");
    assert_eq!(client.metadata().await.unwrap().name, "EchoEnvironment");
    echo_session(&container, "hello from a container").await;

    // The process runs as the layout's unprivileged user.
    let layout = Layout::load(&repo().join("nix/image-layout.json")).unwrap();
    let top = docker
        .docker()
        .top_processes(
            container.id(),
            Some(
                bollard::query_parameters::TopOptionsBuilder::default()
                    .ps_args("-o pid,uid,comm")
                    .build(),
            ),
        )
        .await
        .unwrap();
    let titles = top.titles.unwrap_or_default();
    let uid_column = titles.iter().position(|t| t == "UID").unwrap();
    let processes = top.processes.unwrap_or_default();
    // The server and its echo worker.
    assert!(processes.len() >= 2, "{processes:?}");
    for p in &processes {
        assert_eq!(
            p[uid_column],
            layout.user.uid.to_string(),
            "process {p:?} is not running as the image user"
        );
    }

    container.close().await.unwrap();
    assert_none_left(&docker, &label).await;
}

#[tokio::test]
async fn container_docker_healthcheck_turns_healthy() {
    let docker = provider().await;
    let (opts, label) = options("healthcheck");
    let mut container = docker.start(ECHO_TAG, &[], &opts).await.unwrap();
    // The image's HEALTHCHECK (`envtorch-server health`, interval 5 s) turns healthy.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let health = container.health().await.unwrap();
        if health == "healthy" {
            break;
        }
        if health == "unhealthy" || Instant::now() >= deadline {
            // Show what the health command itself printed.
            let info = docker
                .docker()
                .inspect_container(container.id(), None)
                .await
                .unwrap();
            let log = info.state.and_then(|s| s.health).and_then(|h| h.log);
            panic!("health is {health}; health check runs: {log:#?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    container.close().await.unwrap();
    assert_none_left(&docker, &label).await;
}

#[tokio::test]
async fn container_coding_env_runs_python() {
    let docker = provider().await;
    let (opts, label) = options("coding");
    let mut container = docker
        .start(CODING_TAG, &env(&[("MAX_CONCURRENT_ENVS", "2")]), &opts)
        .await
        .unwrap();
    let client = container.client();
    let schema = client.schema().await.unwrap();
    assert!(
        schema["action"]["properties"].get("code").is_some(),
        "{schema}"
    );

    #[derive(serde::Serialize)]
    struct CodeAction {
        code: String,
    }
    #[derive(Debug, serde::Deserialize)]
    struct CodeObservation {
        stdout: String,
        stderr: String,
        exit_code: i64,
    }
    #[derive(Debug, serde::Deserialize)]
    struct CodeState {
        step_count: u64,
        last_exit_code: i64,
    }
    let mut session = client
        .connect()
        .await
        .unwrap()
        .typed::<CodeAction, CodeObservation, CodeState>();
    session.reset(&ResetOptions::new()).await.unwrap();
    let r = session
        .step(&CodeAction {
            code: "import sys, json\nx = 6 * 7\nprint(sys.version_info[:2], json.dumps({'x': x}))"
                .into(),
        })
        .await
        .unwrap();
    assert_eq!(r.observation.exit_code, 0, "{:?}", r.observation);
    assert!(
        r.observation.stdout.contains(r#"{"x": 42}"#),
        "{:?}",
        r.observation
    );
    // State persists between steps; errors come back as observations.
    let r = session
        .step(&CodeAction {
            code: "print(x + 1)\n1/0".into(),
        })
        .await
        .unwrap();
    assert_eq!(r.observation.exit_code, 1);
    assert!(
        r.observation.stderr.contains("ZeroDivisionError"),
        "{:?}",
        r.observation
    );
    let state = session.state().await.unwrap();
    assert_eq!(state.step_count, 2);
    assert_eq!(state.last_exit_code, 1);
    session.close().await.unwrap();
    container.close().await.unwrap();
    assert_none_left(&docker, &label).await;
}

#[tokio::test]
async fn container_stopped_mid_episode_gives_a_clean_client_error() {
    let docker = provider().await;
    let (opts, label) = options("stop-mid-episode");
    let mut container = docker.start(ECHO_TAG, &[], &opts).await.unwrap();
    let mut session = container.client().connect().await.unwrap();
    session.reset(&ResetOptions::new()).await.unwrap();
    container.stop().await.unwrap();
    let started = Instant::now();
    let err = session
        .step_json(json!({"type": "list_tools"}))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Closed { .. }),
        "expected a closed connection, got {err:?}"
    );
    assert!(err.ends_session());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!session.is_open());
    container.close().await.unwrap();
    assert_none_left(&docker, &label).await;
}

#[tokio::test]
async fn container_sigterm_stops_within_seconds() {
    let docker = provider().await;
    let (mut opts, label) = options("sigterm");
    // A long grace period: if the server ignored SIGTERM, stop would take 30 s.
    opts.stop_timeout = Duration::from_secs(30);
    let mut container = docker.start(ECHO_TAG, &[], &opts).await.unwrap();
    let mut session = container.client().connect().await.unwrap();
    session.reset(&ResetOptions::new()).await.unwrap();
    let started = Instant::now();
    container.stop().await.unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "stop took {took:?}");
    let info = docker
        .docker()
        .inspect_container(container.id(), None)
        .await
        .unwrap();
    let state = info.state.unwrap();
    assert_eq!(state.running, Some(false));
    assert_eq!(state.exit_code, Some(0), "{}", container.logs(20).await);
    container.close().await.unwrap();
    assert_none_left(&docker, &label).await;
}

#[tokio::test]
async fn container_eight_at_once_all_cleaned_up() {
    let docker = provider().await;
    let (opts, label) = options("many");
    let starts = (0..8).map(|_| docker.start(ECHO_TAG, &[], &opts));
    let results = futures_util::future::join_all(starts).await;
    let mut containers = Vec::new();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(c) => containers.push(c),
            Err(e) => errors.push(e.to_string()),
        }
    }
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(docker.list_labelled(&label).await.unwrap().len(), 8);
    let ports: std::collections::BTreeSet<u16> =
        containers.iter().map(|c| c.url().port()).collect();
    assert_eq!(ports.len(), 8, "each container has its own host port");
    // Two sessions in each, all at the same time.
    let sessions = containers
        .iter()
        .flat_map(|c| [echo_session(c, "first"), echo_session(c, "second")]);
    futures_util::future::join_all(sessions).await;
    // Half closed explicitly, half by dropping the guard.
    let dropped = containers.split_off(4);
    for mut c in containers {
        c.close().await.unwrap();
    }
    drop(dropped);
    assert_none_left(&docker, &label).await;
}

#[tokio::test]
async fn container_guard_removes_the_container_on_panic() {
    let docker = provider().await;
    let (opts, label) = options("panic");
    let task_docker = docker.clone();
    let joined = tokio::spawn(async move {
        let container = task_docker.start(ECHO_TAG, &[], &opts).await.unwrap();
        assert!(container.is_running().await.unwrap());
        panic!("test panic while holding {}", container.name());
    })
    .await;
    assert!(joined.unwrap_err().is_panic());
    assert_none_left(&docker, &label).await;
}

#[tokio::test]
async fn container_errors_are_clear() {
    let docker = provider().await;
    let (opts, label) = options("errors");

    // Image missing: nothing is pulled.
    let err = docker
        .start("envtorch-no-such-image:test", &[], &opts)
        .await
        .unwrap_err();
    assert!(matches!(err, DockerError::ImageNotFound { .. }), "{err}");

    // Port conflict: the requested host port is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut conflict = opts.clone();
    conflict.host_port = Some(port);
    let err = docker.start(ECHO_TAG, &[], &conflict).await.unwrap_err();
    assert!(matches!(err, DockerError::PortConflict { .. }), "{err}");
    assert!(err.to_string().contains(&port.to_string()), "{err}");

    // Not ready within the timeout (the server listens on another port than the published
    // one): the error carries the container's last log lines.
    let mut slow = opts.clone();
    slow.ready_timeout = Duration::from_secs(3);
    let err = docker
        .start(ECHO_TAG, &env(&[("PORT", "9000")]), &slow)
        .await
        .unwrap_err();
    match &err {
        DockerError::NotReady { logs, .. } => {
            assert!(logs.contains("9000"), "logs: {logs}");
        }
        other => panic!("{other}"),
    }

    // The server exits at once (no such environment binary): reported with its logs.
    let mut broken = opts.clone();
    broken.cmd = Some(vec!["--env".into(), "/bin/no-such-env".into()]);
    let err = docker.start(BASE_TAG, &[], &broken).await.unwrap_err();
    match &err {
        DockerError::Exited { logs, .. } | DockerError::NotReady { logs, .. } => {
            assert!(logs.contains("no-such-env"), "logs: {logs}");
        }
        other => panic!("{other}"),
    }

    // An unreachable daemon.
    let err = DockerProvider::connect_to("unix:///nonexistent/docker.sock")
        .await
        .unwrap_err();
    assert!(
        matches!(err, DockerError::DaemonUnreachable { .. }),
        "{err}"
    );

    // Every failed start removed its container.
    assert_none_left(&docker, &label).await;
}

#[tokio::test]
async fn container_images_follow_the_layout_and_share_the_base_layers() {
    let docker = provider().await;
    let layout = Layout::load(&repo().join("nix/image-layout.json")).unwrap();
    let inspect = |tag: &'static str| {
        let d = docker.docker().clone();
        async move { d.inspect_image(tag).await.unwrap() }
    };
    let base = inspect(BASE_TAG).await;
    let base_layers = base.root_fs.unwrap().layers.unwrap();
    for (tag, binary) in [(ECHO_TAG, "echo-env"), (CODING_TAG, "coding-env")] {
        let image = inspect(tag).await;
        let layers = image.root_fs.unwrap().layers.unwrap();
        assert!(layers.len() > base_layers.len(), "{tag}");
        assert_eq!(layers[..base_layers.len()], base_layers[..], "{tag}");
        let config = image.config.unwrap();
        assert_eq!(config.entrypoint.unwrap(), layout.env_entrypoint(binary));
        assert_eq!(config.user.as_deref(), Some(layout.user_spec().as_str()));
        assert_eq!(
            config.working_dir.as_deref(),
            Some(layout.work_dir.as_str())
        );
        let env: HashMap<String, String> = config
            .env
            .unwrap()
            .into_iter()
            .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.into(), v.into())))
            .collect();
        for (k, v) in &layout.env {
            assert_eq!(env.get(k), Some(v), "{tag} env {k}");
        }
        let hc = config.healthcheck.unwrap();
        assert_eq!(hc.test.unwrap(), layout.healthcheck.test);
        assert_eq!(
            hc.interval,
            Some(layout.healthcheck.interval_seconds as i64 * 1_000_000_000)
        );
        let labels = config.labels.unwrap();
        for (k, v) in &layout.labels {
            assert_eq!(labels.get(k), Some(v), "{tag} label {k}");
        }
        let ports: Vec<String> = config.exposed_ports.unwrap_or_default();
        assert!(
            ports.iter().any(|p| p == &format!("{}/tcp", layout.port)),
            "{ports:?}"
        );
    }
}

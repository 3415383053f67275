//! What can go wrong with Docker, one variant per thing a caller would do differently.

use std::time::Duration;

/// A Docker provider or image-builder error.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// No daemon answered at the address (`DOCKER_HOST`, default the local socket).
    #[error(
        "the Docker daemon at {host} is unreachable: {reason} (is it running? is DOCKER_HOST right?)"
    )]
    DaemonUnreachable {
        /// The address tried.
        host: String,
        /// What failed.
        reason: String,
    },
    /// The image is not present locally. Nothing is pulled: build or load it first.
    #[error("image {image} not found locally (this provider never pulls; build or load it first)")]
    ImageNotFound {
        /// The image reference.
        image: String,
    },
    /// The host port could not be bound.
    #[error("cannot publish the server port{}: {message}", .port.map(|p| format!(" on host port {p}")).unwrap_or_default())]
    PortConflict {
        /// The requested host port, if one was requested.
        port: Option<u16>,
        /// Docker's message.
        message: String,
    },
    /// The server did not complete a `/ws` round trip in time. Carries the container's last
    /// log lines, which usually say why.
    #[error(
        "container {container} was not ready within {after:?} (last attempt: {last_error}); last log lines:\n{logs}"
    )]
    NotReady {
        /// The container name.
        container: String,
        /// The readiness timeout.
        after: Duration,
        /// The last readiness probe's error.
        last_error: String,
        /// The last log lines.
        logs: String,
    },
    /// The container exited while it was expected to become ready.
    #[error("container {container} exited before it was ready; last log lines:\n{logs}")]
    Exited {
        /// The container name.
        container: String,
        /// The last log lines.
        logs: String,
    },
    /// An image build failed.
    #[error("building image {image} failed: {message}")]
    Build {
        /// The tag being built.
        image: String,
        /// The builder's error or the missing input.
        message: String,
    },
    /// Any other Docker API failure.
    #[error("Docker API error during {operation}: {message}")]
    Api {
        /// What was being done.
        operation: &'static str,
        /// The daemon's or transport's message.
        message: String,
    },
}

impl DockerError {
    pub(crate) fn api(operation: &'static str, e: bollard::errors::Error) -> Self {
        DockerError::Api {
            operation,
            message: e.to_string(),
        }
    }
}

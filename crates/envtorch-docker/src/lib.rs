//! Docker provider for envtorch environments, through the Docker Engine API (bollard), not
//! the `docker` CLI: no shelling out, typed errors, and it works wherever `DOCKER_HOST` points.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use envtorch_client::ResetOptions;
//! use envtorch_docker::{DockerProvider, StartOptions};
//!
//! let docker = DockerProvider::connect().await?;
//! let mut container = docker
//!     .start("echo-env:test", &[("MAX_CONCURRENT_ENVS".into(), "4".into())], &StartOptions::default())
//!     .await?;
//! let mut session = container.client().connect().await?;
//! session.reset(&ResetOptions::new()).await?;
//! session.close().await?;
//! container.close().await?; // or just drop it
//! # Ok(()) }
//! ```
//!
//! * [`DockerProvider::start`] publishes the container's port 8000 on a free loopback port
//!   (Docker picks it, so there is no race), waits until a real `/ws` session answers (not
//!   only a 200 from `/health`), and returns a [`Container`] guard.
//! * The guard stops and removes the container on [`Container::close`] or on drop, including
//!   while unwinding from a panic, and any failure inside `start` removes it before returning.
//!   Containers also carry [`MANAGED_LABEL`], so leftovers of a killed process can be swept.
//! * Errors say what to do: [`DockerError::ImageNotFound`] (nothing is ever pulled),
//!   [`DockerError::DaemonUnreachable`], [`DockerError::PortConflict`],
//!   [`DockerError::NotReady`] / [`DockerError::Exited`] with the container's last log lines.
//!
//! [`test_images`] builds the project's images locally from static binaries, with the layout
//! of the Nix images (`nix/image-layout.json`), for tests and for trying envtorch without Nix.

mod error;
mod provider;
pub mod test_images;

pub use error::DockerError;
pub use provider::{Container, DockerProvider, MANAGED_LABEL, StartOptions};

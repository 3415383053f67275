//! Builds the test images (`envtorch-base:test`, `echo-env:test`, `coding-env:test`) from the
//! static binaries, with the layout of `nix/image-layout.json`:
//!
//! ```sh
//! RUSTFLAGS='-C target-feature=+crt-static' cargo build --release \
//!     --target x86_64-unknown-linux-gnu -p envtorch-server -p echo-env -p coding-env
//! cargo run -p envtorch-docker --example build-test-images
//! ```
//!
//! `--remove` deletes those images instead.

use std::path::Path;
use std::process::ExitCode;

use envtorch_docker::DockerProvider;
use envtorch_docker::test_images::{self, BuildInputs};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let remove = std::env::args().any(|a| a == "--remove");
    let result = async {
        let docker = DockerProvider::connect().await?;
        if remove {
            test_images::remove_all(docker.docker()).await?;
            return Ok::<_, envtorch_docker::DockerError>(());
        }
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let inputs = BuildInputs::from_repo(&repo)?;
        let built = test_images::build_all(docker.docker(), &inputs).await?;
        for (tag, id) in &built.ids {
            let state = if built.rebuilt.contains(tag) {
                "built"
            } else {
                "up to date"
            };
            println!("{tag} {id} ({state})");
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("build-test-images: {e}");
            ExitCode::FAILURE
        }
    }
}

#!/usr/bin/env bash
# Build the static binaries and the local test images (envtorch-base:test, echo-env:test,
# coding-env:test) with the layout of nix/image-layout.json. Idempotent: unchanged images are
# not rebuilt. The images are built by crates/envtorch-docker (src/test_images.rs) through the
# Docker Engine API; this script only runs cargo. Extra arguments go to the builder
# (`--remove` deletes the three images). See docs/containers.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

triple="$(uname -m)-unknown-linux-gnu"
RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked --target "${triple}" \
    -p envtorch-server -p echo-env -p coding-env
cargo run --locked -p envtorch-docker --example build-test-images -- "$@"

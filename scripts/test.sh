#!/usr/bin/env bash
# Every test, from a fresh clone: formatting, lints, Rust unit and integration tests (real
# servers on 127.0.0.1, real worker processes, real CPython for the coding env, real Docker
# containers), the Python wire-compatibility suite with the official openenv clients, the
# benchmark harness in smoke mode, and the offline Nix evaluation when its mirrors exist.
#
# usage: scripts/test.sh            (CI: .ci/run calls exactly this)
# Needs: the Rust toolchain, python3, a running Docker engine; installs the rest itself
# (Python venvs, Debian packages the tests use).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n=== %s\n' "$*"; }

step "rustfmt"
cargo fmt --all --check

step "clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build binaries and examples used by the tests"
cargo build --workspace --bins --examples --locked

step "static binaries for the container test images (glibc, +crt-static)"
RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked \
    --target "$(uname -m)-unknown-linux-gnu" -p envtorch-server -p echo-env -p coding-env

step "Python venvs (official clients and reference servers, used by client and compat tests)"
bash scripts/setup-python.sh

step "cargo test (workspace)"
cargo test --workspace --locked

step "Python wire compatibility (openenv 0.10.0 and openenv-core 0.3.0 clients vs envtorch)"
bash scripts/compat-test.sh envtorch

if [[ -x scripts/bench.sh ]]; then
    step "benchmark harness, smoke mode (no ratios asserted)"
    bash scripts/bench.sh --smoke
fi

step "offline Nix evaluation (tier 1)"
bash nix/eval-offline.sh

echo
echo "scripts/test.sh: all checks passed"

#!/usr/bin/env bash
# The envtorch benchmark, in one command: envtorch against the Python OpenEnv reference
# (openenv-core 0.3.0) echo server, side by side. See bench/README.md.
#
#   scripts/bench.sh            full run (about 20 minutes on 2 cores): bench/results/latest.{json,md}
#   scripts/bench.sh --smoke    a smoke run for CI (well under a minute; no ratio asserted):
#                               target/bench-smoke/latest.{json,md}; fails if envtorch failed anywhere
# Any other arguments go to envtorch-bench (see `target/release/envtorch-bench --help`).
#
# It creates the reference venvs (scripts/setup-python.sh, idempotent), builds the release
# binaries, and runs the harness from the repository root. Everything it starts binds to
# 127.0.0.1 and is stopped before it exits.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"

if ! bash scripts/setup-python.sh; then
    echo "bench: the reference venv could not be set up; envtorch is measured alone" >&2
fi
cargo build --release -p envtorch-server -p echo-env -p envtorch-bench
echo "bench: load average before the run: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores" >&2
exec target/release/envtorch-bench "$@"

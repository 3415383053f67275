#!/usr/bin/env bash
# Build (release) and serve one environment on http://127.0.0.1:8000 (PORT/HOST override).
#
# usage: scripts/serve.sh [echo|coding|game-2048] [envtorch-server flags...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
env_name="${1:-echo}"
[[ $# -gt 0 ]] && shift
binary="${env_name}-env"
cargo build --release --locked -p envtorch-server -p "${binary}"
export HOST="${HOST:-127.0.0.1}" PORT="${PORT:-8000}"
echo "serving ${binary} on http://${HOST}:${PORT} (Ctrl-C stops)" >&2
exec target/release/envtorch-server --env "target/release/${binary}" "$@"

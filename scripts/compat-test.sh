#!/usr/bin/env bash
# Wire-compatibility tests (tests/compat) against one server, with the official clients of
# both protocol generations: pytest runs once in each reference venv.
#
# usage: scripts/compat-test.sh [envtorch|reference-0.10|reference-0.3] [extra pytest args...]
#   target (or $COMPAT_TARGET) defaults to envtorch. For envtorch nothing is built here:
#   ENVTORCH_SERVER_BIN / ENVTORCH_ECHO_BIN name the binaries (default target/debug/envtorch-server
#   and target/debug/echo-env, relative to the repository root).
# Exits non-zero if either pytest run fails.
set -uo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${COMPAT_TARGET:-envtorch}"
if [[ $# -gt 0 && "$1" != -* ]]; then
    target="$1"
    shift
fi
case "${target}" in
    envtorch|reference-0.10|reference-0.3) ;;
    *) echo "compat-test: unknown target '${target}' (envtorch, reference-0.10, reference-0.3)" >&2; exit 2 ;;
esac

bash "${repo_root}/scripts/setup-python.sh" || exit 1

export COMPAT_TARGET="${target}"
export ENVTORCH_SERVER_BIN="${ENVTORCH_SERVER_BIN:-target/debug/envtorch-server}"
export ENVTORCH_ECHO_BIN="${ENVTORCH_ECHO_BIN:-target/debug/echo-env}"

status=0
for venv in openenv-0.10.0 openenv-core-0.3.0; do
    echo "=== compat-test: target=${target}, clients from ${venv}"
    (cd "${repo_root}/tests/compat" && "${repo_root}/.venv/${venv}/bin/python" -m pytest -q "$@")
    rc=$?
    if [[ ${rc} -ne 0 ]]; then
        echo "=== compat-test: ${venv}: pytest exited ${rc}"
        status=1
    fi
done
exit "${status}"

#!/usr/bin/env bash
# Create the Python venvs used by the wire-compatibility tests (tests/compat) and the
# Python reference servers:
#   .venv/openenv-core-0.3.0   openenv-core==0.3.0  (0.3.0 clients + 0.3.0 reference server)
#   .venv/openenv-0.10.0       openenv==0.10.0      (0.10.0 clients + 0.10.0 reference server)
# Each also gets the test tools (pytest, websockets, httpx).
#
# Idempotent: a venv is (re)built only when its stamp file does not match the wanted
# requirement list, so a re-run costs a few milliseconds. Set SETUP_PYTHON_FORCE=1 to rebuild.
# Needs only python3 (3.11) and a reachable package index (plain pip, as configured on the machine).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv_root="${repo_root}/.venv"
python_bin="${PYTHON:-python3}"

# Test tools shared by both venvs. Versions are pinned so a transcript comparison does not
# move under us; websockets/httpx match what the spec's reference runs resolved.
test_requirements=(pytest==8.3.5 websockets==17.4 httpx==0.29.0)

# make_venv NAME REQUIREMENT...
make_venv() {
    local name="$1"; shift
    local venv="${venv_root}/${name}"
    local stamp="${venv}/.envtorch-setup-stamp"
    local wanted
    wanted="$("${python_bin}" -c 'import sys; print(sys.version.split()[0])') $*"

    if [[ -z "${SETUP_PYTHON_FORCE:-}" && -f "${stamp}" && "$(cat "${stamp}")" == "${wanted}" \
          && -x "${venv}/bin/python" ]]; then
        echo "setup-python: ${name} up to date"
        return 0
    fi

    echo "setup-python: building ${name} ($*)"
    rm -rf "${venv}"
    "${python_bin}" -m venv "${venv}"
    "${venv}/bin/python" -m pip install --quiet --upgrade pip
    "${venv}/bin/python" -m pip install --quiet "$@"
    # Written last, so an interrupted install is redone on the next run.
    printf '%s' "${wanted}" > "${stamp}"
    echo "setup-python: ${name} ready"
}

mkdir -p "${venv_root}"
# Several test runners may call this at once (compat suite, Rust tests, bench): one at a time,
# so nobody uses a venv while another run rebuilds it.
exec 9>"${venv_root}/.setup.lock"
flock 9
make_venv openenv-core-0.3.0 openenv-core==0.3.0 "${test_requirements[@]}"
make_venv openenv-0.10.0 openenv==0.10.0 "${test_requirements[@]}"

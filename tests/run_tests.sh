#!/usr/bin/env bash
# The test command of the README: installs what is missing, then runs the default suite
# (everything but the opt-in `slow` marker) on TEST_WORKERS pytest-xdist workers (default 2; each
# test file stays on one worker, so its module fixtures are built once). Extra arguments go to
# pytest (`-n 0` runs in one process).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/ensure_deps.sh --dev
exec "${PYTHON:-python3}" -m pytest -n "${TEST_WORKERS:-2}" --dist loadfile "$@"

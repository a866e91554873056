#!/usr/bin/env bash
# The test command of the README: installs what is missing, then runs the default suite
# (everything but the opt-in `slow` marker). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/ensure_deps.sh --dev
exec "${PYTHON:-python3}" -m pytest "$@"

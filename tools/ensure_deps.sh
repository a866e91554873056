#!/usr/bin/env bash
# Install what SegKD needs, only if something is missing. torch is pinned to the CPU wheel
# (2.13.0) when absent, so no multi-GB CUDA packages are pulled on a CPU machine; a torch that
# is already installed (e.g. a CUDA build >= 2.1) is kept.
set -euo pipefail
PY=${PYTHON:-python3}
want_dev=${1:-}
missing=0
"$PY" - <<'PYEOF' || missing=1
import importlib, sys
for name in ("torch", "numpy", "cv2", "PIL", "tqdm", "tensorboard"):
    importlib.import_module(name)
PYEOF
if [ "$want_dev" = "--dev" ]; then "$PY" -c "import pytest, xdist" 2>/dev/null || missing=1; fi
if [ "$missing" = 1 ]; then
  echo "[ensure_deps] installing missing packages"
  "$PY" -c "import torch" 2>/dev/null && torch_spec="" || torch_spec="torch==2.13.0"
  req=requirements.txt; [ "$want_dev" = "--dev" ] && req=requirements-dev.txt
  "$PY" -m pip install -q $torch_spec -r "$req"
fi

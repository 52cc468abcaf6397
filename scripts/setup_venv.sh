#!/usr/bin/env bash
# Create ./.venv at the repo root and install ssl_zoo (editable) with its test tools.
# Idempotent: a second run only checks that everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# torch / torchvision first, pinned to versions known to work (the package itself accepts ranges).
.venv/bin/python -c "import torch, torchvision" 2>/dev/null || \
  .venv/bin/pip install -q "torch==2.14.1" "torchvision==0.29.1"
.venv/bin/pip install -q -e ".[test]"

#!/usr/bin/env bash
# One-command set-up: a virtual environment in .venv with the project and its locked dependencies.
# Usage: bash scripts/setup.sh   (then: source .venv/bin/activate)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -d .venv ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip wheel setuptools
# constraints.txt pins torch==2.13.0 (CPU build on machines like ours) and the rest of the stack.
python -m pip install -q -c constraints.txt -e ".[dev,sweep]"
echo "Set up. Activate with: source .venv/bin/activate"

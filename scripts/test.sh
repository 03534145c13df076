#!/usr/bin/env bash
# One command on a fresh machine: set up whatever is missing (Python environment, base model, and the
# system packages the tests drive: a real browser, a PostgreSQL server), then run the test suite.
#   bash scripts/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
for extra in scripts/install_browser.sh scripts/install_postgres.sh; do
  if [ -f "$extra" ]; then bash "$extra"; fi
done
set +e
# the PostgreSQL half of the store tests must run here, not be skipped (tests/pg_support.py)
THREADSTANCE_REQUIRE_POSTGRES=${THREADSTANCE_REQUIRE_POSTGRES:-1} .venv/bin/python -m pytest -q "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing on purpose" >&2
  exit 1
fi
exit "$rc"

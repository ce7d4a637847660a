#!/usr/bin/env bash
# The test suite (default: fast tests, < 10 minutes on 2 CPU cores). Extra arguments go to pytest,
# e.g. `bash scripts/test.sh -m slow` for the slow checks. The tests run in QROBUST_TEST_WORKERS processes
# (default 2, one per core of the 2-core machine the suite is timed on; 0: in this process), each test file
# whole in one of them (its module fixtures computed once).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
workers=${QROBUST_TEST_WORKERS:-2}
if [ "$workers" = "0" ]; then
  .venv/bin/python -m pytest "$@"
else
  .venv/bin/python -m pytest -n "$workers" --dist loadfile "$@"
fi

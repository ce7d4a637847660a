#!/usr/bin/env bash
# The test suite (default: fast tests, < 10 minutes on 2 CPU cores). Extra arguments go to pytest,
# e.g. `bash scripts/test.sh -m slow` for the slow checks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pytest "$@"

#!/usr/bin/env bash
# Make (or reuse) the local virtual environment .venv and install qrobust into it.
# The installer is uv (from the package registry, about ten times faster than pip here) when it can be had,
# pip otherwise; both install the same packages from the same registry.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if .venv/bin/python -m pip install --quiet --disable-pip-version-check uv >/dev/null 2>&1 \
    && .venv/bin/uv pip install --quiet --python .venv/bin/python -e '.[test]'; then
  exit 0
fi
echo "setup: uv unavailable or failed; installing with pip" >&2
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'

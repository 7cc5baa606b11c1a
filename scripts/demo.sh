#!/usr/bin/env bash
# The demo command (README): set up a virtualenv with shoal, then build the demo lakehouse.
#   bash scripts/demo.sh [--dir DIR]       (default: .shoal-demo in the repository)
# Needs only Python >= 3.11 and PyPI: no broker, database or object store (embedded defaults).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
VENV="$REPO/.venv"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import shoal, deltalake, duckdb, confluent_kafka" 2>/dev/null \
    || [ pyproject.toml -nt "$VENV/.shoal-installed" ]; then
    echo "== installing shoal into $VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e ".[notebook]"
    touch "$VENV/.shoal-installed"
fi
if [ "$#" -eq 0 ]; then
    set -- --dir "$REPO/.shoal-demo"
fi
exec "$VENV/bin/shoal" demo "$@"

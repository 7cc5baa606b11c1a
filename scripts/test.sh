#!/usr/bin/env bash
# The test command (README, CI): set up the machine, lint, type-check, then every test.
#   bash scripts/test.sh [pytest args...]      e.g. bash scripts/test.sh -k kafka -x
# Exits non-zero if any step fails; "no tests ran" (pytest exit 5) is a failure too.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
VENV="$REPO/.venv"
export PATH="$VENV/bin:$PATH"
export PYTHONDONTWRITEBYTECODE=1

bash scripts/bootstrap.sh || { echo "test.sh: bootstrap failed" >&2; exit 1; }

failed=()
step() { # step NAME CMD...
    local name=$1 start=$SECONDS
    shift
    echo "== $name"
    if "$@"; then
        echo "== $name ok ($((SECONDS - start)) s)"
    else
        echo "== $name FAILED (exit $?)"
        failed+=("$name")
    fi
}

step "ruff check" "$VENV/bin/ruff" check --output-format=concise
step "mypy" "$VENV/bin/mypy"
step "import contracts (stage order, no cycles)" "$VENV/bin/lint-imports"

# Whole-suite guard well under CI's limit; SIGTERM lets the fixtures stop their services.
budget="${SHOAL_TEST_BUDGET_S:-1680}"
echo "== pytest"
start=$SECONDS
timeout --signal=TERM --kill-after=60 "$budget" "$VENV/bin/python" -m pytest -q -ra --durations=15 "$@"
rc=$?
case $rc in
0) echo "== pytest ok ($((SECONDS - start)) s)" ;;
5) echo "== pytest FAILED: no tests were collected/run (exit 5)"; failed+=(pytest) ;;
124) echo "== pytest FAILED: exceeded ${budget} s"; failed+=(pytest) ;;
*) echo "== pytest FAILED (exit $rc)"; failed+=(pytest) ;;
esac

if ((${#failed[@]})); then
    echo "test.sh: FAILED: ${failed[*]}"
    exit 1
fi
echo "test.sh: all passed"

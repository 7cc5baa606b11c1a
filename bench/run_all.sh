#!/usr/bin/env bash
# Run every benchmark with its quick settings (figures in docs/benchmarks.md use the reference
# settings quoted there). Each benchmark measures its baseline in the same run and prints JSON.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=.venv/bin/python
echo "== decode and generators"; "$PY" bench/bench_decode.py --events 100000 --repeats 3
echo "== ingest (one worker vs bare consumer)"; "$PY" bench/bench_ingest.py --events 200000 --broker noida

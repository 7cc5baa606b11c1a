#!/usr/bin/env bash
# Run every benchmark with its quick settings (figures in docs/benchmarks.md use the reference
# settings quoted there). Each benchmark measures its baseline in the same run and prints JSON.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=.venv/bin/python
echo "== decode and generators"; "$PY" bench/bench_decode.py --events 100000 --repeats 3
echo "== ingest (one worker vs bare consumer)"; "$PY" bench/bench_ingest.py --events 200000 --broker noida
echo "== billing freshness"; "$PY" bench/bench_freshness.py --rate 5000 --seconds 20 --users 5000
echo "== billing refresh vs month so far"; "$PY" bench/bench_refresh_scaling.py --users 1000 --history-hours 24 168 --cycles 3
echo "== remote_write"; "$PY" bench/bench_remote_write.py --samples 1000000
echo "== scrape 1,000 targets"; "$PY" bench/bench_scrape.py --rounds 2
echo "== 30-day rack power rollup"; "$PY" bench/bench_power_rollup.py --days 7 --repeats 2 --cold-runs 1
echo "== logs: index rate and search vs ILIKE"; "$PY" bench/bench_logs.py --lines 200000 --chunk 50000 --increment 20000 --repeat 3 --dir /tmp/shoal-bench-logs-quick

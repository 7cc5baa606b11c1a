"""Fleet-scale refresh cost of the streaming detectors: N series, one new sample each every 5 minutes.

    .venv/bin/python bench/bench_detect_fleet.py [--series 10000] [--history-days 2] [--refreshes 4]

A synthetic fleet of ``--series`` PDU outlet power series (a daily profile plus noise) with
``--history-days`` of 5-minute samples is written to a local lake; both runner models are built
fully once, then ``--refreshes`` times a 5-minute batch lands (one sample per series) and each model is
refreshed incrementally, alternating which goes first:
- ``ew``: ``infra.stream_ew`` (ADR 0036): continues each series from its state row;
- ``window`` (baseline): ``infra.stream_alarms`` (ADR 0014): rescores each series' lookback
  (``StreamConfig.lookback_steps`` samples, capped by the history) with the new sample.
Reports per model the median wall and process CPU seconds of an incremental refresh and the
same-run ratio; prints one JSON object. The machine is shared: read the ratio, quote ``uptime``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from shoal.lake import Lake
from shoal.models import ModelRunner
from shoal.sources.prometheus.tables import (
    SAMPLES,
    SAMPLES_SCHEMA,
    SERIES,
    SERIES_SCHEMA,
    ensure_metrics_tables,
)
from shoal.usecases.infra.ew_models import ew_models
from shoal.usecases.infra.models import stream_models

STEP = timedelta(minutes=5)
START = datetime(2026, 1, 5, tzinfo=UTC)


def _series(n: int) -> pa.Table:
    labels = [
        [("pdu", f"pdu{i // 48}"), ("phase", str(i % 3)), ("outlet", str(i % 48)), ("host", f"h{i}")]
        for i in range(n)
    ]
    return pa.table(
        {
            "series_id": pa.array(np.arange(1, n + 1), pa.int64()),
            "metric": ["pdu_outlet_power_watts"] * n,
            "labels": pa.array(labels, SERIES_SCHEMA.field("labels").type),
            "first_seen": pa.array([START] * n, SERIES_SCHEMA.field("first_seen").type),
        },
        schema=SERIES_SCHEMA,
    )


def _samples(n: int, first_step: int, steps: int, rng: np.random.Generator) -> pa.Table:
    k = np.arange(first_step, first_step + steps)
    base = 200 + 50 * np.sin(2 * np.pi * k / 288)
    values = base[None, :] + rng.normal(0, 5, size=(n, steps))
    ts = [START + STEP * int(i) for i in k]
    return pa.table(
        {
            "series_id": pa.array(np.repeat(np.arange(1, n + 1), steps), pa.int64()),
            "ts": pa.array(ts * n, SAMPLES_SCHEMA.field("ts").type),
            "value": values.reshape(-1),
            "day": pa.array([t.date() for t in ts] * n, pa.date32()),
        },
        schema=SAMPLES_SCHEMA,
    )


def _timed(runner: ModelRunner) -> tuple[float, float, str]:
    w, c = time.perf_counter(), time.process_time()
    (res,) = runner.refresh()
    return time.perf_counter() - w, time.process_time() - c, res.mode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--history-days", type=int, default=2)
    ap.add_argument("--refreshes", type=int, default=4)
    args = ap.parse_args()
    rng = np.random.default_rng(5)
    n, hist = args.series, args.history_days * 288
    out: dict[str, Any] = {"series": n, "history_samples": n * hist, "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        lake = Lake(f"{tmp}/lake")
        ensure_metrics_tables(lake)
        lake.table(SERIES).append(_series(n))
        for day in range(args.history_days):  # one commit per day, as a scraper's compaction would
            lake.table(SAMPLES).append(_samples(n, day * 288, 288, rng))
        runs: dict[str, list[tuple[float, float, str]]] = {"ew": [], "window": []}
        with ModelRunner(lake, ew_models()) as ew, ModelRunner(lake, stream_models()) as window:
            runners = {"ew": ew, "window": window}
            for name, runner in runners.items():
                w, _cpu, _ = _timed(runner)
                out[f"{name}_full_wall_s"] = round(w, 2)
            for i in range(args.refreshes):
                lake.table(SAMPLES).append(_samples(n, hist + i, 1, rng))
                order = ["ew", "window"] if i % 2 == 0 else ["window", "ew"]  # alternate A/B
                for name in order:
                    runs[name].append(_timed(runners[name]))
        for name, rs in runs.items():
            assert all(r[2] == "incremental" for r in rs), rs
            out[name] = {
                "incremental_wall_s": round(statistics.median(r[0] for r in rs), 3),
                "incremental_cpu_s": round(statistics.median(r[1] for r in rs), 3),
                "new_samples": n,
            }
        out["ratio_window_vs_ew_cpu"] = round(
            out["window"]["incremental_cpu_s"] / out["ew"]["incremental_cpu_s"], 2
        )
        out["ratio_window_vs_ew_wall"] = round(
            out["window"]["incremental_wall_s"] / out["ew"]["incremental_wall_s"], 2
        )
    out["load_after"] = os.getloadavg()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

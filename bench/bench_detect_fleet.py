"""Fleet-scale refresh cost of the streaming detectors: N series, one new sample each every 5 minutes.

    .venv/bin/python bench/bench_detect_fleet.py [--series 10000] [--history-days 2] [--refreshes 4]

A synthetic fleet of ``--series`` PDU outlet power series (a daily profile plus noise) with
``--history-days`` of 5-minute samples is written to a local lake; both runner models are built
fully once, then ``--refreshes`` times a 5-minute batch lands (one sample per series) and each model is
refreshed incrementally, rotating which goes first:
- ``ew``: ``infra.stream_ew`` (ADR 0036): continues each series from its state row;
- ``window`` (baseline): the trailing-window detector's runner model (``infra.stream_alarms``,
  ADR 0014, retired from the product in favour of ``ew``; rebuilt here by ``window_model``): rescores
  each series' lookback (``StreamConfig.lookback_steps`` samples, capped by the history) with the new
  sample;
- ``sql_temporal`` (baseline, the issue's): the SQL temporal detector from before issue 16
  (``anomalies.temporal_anomalies``) has no incremental form, so keeping up means rerunning it over the
  history each cycle; it is timed in the same rotation, over the history and the batches landed so far.
Reports per arm the median wall and process CPU seconds of a cycle, the samples it scored per wall
second (series x samples: the new batch for ``ew`` and ``window``, the whole history for
``sql_temporal``) and same-run ratios; prints one JSON object. The machine is shared: read the
ratios, quote ``uptime`` (the load average is printed before and after).
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
from shoal.models import Model, ModelRunner
from shoal.query.engine import connect_lake
from shoal.sources.prometheus.tables import (
    SAMPLES,
    SAMPLES_SCHEMA,
    SERIES,
    SERIES_SCHEMA,
    ensure_metrics_tables,
)
from shoal.usecases.infra.anomalies import ENTITY_SQL, LEVEL_SQL, temporal_anomalies
from shoal.usecases.infra.ew_models import STEP_MINUTES, STREAM_METRICS, ew_models
from shoal.usecases.infra.streaming import StreamConfig, stream_sql

STEP = timedelta(minutes=5)
START = datetime(2026, 1, 5, tzinfo=UTC)
WINDOW = StreamConfig(abs_floor=1e-6, rel_floor=0.03)  # the retired model's fleet configuration
_OUTPUT = """
SELECT x.series AS series_id, x.ts, {entity} AS entity, {level} AS level, se.metric, x.value,
       x.baseline, x.dev AS deviation, x.z, x.score, x.alarm
FROM ({detector}) AS x JOIN metrics.series AS se ON se.series_id = x.series{join}
WHERE x.hot{scope}
"""


def window_model(cfg: StreamConfig = WINDOW) -> Model:
    """The retired ``infra.stream_alarms`` as it ran: incremental per series, reading each touched
    series' ``lookback_steps`` samples before its first new one (history pruned at 3x that in time)."""
    metrics = ", ".join(f"'{m}'" for m in STREAM_METRICS)
    full = f"""
        SELECT sa.series_id AS series, sa.ts, sa.value
        FROM metrics.samples AS sa JOIN metrics.series AS se USING (series_id)
        WHERE se.metric IN ({metrics})"""
    lookback = cfg.lookback_steps
    prune = lookback * STEP_MINUTES * 3
    touched = f"""
        SELECT sa.series_id AS series, sa.ts, sa.value
        FROM metrics.samples AS sa
        JOIN metrics.series AS se USING (series_id)
        JOIN __shoal_touched AS t USING (series_id)
        WHERE se.metric IN ({metrics})
          AND (t.__shoal_from IS NULL OR sa.ts >= t.__shoal_from - INTERVAL {prune} MINUTE)
          AND sa.ts >= (SELECT min(__shoal_from) FROM __shoal_touched) - INTERVAL {prune} MINUTE
        QUALIFY t.__shoal_from IS NULL OR sa.ts >= t.__shoal_from
            OR row_number() OVER (PARTITION BY sa.series_id, sa.ts < t.__shoal_from ORDER BY sa.ts DESC)
               <= {lookback}"""
    return Model(
        name="infra.stream_alarms",
        sql=_OUTPUT.format(
            entity=ENTITY_SQL, level=LEVEL_SQL, detector=stream_sql(full, cfg), join="", scope=""
        ),
        unique_key=("series_id", "ts"),
        incremental_by=("series_id",),
        restate_from="ts",
        incremental_sql=_OUTPUT.format(
            entity=ENTITY_SQL,
            level=LEVEL_SQL,
            detector=stream_sql(touched, cfg),
            join="\nJOIN __shoal_touched AS t ON t.series_id = x.series",
            scope="\n  AND (t.__shoal_from IS NULL OR x.ts >= t.__shoal_from)",
        ),
        upstream=("metrics.samples",),
        description="the retired trailing-window detector (benchmark baseline)",
        owner="infra",
    )


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


def _timed_temporal(lake: Lake) -> tuple[float, float, str]:
    """One pass of the batch detector over everything landed (a fresh connection sees the new batch)."""
    w, c = time.perf_counter(), time.process_time()
    with connect_lake(lake) as con:
        temporal_anomalies(con)
    return time.perf_counter() - w, time.process_time() - c, "full history"


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
        arms = ["ew", "window", "sql_temporal"]
        runs: dict[str, list[tuple[float, float, str]]] = {a: [] for a in arms}
        with ModelRunner(lake, ew_models()) as ew, ModelRunner(lake, [window_model()]) as window:
            runners = {"ew": ew, "window": window}
            for name, runner in runners.items():
                w, _cpu, _ = _timed(runner)
                out[f"{name}_full_wall_s"] = round(w, 2)
                out[f"{name}_full_samples_per_s"] = round(n * hist / w)
            for i in range(args.refreshes):
                lake.table(SAMPLES).append(_samples(n, hist + i, 1, rng))
                order = arms[i % 3 :] + arms[: i % 3]  # rotate which arm runs first
                for name in order:
                    run = _timed_temporal(lake) if name == "sql_temporal" else _timed(runners[name])
                    runs[name].append(run)
        # samples each arm scores in a cycle: the new batch, or (the batch detector) all there is
        scored = {"ew": n, "window": n, "sql_temporal": n * (hist + (args.refreshes + 1) / 2)}
        for name, rs in runs.items():
            assert name == "sql_temporal" or all(r[2] == "incremental" for r in rs), rs
            wall = statistics.median(r[0] for r in rs)
            out[name] = {
                "cycle_wall_s": round(wall, 3),
                "cycle_cpu_s": round(statistics.median(r[1] for r in rs), 3),
                "samples_scored": round(scored[name]),
                "samples_per_s": round(scored[name] / wall),
            }
        for base in ("window", "sql_temporal"):
            for what in ("cpu", "wall"):
                out[f"ratio_{base}_vs_ew_{what}"] = round(
                    out[base][f"cycle_{what}_s"] / out["ew"][f"cycle_{what}_s"], 2
                )
    out["load_after"] = os.getloadavg()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

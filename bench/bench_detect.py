"""Streaming detector throughput (series x samples per second) against the SQL temporal detector.

    .venv/bin/python bench/bench_detect.py [--racks 6] [--hosts 10] [--days 10] [--repeats 3]

A simulated fleet's PDU history (``--days`` of 5-minute samples) is written to a local lake, then:
- ``sql_temporal``: the detector before issue 16 (``anomalies.temporal_anomalies``) over the whole
  history, the baseline;
- ``stream_full``: ``infra.stream_ew`` (the compact-state detector, ADR 0036) rebuilt by the model
  runner over the same history (detector + writing the hot samples and state rows);
- ``stream_incremental``: one more day lands, the runner refreshes incrementally from each series'
  state row (repeated with a new day each time): the samples scored are the new day's.
(Before the fourth session this script measured the retired window model, ``infra.stream_alarms``.)

Throughput = scored PDU power/current samples / wall seconds (median of ``--repeats``), CPU seconds
beside (DuckDB runs several threads; the machine is shared, so wall time includes the neighbours).
Prints one JSON object, with the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from shoal.lake import Lake
from shoal.models import ModelRunner
from shoal.query.engine import connect_lake
from shoal.sources.prometheus.tables import SAMPLES, SERIES, ensure_metrics_tables
from shoal.usecases.infra.anomalies import temporal_anomalies
from shoal.usecases.infra.ew_models import STREAM_METRICS, ew_models
from shoal.usecases.infra.history import Fleet
from shoal.usecases.infra.topology import TopologyConfig


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def _stream_samples(batch: pa.Table, ids: pa.Array) -> int:
    return int(pc.sum(pc.is_in(batch.column("series_id"), value_set=ids)).as_py())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--racks", type=int, default=6)
    ap.add_argument("--hosts", type=int, default=10)
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cfg = TopologyConfig(
        seed=11,
        datacenters_per_region=1,
        podlets_per_datacenter=1,
        racks_per_podlet=args.racks,
        hypervisors_per_rack=args.hosts,
        disks_per_hypervisor=1,
    )
    fleet = Fleet.build(cfg, start=date(2026, 1, 5), days=args.days + args.repeats, seed=11)
    series = fleet.series_table()
    ids = series.filter(pc.is_in(series.column("metric"), value_set=pa.array(STREAM_METRICS))).column(
        "series_id"
    )
    days = [b for _, b in fleet.iter_days()]
    out: dict[str, Any] = {
        "series": len(ids),
        "days": args.days,
        "repeats": args.repeats,
        "load_before": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        lake = Lake(f"{tmp}/lake")
        ensure_metrics_tables(lake)
        lake.table(SERIES).append(series)
        for b in days[: args.days]:
            lake.table(SAMPLES).append(b)
        history = sum(_stream_samples(b, ids) for b in days[: args.days])
        out["history_samples"] = history

        base = []
        with connect_lake(lake) as con:
            for _ in range(args.repeats):
                base.append(timed(lambda: temporal_anomalies(con)))
        full = []
        with ModelRunner(lake, ew_models()) as runner:
            for _ in range(args.repeats):
                full.append(timed(lambda: runner.refresh(full=True)))
            inc = []
            for b in days[args.days :]:
                lake.table(SAMPLES).append(b)
                inc.append((*timed(runner.refresh), _stream_samples(b, ids)))
        for name, runs, n in (
            ("sql_temporal", base, history),
            ("stream_full", full, history),
        ):
            wall = statistics.median(r[0] for r in runs)
            out[name] = {
                "wall_s": round(wall, 2),
                "cpu_s": round(statistics.median(r[1] for r in runs), 2),
                "samples_per_s": round(n / wall),
            }
        wall = statistics.median(r[0] for r in inc)
        new = statistics.median(r[2] for r in inc)
        out["stream_incremental"] = {
            "new_samples": new,
            "wall_s": round(wall, 2),
            "cpu_s": round(statistics.median(r[1] for r in inc), 2),
            "samples_per_s": round(new / wall),
        }
        out["ratio_stream_full_vs_sql"] = round(
            out["stream_full"]["samples_per_s"] / out["sql_temporal"]["samples_per_s"], 2
        )
    out["load_after"] = os.getloadavg()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

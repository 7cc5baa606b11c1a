"""What keeping ``infra.anomalies`` fresh costs per 5-minute cycle: by hand (before) or as models (after).

    .venv/bin/python bench/bench_anomalies_model.py [--podlets 2 --racks 4 --hosts 6] [--days 3] [--cycles 4]

A simulated fleet (the demo's topology by default: ``--podlets 2 --racks 4 --hosts 6``, 672 series)
with ``--days`` of 5-minute history is written to a local lake and ``infra.stream_ew`` is built; then
``--cycles`` times one 5-minute batch of the next day lands, ``infra.stream_ew`` is refreshed (not
timed: both arms need it), and the two arms run in alternating order:
- ``by_hand`` (before, what the demo step did): ``ew_episodes`` plus the rack, phase and disk peer
  detectors over every sample in ``metrics.samples``, upserted with ``write_anomalies``;
- ``models`` (after, ADR 0045): a runner refresh of ``infra.peer_inputs`` (rereads the day the batch
  landed in) and ``infra.anomalies`` (rebuilt from ``infra.stream_ew``'s hot rows and the inputs).
Reports per arm the median wall and process CPU seconds of a cycle and the same-run ratio; the first
refresh of the models (a full build over the history) is reported apart. Prints one JSON object; the
machine is shared: read the ratio and the load average printed before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from shoal.lake import Lake
from shoal.models import ModelRunner
from shoal.query.engine import connect_lake
from shoal.sources.prometheus.tables import SAMPLES, SERIES, ensure_metrics_tables
from shoal.usecases.infra.anomalies import (
    disk_peer_anomalies,
    phase_anomalies,
    rack_peer_anomalies,
    write_anomalies,
)
from shoal.usecases.infra.anomaly_models import anomaly_models
from shoal.usecases.infra.ew_models import ew_episodes, ew_models
from shoal.usecases.infra.history import Fleet
from shoal.usecases.infra.topology import TopologyConfig


def _by_hand(lake: Lake) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    with connect_lake(lake) as con:  # a fresh connection sees the new batch
        parts = [ew_episodes(con)] + [
            fn(con, None, None, None) for fn in (rack_peer_anomalies, phase_anomalies, disk_peer_anomalies)
        ]
    write_anomalies(lake, pa.concat_tables(parts))
    return time.perf_counter() - w, time.process_time() - c


def _models(runner: ModelRunner) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    results = runner.refresh()
    assert {r.model: r.mode for r in results}["infra.peer_inputs"] == "incremental", results
    return time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--podlets", type=int, default=2)
    ap.add_argument("--racks", type=int, default=4)
    ap.add_argument("--hosts", type=int, default=6)
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--cycles", type=int, default=4)
    args = ap.parse_args()
    cfg = TopologyConfig(
        seed=7,
        regions=1,
        datacenters_per_region=1,
        podlets_per_datacenter=args.podlets,
        racks_per_podlet=args.racks,
        hypervisors_per_rack=args.hosts,
        disks_per_hypervisor=2,
    )
    fleet = Fleet.build(cfg, start=date(2026, 1, 5), days=args.days + 1, seed=7)
    series = fleet.series_table()
    out: dict[str, Any] = {"series": series.num_rows, "load_before": os.getloadavg()}
    days = [batch for _, batch in fleet.iter_days()]
    history, live = days[:-1], days[-1]
    out["history_samples"] = sum(d.num_rows for d in history)
    steps = pc.unique(live.column("ts")).sort()
    with tempfile.TemporaryDirectory() as tmp:
        lake = Lake(f"{tmp}/lake")
        ensure_metrics_tables(lake)
        lake.table(SERIES).append(series)
        for day in history:
            lake.table(SAMPLES).append(day)
        runs: dict[str, list[tuple[float, float]]] = {"by_hand": [], "models": []}
        with ModelRunner(lake, ew_models()) as ew, ModelRunner(lake, anomaly_models()) as anomalies:
            ew.refresh()
            w = time.perf_counter()
            anomalies.refresh()
            out["models_first_build_wall_s"] = round(time.perf_counter() - w, 2)
            for i in range(args.cycles):
                batch = live.filter(pc.equal(live.column("ts"), steps[i]))
                lake.table(SAMPLES).append(batch)
                ew.refresh()
                order = ["by_hand", "models"] if i % 2 == 0 else ["models", "by_hand"]
                for arm in order:
                    runs[arm].append(_by_hand(lake) if arm == "by_hand" else _models(anomalies))
    for arm, rs in runs.items():
        out[arm] = {
            "cycle_wall_s": round(statistics.median(r[0] for r in rs), 3),
            "cycle_cpu_s": round(statistics.median(r[1] for r in rs), 3),
        }
    for what in ("wall", "cpu"):
        out[f"ratio_by_hand_vs_models_{what}"] = round(
            out["by_hand"][f"cycle_{what}_s"] / out["models"][f"cycle_{what}_s"], 2
        )
    out["load_after"] = os.getloadavg()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

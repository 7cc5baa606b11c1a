"""Refresh cost of the hypervisor profile models (profiles, k-means clusters, headroom, placement).

    .venv/bin/python bench/bench_profiles.py                          # 8 racks x 6 hosts, 7 days
    .venv/bin/python bench/bench_profiles.py --racks 12 --hosts 12     # 144 hosts

Setup (not timed): ``write_history`` writes a mixed-workload fleet (``MIXED_WORKLOADS``: daytime,
nightly-batch, steady, memory-heavy) of one datacenter and one podlet into a fresh local lake. Then
``--repeats`` full refreshes of the five models of ``shoal.usecases.infra.profiles`` on one runner
(the first one apart: it warms the connection): per model the median seconds (wall and process CPU),
the clusters found and their adjusted Rand index against the planted workload types. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from collections import Counter
from datetime import date
from math import comb
from pathlib import Path
from typing import Any

from shoal.lake import Lake
from shoal.models import ModelRunner
from shoal.usecases.infra.history import Fleet, write_history
from shoal.usecases.infra.profiles import HYPERVISOR_CLASSES, models
from shoal.usecases.infra.topology import MIXED_WORKLOADS, WORKLOADS, TopologyConfig


def adjusted_rand(a: list[str], b: list[str]) -> float:
    pairs = sum(comb(c, 2) for c in Counter(zip(a, b, strict=True)).values())
    rows = sum(comb(c, 2) for c in Counter(a).values())
    cols = sum(comb(c, 2) for c in Counter(b).values())
    expected = rows * cols / comb(len(a), 2)
    return (pairs - expected) / ((rows + cols) / 2 - expected)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--racks", type=int, default=8)
    ap.add_argument("--hosts", type=int, default=6, help="hypervisors per rack")
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=404)
    args = ap.parse_args()
    cfg = TopologyConfig(
        seed=args.seed,
        datacenters_per_region=1,
        podlets_per_datacenter=1,
        racks_per_podlet=args.racks,
        hypervisors_per_rack=args.hosts,
        disks_per_hypervisor=1,
        workload_mix=MIXED_WORKLOADS,
    )
    fleet = Fleet.build(cfg, start=date(2026, 1, 5), days=args.days, seed=args.seed)
    root = Path(tempfile.mkdtemp(prefix="bench_profiles_"))
    try:
        lake = Lake(str(root / "lake"))
        hist = write_history(lake, fleet)
        times: dict[str, list[float]] = {}
        cpu: dict[str, list[float]] = {}
        with ModelRunner(lake, models()) as runner:
            runner.refresh(full=True)  # warm-up
            for _ in range(args.repeats):
                for m in runner.models:
                    w0, c0 = time.perf_counter(), time.process_time()
                    runner.refresh([m.name], full=True)
                    times.setdefault(m.name, []).append(time.perf_counter() - w0)
                    cpu.setdefault(m.name, []).append(time.process_time() - c0)
        classes = lake.table(HYPERVISOR_CLASSES).to_arrow().to_pylist()
        topo = fleet.topology
        truth = {topo.host_id[h]: WORKLOADS[int(w)] for h, w in enumerate(topo.host_workload)}
        out: dict[str, Any] = {
            "hosts": topo.n_hosts,
            "racks": topo.n_racks,
            "days": args.days,
            "samples": hist.samples,
            "repeats": args.repeats,
            "median_s": {k: round(statistics.median(v), 3) for k, v in times.items()},
            "median_cpu_s": {k: round(statistics.median(v), 3) for k, v in cpu.items()},
            "total_median_s": round(sum(statistics.median(v) for v in times.values()), 3),
            "clusters": classes[0]["clusters"],
            "silhouette": round(classes[0]["silhouette"], 3),
            "ari": round(
                adjusted_rand([c["profile_class"] for c in classes], [truth[c["host"]] for c in classes]), 3
            ),
            "load_avg": os.getloadavg(),
        }
        print(json.dumps(out, indent=1))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

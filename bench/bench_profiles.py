"""Refresh cost of the hypervisor profile models (profiles, k-means clusters, headroom, placement).

    .venv/bin/python bench/bench_profiles.py                          # 8 racks x 6 hosts, 7 days
    .venv/bin/python bench/bench_profiles.py --racks 12 --hosts 12     # 144 hosts

Setup (not timed): ``write_history`` writes a mixed-workload fleet (``MIXED_WORKLOADS``: daytime,
nightly-batch, steady, memory-heavy) of one datacenter and one podlet into a fresh local lake. Then
``--repeats`` full refreshes of the five models of ``shoal.usecases.infra.profiles`` on one runner
(the first one apart: it warms the connection): per model the median seconds (wall and process CPU),
the clusters found and their adjusted Rand index against the planted workload types. Prints JSON.

    .venv/bin/python bench/bench_profiles.py --synthetic-hosts 2500 --repeats 2

With ``--synthetic-hosts N``, no lake: ``infra.hypervisor_profile`` of N hosts of a mixed fleet is
taken from one simulated day's arrays (hourly means) and the clustering SQL runs on it with the
silhouette on ``SILHOUETTE_SAMPLE`` hosts (``sampled``) and on every host (``full``), interleaved, in
one DuckDB connection: per arm the median process CPU and wall seconds, the k chosen and the
silhouette, and the CPU ratio full / sampled.
"""

from __future__ import annotations

import argparse
import json
import math
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

import duckdb
import numpy as np
import pyarrow as pa

from shoal.lake import Lake
from shoal.models import ModelRunner
from shoal.usecases.infra.history import Fleet, write_history
from shoal.usecases.infra.profiles import (
    HYPERVISOR_CLASSES,
    HYPERVISOR_PROFILE,
    SILHOUETTE_SAMPLE,
    classes_sql,
    models,
)
from shoal.usecases.infra.simulator import FleetSimulator
from shoal.usecases.infra.topology import MIXED_WORKLOADS, WORKLOADS, TopologyConfig, build_topology


def adjusted_rand(a: list[str], b: list[str]) -> float:
    pairs = sum(comb(c, 2) for c in Counter(zip(a, b, strict=True)).values())
    rows = sum(comb(c, 2) for c in Counter(a).values())
    cols = sum(comb(c, 2) for c in Counter(b).values())
    expected = rows * cols / comb(len(a), 2)
    return (pairs - expected) / ((rows + cols) / 2 - expected)


def simulated_profiles(n_hosts: int, seed: int) -> pa.Table:
    """``infra.hypervisor_profile`` of a mixed-workload fleet of ``n_hosts`` hosts (40 per rack) from
    one simulated day, hourly means straight from the simulator's arrays (no lake, no samples)."""
    racks = max(1, math.ceil(n_hosts / 40))
    cfg = TopologyConfig(
        seed=seed,
        datacenters_per_region=1,
        podlets_per_datacenter=1,
        racks_per_podlet=racks,
        hypervisors_per_rack=40,
        disks_per_hypervisor=1,
        workload_mix=MIXED_WORKLOADS,
    )
    topo = build_topology(cfg)
    block = FleetSimulator(topo, seed=seed).day((date(2026, 1, 5) - date(1970, 1, 1)).days)
    keep = np.arange(n_hosts)

    def hourly(a: np.ndarray) -> np.ndarray:
        return np.asarray(a[keep].reshape(n_hosts, 24, -1).mean(axis=2).ravel())

    used, total = hourly(block.host_mem_used), hourly(block.host_mem_total)
    return pa.table(
        {
            "host": np.repeat(np.asarray(topo.host_id)[keep], 24),
            "rack": np.repeat([topo.rack_id[int(r)] for r in topo.host_rack[keep]], 24),
            "hour": pa.array(np.tile(np.arange(24), n_hosts), pa.int32()),
            "cpu_ratio": hourly(block.host_cpu_ratio),
            "power_w": hourly(block.host_power_w),
            "mem_used_bytes": used,
            "mem_total_bytes": total,
            "mem_ratio": used / total,
            "samples": pa.array(np.full(n_hosts * 24, 12), pa.int64()),
        }
    )


def synthetic(n_hosts: int, repeats: int, seed: int, only: str = "") -> dict[str, Any]:
    """The clustering SQL with a sampled and a full silhouette on ``n_hosts`` synthetic profiles."""
    con = duckdb.connect()
    con.execute("CREATE SCHEMA infra")
    con.register("__profiles", simulated_profiles(n_hosts, seed))
    con.execute(f"CREATE TABLE {HYPERVISOR_PROFILE} AS SELECT * FROM __profiles")
    arms = {"sampled": classes_sql(SILHOUETTE_SAMPLE), "full": classes_sql(max(n_hosts, 2))}
    if only:  # the full arm past a few thousand hosts takes minutes and gigabytes
        arms = {only: arms[only]}
    wall: dict[str, list[float]] = {a: [] for a in arms}
    cpu: dict[str, list[float]] = {a: [] for a in arms}
    found: dict[str, tuple[int, float]] = {}
    for _ in range(repeats):
        for arm, sql in arms.items():  # interleaved: both arms see the same machine load
            w0, c0 = time.perf_counter(), time.process_time()
            k, sil = con.sql(f"SELECT any_value(clusters), any_value(silhouette) FROM ({sql})").fetchone()  # type: ignore[misc]
            wall[arm].append(time.perf_counter() - w0)
            cpu[arm].append(time.process_time() - c0)
            found[arm] = (int(k), round(float(sil), 4))
    med_cpu = {a: round(statistics.median(v), 2) for a, v in cpu.items()}
    return {
        "hosts": n_hosts,
        "silhouette_sample": min(SILHOUETTE_SAMPLE, n_hosts),
        "pairs": {"sampled": math.perm(min(SILHOUETTE_SAMPLE, n_hosts), 2), "full": math.perm(n_hosts, 2)},
        "repeats": repeats,
        "median_cpu_s": med_cpu,
        "median_wall_s": {a: round(statistics.median(v), 2) for a, v in wall.items()},
        "k_silhouette": found,
        "cpu_ratio_full_over_sampled": round(med_cpu["full"] / med_cpu["sampled"], 2)
        if len(arms) == 2
        else None,
        "load_avg": os.getloadavg(),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--racks", type=int, default=8)
    ap.add_argument("--hosts", type=int, default=6, help="hypervisors per rack")
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=404)
    ap.add_argument("--synthetic-hosts", type=int, default=0, help="time the clustering SQL alone")
    ap.add_argument("--only", choices=("sampled", "full"), default="", help="one arm of --synthetic-hosts")
    args = ap.parse_args()
    if args.synthetic_hosts:
        print(json.dumps(synthetic(args.synthetic_hosts, args.repeats, args.seed, args.only), indent=1))
        return
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

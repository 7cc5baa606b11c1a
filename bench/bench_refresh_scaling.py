"""Billing fast-path refresh cost against how much of the month is already in the lake.

    .venv/bin/python bench/bench_refresh_scaling.py                       # the reference run
    .venv/bin/python bench/bench_refresh_scaling.py --history-hours 24 --cycles 3   # quick
    .venv/bin/python bench/bench_refresh_scaling.py --history-hours 24 --ab-pipeline  # ADR 0020 A/B
    .venv/bin/python bench/bench_refresh_scaling.py --users 20000 --batch 20000 --ab-hold  # ADR 0038
    # a cycle's fixed cost and its cost per event (a fit over batch sizes), holding as a watcher does
    .venv/bin/python bench/bench_refresh_scaling.py --users 20000 --history-hours 24 --hold \\
        --batch 1300 13000 52000

A near-real-time refresh should cost in proportion to what changed, not to the month so far. For
each ``--history-hours`` value (hours of the month already billed), on a fresh local lake:

1. setup (not timed): a simulated customer base (``--users``, with its late and duplicate events)
   is written to ``billing.usage_events`` up to that hour (the Arrow shape the ingest engine lands)
   and every billing model is built;
2. cycles: the stream goes on in batches of ``--batch`` events (late ones included); after each
   batch the fast path (``billing.charges_hourly`` with its state → ``billing.revenue_hourly`` →
   ``billing.run_rate``) is refreshed incrementally by one ``ModelRunner``, as a watcher would;
3. baseline, same lake and connection: a full rebuild of the same models (what a refresh that
   recomputes everything costs at that point of the month).

``--last-month-late`` makes one event of each cycle a late delivery for the month before, whose
slice is restated from a point far before the others' (the case per-group restate bounds are for).

``--hold`` makes the runner hold ``billing.invoice_lines`` between its commits (every 10 s), as a
watcher does (ADR 0038). With several ``--batch`` sizes, each history size is run once per size and
a least-squares line through the median cycles splits a cycle's CPU into a fixed cost per cycle and
a marginal cost per million events (``fit``): the first is what fewer, larger cycles amortise, the
second is what no cycle cadence can.

Prints one JSON object: per history size, the median incremental cycle (wall and process CPU
seconds, and per model) and the full rebuild, each with its ratio. Run it from another checkout
(``PYTHONPATH=<checkout>/src``) to compare versions of the runner on the same machine.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "unit"))  # the ingest-shaped Arrow table of the billing tests

from test_billing_models import to_arrow  # noqa: E402

from shoal.lake import Lake  # noqa: E402
from shoal.models import ModelRunner  # noqa: E402
from shoal.usecases.billing import BillingSimulator, models  # noqa: E402

FAST_PATH = {
    "billing.charges_hourly",
    "billing.invoice_lines",
    "billing.revenue_hourly",
    "billing.run_rate",
}


def run_one(
    work: Path,
    users: int,
    history_hours: int,
    batch: int,
    cycles: int,
    *,
    last_month_late: bool = False,
    ab_pipeline: bool = False,
    ab_hold: bool = False,
    hold: bool = False,
    fold: bool = False,
    profile: cProfile.Profile | None = None,
) -> dict[str, Any]:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    sim = BillingSimulator(7, start, days=history_hours // 24 + 2, users=users)
    stream = sim.events()
    cutoff = start.timestamp() + history_hours * 3600
    history = []
    for ev in stream:
        history.append(ev)
        if ev.billing_hour.timestamp() >= cutoff:
            break
    live = list(islice(stream, batch * cycles))
    if last_month_late:
        # one usage event per cycle for an hour of the month before (a late delivery across the
        # month boundary): its slice is restated from a point far before every other slice's
        live = [
            ev._replace(
                event_id=f"last-month-{i}",
                event_type="EVENT_TYPE_USAGE",
                billing_hour=(hour := start - timedelta(hours=1 + i // batch)),
                occurred_at=hour,
                billing_month=hour.strftime("%Y-%m"),
            )
            if i % batch == batch // 2
            else ev
            for i, ev in enumerate(live)
        ]
    table = to_arrow(history + live)
    # the demo pipeline's layout: partitioned by the day of billing_hour
    table = table.append_column("event_date", pc.cast(table["billing_hour"], pa.date32()))
    # with ab_pipeline, two lakes with the same history: on one the fast path runs as one pipeline
    # (handoffs and in-memory additive models, ADR 0020), on the other every model reads its input
    # back from Delta (the change feed and the tables); their cycles alternate, same batches
    # with ab_hold, the same two ways for a runner that holds invoice_lines in memory between its
    # commits (every 10 s, ADR 0038) against one that commits it every cycle (as before)
    variants = {"pipeline": True, "per_model": False} if ab_pipeline else {"pipeline": True}
    if ab_hold:
        variants = {"pipeline": True, "commit_every_cycle": True}
    lakes: dict[str, Lake] = {}
    sources = {}
    build_s = 0.0
    for v in variants:
        lake = lakes[v] = Lake(str(work / f"lake-{history_hours}h-{v}"))
        source = sources[v] = lake.create_table(
            "billing.usage_events", table.schema, partition_by=("event_date",)
        )
        source.append(table.slice(0, len(history)))
        t0 = time.perf_counter()
        with ModelRunner(lake, models()) as runner:
            runner.refresh()
        build_s = time.perf_counter() - t0
    fast = [m for m in models() if m.name in FAST_PATH]
    walls: dict[str, list[float]] = {v: [] for v in variants}
    cpus: dict[str, list[float]] = {v: [] for v in variants}
    per_model: dict[str, dict[str, list[float]]] = {v: {} for v in variants}
    folds = dict.fromkeys(variants, 0)
    runners = {
        v: ModelRunner(
            lakes[v], fast, handoff=on, arrange=on, hold=v == "pipeline" and (ab_hold or hold), fold=fold
        )
        for v, on in variants.items()
    }
    try:
        for runner in runners.values():
            runner.refresh()  # open handles and the connection, as a running watcher has them
        order = list(variants)
        for i in range(cycles * len(variants)):
            v = order[i % len(order)]
            runner = runners[v]
            sources[v].append(table.slice(len(history) + (i // len(order)) * batch, batch))
            c0, w0 = time.process_time(), time.perf_counter()
            if profile is not None and v == "pipeline":
                profile.enable()
            results = runner.refresh()
            if profile is not None:
                profile.disable()
            walls[v].append(time.perf_counter() - w0)
            cpus[v].append(time.process_time() - c0)
            # a small batch may change no revenue (e.g. only duplicates): its downstream is unchanged
            modes = {r.model: r.mode for r in results}
            assert modes["billing.charges_hourly"] == "incremental", modes
            assert all(
                m in ("incremental", "commit", "unchanged", "full", "fold") for r in results for m in [r.mode]
            )
            for r in results:
                if r.mode == "fold":  # a fold of small files committed at the cycle's start
                    folds[v] += 1
                    continue
                per_model[v].setdefault(r.model, []).append(r.seconds)
        if ab_hold:
            runners["pipeline"].commit_held()
        if ab_pipeline or ab_hold:  # both ways of refreshing arrive at the same rows
            for name in FAST_PATH:
                a, b = (runners[v].con.query_arrow(f"SELECT * FROM {name}") for v in variants)
                order_by = [(c, "ascending") for c in a.column_names]
                assert a.sort_by(order_by).equals(b.sort_by(order_by)), name
        # before the rebuild below rewrites them
        files = {v: {name: len(lakes[v].table(name).files()) for name in FAST_PATH} for v in variants}
        runner = runners[order[0]]
        c0, w0 = time.process_time(), time.perf_counter()
        runner.refresh(full=True)
        full_wall, full_cpu = time.perf_counter() - w0, time.process_time() - c0
    finally:
        for runner in runners.values():
            runner.close()
    out: dict[str, Any] = {
        "history_hours": history_hours,
        "history_events": len(history),
        "charges_rows": lakes["pipeline"].table("billing.charges_hourly").count(),
        "setup_build_s": round(build_s, 1),
    }
    for v in variants:
        wall, cpu = statistics.median(walls[v]), statistics.median(cpus[v])
        key = {"pipeline": "incremental_cycle", "per_model": "incremental_cycle_per_model"}.get(
            v, "incremental_cycle_committing_every_cycle"
        )
        out[key] = {
            "events": batch,
            "wall_s_median": round(wall, 3),
            "cpu_s_median": round(cpu, 3),
            "cpu_s_per_million_events": round(cpu / batch * 1e6, 1),
            "per_model_s_median": {k: round(statistics.median(x), 3) for k, x in per_model[v].items()},
            # whether cycles get dearer as the run goes on (each commit adds a file to every model
            # table; what a watcher reads grows with them until something compacts)
            "cpu_s_median_by_tenth": _by_tenth(cpus[v]),
            "model_files": files[v],
            "folds": folds[v],
        }
    if ab_hold:
        cpu_hold = statistics.median(cpus["pipeline"])
        cpu_commit = statistics.median(cpus["commit_every_cycle"])
        out["cpu_ratio_holding_vs_committing_every_cycle"] = round(cpu_hold / cpu_commit, 2)
    wall = statistics.median(walls["pipeline"])
    out["baseline_full_rebuild"] = {"wall_s": round(full_wall, 3), "cpu_s": round(full_cpu, 3)}
    out["full_over_incremental_wall"] = round(full_wall / wall, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=3_000)
    ap.add_argument("--history-hours", type=int, nargs="+", default=[24, 168, 504])
    ap.add_argument("--batch", type=int, nargs="+", default=[10_000], help="events per refresh cycle")
    ap.add_argument(
        "--hold",
        action="store_true",
        help="hold billing.invoice_lines in memory between commits (every 10 s), as a watcher does",
    )
    ap.add_argument("--cycles", type=int, default=5)
    ap.add_argument(
        "--fold",
        action="store_true",
        help="fold the small files the cycles' commits leave, as a watcher does (ADR 0053)",
    )
    ap.add_argument(
        "--last-month-late",
        action="store_true",
        help="one event of each cycle is for an hour of the month before (replacing a live one)",
    )
    ap.add_argument(
        "--ab-hold",
        action="store_true",
        help="alternate cycles with a runner that commits billing.invoice_lines every cycle instead "
        "of holding it in memory between commits (ADR 0038): --cycles of each",
    )
    ap.add_argument(
        "--ab-pipeline",
        action="store_true",
        help="alternate cycles with a runner that reads every model's input back from Delta (no "
        "handoffs, no in-memory additive models; ADR 0020): --cycles of each",
    )
    ap.add_argument(
        "--profile",
        type=int,
        metavar="N",
        default=0,
        help="profile the incremental cycles with cProfile (process CPU as its clock; it slows them, "
        "so read its shares, not the cycle figures) and print the N costliest functions to stderr",
    )
    args = ap.parse_args()
    profile = cProfile.Profile(time.process_time) if args.profile else None
    work = Path(tempfile.mkdtemp(prefix="shoal-bench-scaling-"))
    try:
        runs = [
            run_one(
                work,
                args.users,
                h,
                b,
                args.cycles,
                last_month_late=args.last_month_late,
                ab_pipeline=args.ab_pipeline,
                ab_hold=args.ab_hold,
                hold=args.hold,
                fold=args.fold,
                profile=profile,
            )
            for h in sorted(args.history_hours)
            for b in sorted(args.batch)
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if profile is not None:
        pstats.Stats(profile, stream=sys.stderr).sort_stats("cumulative").print_stats(args.profile)
    print(
        json.dumps(
            {
                "users": args.users,
                "last_month_late": args.last_month_late,
                "hold": args.hold,
                "fold": args.fold,
                "runs": runs,
                "fit": _fit(runs) if len(args.batch) > 1 else None,
                "cpus": os.cpu_count(),
                "loadavg_1m": os.getloadavg()[0],
            },
            indent=2,
        )
    )


def _by_tenth(values: list[float]) -> list[float]:
    """The median of each tenth of ``values`` in order (fewer parts with fewer than 10 values)."""
    parts = min(10, len(values))
    return [
        round(statistics.median(values[len(values) * i // parts : len(values) * (i + 1) // parts]), 3)
        for i in range(parts)
    ]


def _fit(runs: list[dict[str, Any]]) -> dict[int, dict[str, float]]:
    """Per history size: median cycle CPU = fixed + marginal x events (least squares)."""
    out = {}
    for h in sorted({r["history_hours"] for r in runs}):
        points = [r["incremental_cycle"] for r in runs if r["history_hours"] == h]
        slope, intercept = statistics.linear_regression(
            [p["events"] for p in points], [p["cpu_s_median"] for p in points]
        )
        out[h] = {
            "fixed_cpu_s_per_cycle": round(intercept, 3),
            "marginal_cpu_s_per_million": round(slope * 1e6, 1),
        }
    return out


if __name__ == "__main__":
    main()

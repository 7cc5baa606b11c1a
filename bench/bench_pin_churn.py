"""Pinned snapshots on a live lake: CPU per query when every table is committed to between queries.

    .venv/bin/python bench/bench_pin_churn.py                 # 8 tables, 30 rounds, 3 pairs
    .venv/bin/python bench/bench_pin_churn.py --tables 12 --rounds 50

The pattern of a dashboard poller or a model watcher: one connection has every table of a
namespace mounted, a pipeline and the models commit to all of them every second or two, and each
query reads one table. Two connections run alternately on the same lake in one process:

* ``shoal``: ``shoal.connect``'s default (pinned snapshots; a table that changed is scanned until
  it has been quiet for ``QUIET_S``, ADR 0021);
* ``scan``: every view a ``delta_scan`` (``pin_snapshots=False``), the baseline.

Then a quiet phase (no commits) runs the same query repeatedly, where pinning should pay.
Process CPU per query is reported (the work of re-pinning runs on this process's threads, and CPU
time holds up on a busy machine far better than wall time). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from shoal.lake import Lake
from shoal.query import connect_lake
from shoal.query.engine import Connection


def timed(con: Connection, sql: str) -> float:
    c0 = time.process_time()
    con.sql(sql).fetchall()
    return time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", type=int, default=8)
    ap.add_argument("--history", type=int, default=150, help="commits per table before the run")
    ap.add_argument("--rounds", type=int, default=30, help="commit-to-every-table + one query, per engine")
    ap.add_argument("--quiet-queries", type=int, default=30)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="shoal-bench-pin-"))
    try:
        lake = Lake(str(work / "lake"))
        tables = []
        for j in range(args.tables):
            t = lake.create_table(f"b.t{j}", pa.schema([("k", pa.int64()), ("region", pa.string())]))
            for i in range(args.history):
                t.append(pa.table({"k": list(range(50)), "region": [f"r{i % 7}"] * 50}))
            tables.append(t)
        cons = {"shoal": connect_lake(lake), "scan": connect_lake(lake, pin_snapshots=False)}
        live: dict[str, list[float]] = {k: [] for k in cons}
        sql = "SELECT count(*) FROM b.t0 WHERE region = 'probe'"
        for i in range(args.rounds):
            for name, con in cons.items():  # alternate: each engine sees the same kind of commit
                for t in tables:
                    t.append(pa.table({"k": [i], "region": ["probe"]}))
                live[name].append(timed(con, sql))
        # quiet: the log stamps are old (as if the last commit were long ago), nothing commits
        for j in range(args.tables):
            log = work / "lake" / "b" / f"t{j}" / "_delta_log"
            old = time.time_ns() - 60 * 10**9
            os.utime(log, ns=(old, old))
        quiet: dict[str, list[float]] = {k: [] for k in cons}
        for _ in range(args.quiet_queries):
            for name, con in cons.items():
                quiet[name].append(timed(con, sql))
        counts = {name: con.sql(sql).fetchone() for name, con in cons.items()}
        assert counts["shoal"] == counts["scan"] == (2 * args.rounds,), counts
        med = {
            phase: {k: round(statistics.median(v) * 1000, 2) for k, v in data.items()}
            for phase, data in (("live", live), ("quiet", quiet))
        }
        print(
            json.dumps(
                {
                    "tables": args.tables,
                    "history_commits": args.history,
                    "cpu_ms_per_query_median": med,
                    "ratio_shoal_to_scan": {
                        p: round(m["shoal"] / m["scan"], 2) if m["scan"] else None for p, m in med.items()
                    },
                    "loadavg_1m": os.getloadavg()[0],
                },
                indent=2,
            )
        )
        for con in cons.values():
            con.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

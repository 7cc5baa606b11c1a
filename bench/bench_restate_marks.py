"""CPU of the restate marks per cycle (``shoal.models.marks``, ADR 0043): the look-up of a cycle's
touched slices and the raise after its commit, on a ``charges_hourly``-like table.

The table holds 20,000 resources x 24 hours of one month; each cycle touches 13,000 slices from
the next hour (past their marks: nothing to read) and 200 late ones (3 hours back: read), then
commits a row per in-order slice. Run it from each checkout to compare (issue 18, seventh
session)::

    PYTHONPATH=$PWD/src .venv/bin/python bench/bench_restate_marks.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import tempfile
import time

import pyarrow as pa

from shoal.lake import Lake, Table
from shoal.models import Model
from shoal.models.marks import RestateMarks
from shoal.query import connect_lake

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
TS = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema(
    [
        ("billing_month", pa.string()),
        ("resource_id", pa.string()),
        ("billing_hour", TS),
        ("charge", pa.int64()),
    ]
)
MODEL = Model(
    name="s.charges",
    sql="select * from s.charges",
    unique_key=("billing_month", "resource_id", "billing_hour"),
    incremental_by=("billing_month", "resource_id"),
    restate_from="billing_hour",
    upstream=("s.usage",),
)


def _rows(hour: int, ids: list[str]) -> pa.Table:
    n = len(ids)
    hours = pa.array([T0 + dt.timedelta(hours=hour)] * n, TS)
    return pa.table(
        {"billing_month": ["2026-11"] * n, "resource_id": ids, "billing_hour": hours, "charge": [1] * n},
        schema=SCHEMA,
    )


def _touched(ids: list[str], late: list[str], hour: int) -> pa.Table:
    starts = [T0 + dt.timedelta(hours=hour)] * len(ids) + [T0 + dt.timedelta(hours=hour - 3)] * len(late)
    raw = pa.table(
        {
            "billing_month": ["2026-11"] * len(starts),
            "resource_id": ids + late,
            "__shoal_from": pa.array(starts, TS),
        }
    )
    agg = raw.group_by(["billing_month", "resource_id"]).aggregate([("__shoal_from", "min")])
    return agg.rename_columns(["billing_month", "resource_id", "__shoal_from"])


def run(
    table: Table, marks: RestateMarks, *, hours: int, cycles: int, rng: random.Random, res: list[str]
) -> list[float]:
    version = table.version
    cpus = []
    for k in range(cycles + 1):
        hour = hours + k
        ids, late = rng.sample(res, 13_000), rng.sample(res, 200)
        touched = _touched(ids, late, hour)
        c0 = time.process_time()
        marks.in_scope(MODEL, table, version + k, touched)
        marks.written(MODEL, before=version + k, version=version + k + 1, rows=_rows(hour, ids))
        if k:  # the first cycle loads the month's marks
            cpus.append(time.process_time() - c0)
    marks.drop(MODEL.name)
    return cpus


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resources", type=int, default=20_000)
    ap.add_argument("--hours", type=int, default=24)
    ap.add_argument("--cycles", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    res = [f"r{i:06d}" for i in range(args.resources)]
    with tempfile.TemporaryDirectory() as tmp:
        lake = Lake(f"{tmp}/lake")
        table = lake.create_table(MODEL.name, SCHEMA)
        table.append(pa.concat_tables([_rows(h, res) for h in range(args.hours)]))
        con = connect_lake(lake)
        rng = random.Random(1)
        cpus: list[float] = []
        for _ in range(args.rounds):
            cpus += run(
                table,
                RestateMarks(lambda: con.duckdb),
                hours=args.hours,
                cycles=args.cycles,
                rng=rng,
                res=res,
            )
        con.close()
    print(json.dumps({"cycles": len(cpus), "cpu_ms_median": round(1000 * statistics.median(cpus), 1)}))


if __name__ == "__main__":
    main()

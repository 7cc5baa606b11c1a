"""Same-process A/Bs behind ADR 0047: what a derived hour column costs ingest, and the point lookup.

    PYTHONPATH=$PWD/src .venv/bin/python bench/bench_derive.py ingest --rounds 9
    PYTHONPATH=$PWD/src .venv/bin/python bench/bench_derive.py lookup --rows 10000000 --dir DIR

``ingest``: 1M billing events (``bench_query.day_chunks``, without the columns ingest adds) in
batches of 25,000 (the billing pipeline's flush) through ``BatchTransform.apply`` with
``partition_by`` event_date only, and with ``derive`` event_hour too; then each result appended
to a fresh day-partitioned table through shoal's writer. Arms alternate every round; medians of
CPU seconds per million events.

``lookup``: ``bench_query``'s one user's events (``user_id = 'u-0000420'``, a heavy user in every
row group) on the lake ``bench_query.py`` writes, in the same rounds: shoal as it is; a copy of
the table with ``user_id`` written without a dictionary (written once into the same lake as
``billing.usage_events_plain_user``); DuckDB settings; bare DuckDB on the snapshot's file list; a
late-materialisation form (semi-join on file name and row number); Polars on both tables. Medians
of CPU seconds; every arm's rows are compared with shoal's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_query as bq

PLAIN = "billing.usage_events_plain_user"
LOOKUP = (
    "SELECT event_id, occurred_at, product, plan, hourly_price_micros FROM {t} WHERE user_id = 'u-0000420'"
)


def rounds(arms: dict[str, Callable[[], Any]], n: int) -> dict[str, float]:
    """Median CPU seconds of each arm, run once per round in a rotated order."""
    names = list(arms)
    cpu: dict[str, list[float]] = {a: [] for a in names}
    for r in range(n):
        for a in names[r % len(names) :] + names[: r % len(names)]:
            c = time.process_time()
            arms[a]()
            cpu[a].append(time.process_time() - c)
    return {a: statistics.median(v) for a, v in cpu.items()}


def ingest(args: argparse.Namespace) -> None:
    from shoal.decode import DecodeSpec
    from shoal.ingest.spec import DerivedColumn, PartitionColumn, PipelineSpec
    from shoal.ingest.transform import BatchTransform
    from shoal.lake import Lake

    batch = 25_000
    chunks = [
        c.drop_columns(["event_date", "event_hour"]) for c in bq.day_chunks(1_000_000, 2, batch, seed=3)
    ]
    base = PipelineSpec(
        name="b",
        topics=("t",),
        brokers="x:1",
        decode=DecodeSpec(format="json", infer=True),
        table="billing.e",
        partition_by=(PartitionColumn(column="event_date", source="occurred_at", transform="day"),),
    )
    hour = DerivedColumn(column="event_hour", source="occurred_at", transform="hour")
    transforms = {
        "partition_by only": BatchTransform(base),
        "with derive event_hour": BatchTransform(base.model_copy(update={"derive": (hour,)})),
    }
    outs = {k: [t.apply(c)[0] for c in chunks] for k, t in transforms.items()}
    tmp = tempfile.mkdtemp(prefix="bench-derive-")
    made = [0]

    def append(k: str) -> None:
        made[0] += 1
        table = Lake(f"{tmp}/{made[0]}").create_table(
            "billing.e", outs[k][0].schema, partition_by=["event_date"]
        )
        for o in outs[k]:
            table.append(o)

    apply = rounds(
        {k: (lambda t=t: [t.apply(c) for c in chunks]) for k, t in transforms.items()}, args.rounds
    )
    write = rounds({k: (lambda k=k: append(k)) for k in transforms}, args.rounds)
    for k in transforms:
        print(f"{k:24} transform {apply[k]:.4f} CPU-s per 1M events, append {write[k]:.3f}")
    print(f"loadavg_1m {os.getloadavg()[0]:.1f}")


def plain_copy(lake: Any) -> None:
    """The bench table again, ``user_id`` without a dictionary (the same rows and commits)."""
    if lake.exists(PLAIN):
        return
    table = lake.create_table(
        PLAIN,
        bq.events_schema(),
        partition_by=["event_date"],
        partition_sources={"event_date": ("occurred_at", "day")},
        derived_columns={"event_hour": ("occurred_at", "hour")},
    )
    table._plain["user_id"] = True  # the writer's per-column verdict, decided here instead
    for chunk in bq.day_chunks(lake_rows(lake), 59, 500_000, seed=14):
        table.append(chunk)


def lake_rows(lake: Any) -> int:
    return int(lake.describe(bq.EVENTS).num_rows)


def lookup(args: argparse.Namespace) -> None:
    os.environ.setdefault("POLARS_MAX_THREADS", "2")
    import duckdb
    import polars as pl

    import shoal

    con = shoal.connect(bq.ensure_lake(args))
    plain_copy(con.lake)
    con.refresh()
    raw = con.duckdb

    def shoal_with(setting: str, value: str) -> Callable[[], Any]:
        def run() -> Any:
            old = raw.sql(f"SELECT current_setting('{setting}')").fetchone()
            raw.execute(f"SET {setting} = {value}")
            try:
                return con.sql(LOOKUP.format(t=bq.EVENTS)).to_arrow_table()
            finally:
                raw.execute(f"SET {setting} = {old[0] if old else 'DEFAULT'}")

        return run

    bare = duckdb.connect(config={"threads": 2})
    files = ", ".join(f"'{f}'" for f in con.lake.table(bq.EVENTS).files())
    bare.execute(
        f"CREATE VIEW e AS SELECT * FROM read_parquet([{files}], hive_partitioning = true, "
        "file_row_number = true, filename = true)"
    )
    late = LOOKUP.format(t="e").replace(
        "WHERE user_id",
        "WHERE (filename, file_row_number) IN (SELECT filename, file_row_number FROM e WHERE user_id",
    )

    def polars(name: str) -> Callable[[], Any]:
        frame = pl.scan_delta(con.lake.table(name).uri)
        cols = ["event_id", "occurred_at", "product", "plan", "hourly_price_micros"]
        return lambda: frame.filter(pl.col("user_id") == "u-0000420").select(cols).collect().to_arrow()

    arms: dict[str, Callable[[], Any]] = {
        "shoal": lambda: con.sql(LOOKUP.format(t=bq.EVENTS)).to_arrow_table(),
        "shoal, user_id plain": lambda: con.sql(LOOKUP.format(t=PLAIN)).to_arrow_table(),
        "shoal, prefetch_all_parquet_files": shoal_with("prefetch_all_parquet_files", "true"),
        "shoal, disable_parquet_prefetching": shoal_with("disable_parquet_prefetching", "true"),
        "shoal, threads = 1": shoal_with("threads", "1"),
        "bare DuckDB on the files": lambda: bare.sql(LOOKUP.format(t="e")).to_arrow_table(),
        "bare DuckDB, late materialisation": lambda: bare.sql(late + ")").to_arrow_table(),
        "polars": polars(bq.EVENTS),
        "polars, user_id plain": polars(PLAIN),
    }
    ref = bq.normalise(bq._arrow_rows(arms["shoal"]()))
    same = {a: bq.normalise(bq._arrow_rows(run())) == ref for a, run in arms.items()}
    cpu = rounds(arms, args.rounds)
    for a in arms:
        print(f"{a:36} {cpu[a]:.4f} CPU-s  {cpu[a] / cpu['shoal']:.2f}x  same rows: {same[a]}")
    print(f"rows {len(ref)}, loadavg_1m {os.getloadavg()[0]:.1f}")
    if not all(same.values()):
        raise SystemExit(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["ingest", "lookup"])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--days", type=int, default=59)
    ap.add_argument("--flush-rows", type=int, default=500_000)
    ap.add_argument("--dir", default="/tmp/shoal-bench-query")
    ap.add_argument("--regen", action="store_true")
    args = ap.parse_args()
    ingest(args) if args.what == "ingest" else lookup(args)


if __name__ == "__main__":
    main()

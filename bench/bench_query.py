"""Revenue queries on a billing table written by shoal, through shoal and three other engines.

    .venv/bin/python bench/bench_query.py --rows 50000000            # the reference run (issue 14)
    .venv/bin/python bench/bench_query.py --rows 2000000 --engines shoal,duckdb,polars   # quick

A generated billing-usage table (the columns ingest leaves for ``usage_events.proto``, its Kafka
metadata columns, the ``event_date`` day partition and the ``event_hour`` derived column, as the
billing pipeline declares them) is written through shoal's own writer
(``Lake.create_table`` + ``Table.append``, one commit per ``--flush-rows`` rows in event-time order,
as an ingest worker would), plus a small ``billing.plans`` dimension table. The lake is kept in
``--dir`` and reused while its rows, days and writer layout match (``--regen`` forces a rewrite).

Then, each engine in its own child process and one after the other:
  shoal   ``shoal.connect(project)`` with the default settings, SQL on ``billing.usage_events``
  shoal-baseline  (not in the default list) shoal without ADR 0021's pinned snapshots and UTC
          bucketing rewrite: ``delta_scan`` views and ICU, for an A/B in one run
  shoal-before  (not in the default list) shoal without ADR 0039's levers (day buckets read from
          the partition column), for an A/B of them in one run
  shoal-before-hour  (not in the default list) shoal without ADR 0047's lever (hour buckets read
          from the derived ``event_hour``)
  shoal-before-split  (not in the default list) shoal without ADR 0050's lever (aggregations with
          a DISTINCT run one range of day partitions at a time)
  duckdb  bare DuckDB on the snapshot's Parquet file list (``read_parquet``, hive partitions)
  polars  ``pl.scan_delta`` on the table, the same queries as lazy expressions
  spark   PySpark ``local[N]`` through ``shoal.spark.read_table`` (the snapshot's Parquet files,
          partition values from the Delta log; ``pip install '.[spark]'``); its setup is split into
          ``session_s`` (JVM and session start) and ``tables_s`` (reading the snapshots)
Each query runs once untimed (``first_s``, includes the snapshot and footer reads) and then
``--repeat`` times; the summary has the median, the ratio to the fastest engine, each child's peak
RSS (its whole process tree, the JVM included) and CPU seconds, and whether every engine's rows
equal shoal's (sorted, timestamps as UTC ISO strings). Exit status 1 when results differ.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EVENTS = "billing.usage_events"
PLANS = "billing.plans"
START = datetime(2026, 1, 1, tzinfo=UTC)
PRODUCTS = ["vm", "volume", "database", "kubernetes", "gpu", "bucket", "loadbalancer", "ip"]
REGIONS = ["fra1", "ams3", "lon1", "nyc1", "nyc3", "sfo3", "sgp1", "blr1"]
#: the derived columns the billing pipeline declares (column -> [source, transform])
DERIVED = {"event_hour": ["occurred_at", "hour"]}
TIERS = ["basic", "standard", "premium", "dedicated", "memory"]
EVENT_TYPES = [
    "EVENT_TYPE_USAGE",
    "EVENT_TYPE_RESOURCE_CREATED",
    "EVENT_TYPE_RESOURCE_RESIZED",
    "EVENT_TYPE_RESOURCE_DESTROYED",
]


# -- the data ------------------------------------------------------------------------------------
def events_schema() -> Any:
    import pyarrow as pa

    ts = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            ("event_id", pa.string()),
            ("event_type", pa.string()),
            ("user_id", pa.string()),
            ("team_id", pa.string()),
            ("region", pa.string()),
            ("resource_id", pa.string()),
            ("product", pa.string()),
            ("plan", pa.string()),
            ("unit", pa.string()),
            ("quantity_micros", pa.int64()),
            ("hourly_price_micros", pa.int64()),
            ("monthly_cap_micros", pa.int64()),
            ("currency", pa.string()),
            ("occurred_at", ts),
            ("billing_hour", ts),
            ("billing_month", pa.string()),
            ("_kafka_topic", pa.string()),
            ("_kafka_partition", pa.int32()),
            ("_kafka_offset", pa.int64()),
            ("_kafka_timestamp", pa.timestamp("ms", tz="UTC")),
            ("_kafka_key", pa.binary()),
            ("_ingested_at", ts),
            ("event_date", pa.date32()),
            ("event_hour", ts),
        ]
    )


def plan_prices() -> list[tuple[str, str, str, str, int]]:
    """(plan, product, tier, category, hourly price in micros) for every product × tier."""
    rows = []
    for p, product in enumerate(PRODUCTS):
        for t, tier in enumerate(TIERS):
            category = (
                "compute" if product in ("vm", "kubernetes", "gpu") else "storage" if p < 6 else "network"
            )
            rows.append((f"{product}-{tier}", product, tier, category, 4_000 * (p + 1) * (t + 1) ** 2))
    return rows


def _strings(prefix: str, values: Any, width: int) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    digits = pc.utf8_lpad(pc.cast(pa.array(values), pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def day_chunks(rows: int, days: int, flush_rows: int, seed: int) -> Any:
    """Arrow tables of one commit each: every day's events in time order, cut every flush_rows."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from shoal.ingest.transform import derived_value

    rng = np.random.default_rng(seed)
    users = max(1_000, rows // 500)
    prices = np.array([p[4] for p in plan_prices()], dtype=np.int64)
    plan_names = pa.array([p[0] for p in plan_prices()])
    user_cap = np.where(rng.random(users) < 0.3, rng.integers(5, 200, users) * 1_000_000, -1)
    user_eur = rng.random(users) < 0.2
    schema = events_schema()
    offset = 0
    for d in range(days):
        n = rows // days + (1 if d < rows % days else 0)
        day0 = START + timedelta(days=d)
        day_us = int(day0.timestamp() * 1_000_000)
        times = day_us + np.sort(rng.integers(0, 86_400_000_000, n))
        for lo in range(0, n, flush_rows):
            t = times[lo : lo + flush_rows]
            m = len(t)
            user = (users * rng.random(m) ** 2).astype(np.int64)  # a few heavy users, a long tail
            product = rng.integers(0, len(PRODUCTS), m)
            tier = rng.integers(0, len(TIERS), m)
            plan = product * len(TIERS) + tier
            etype = np.searchsorted([0.94, 0.96, 0.98], rng.random(m))
            cap = user_cap[user]
            columns = {
                "event_id": _strings("e-", np.arange(offset, offset + m), 12),
                "event_type": pa.array(np.array(EVENT_TYPES, dtype=object)[etype]),
                "user_id": _strings("u-", user, 7),
                "team_id": _strings("t-", user // 4, 6),
                "region": pa.array(np.array(REGIONS, dtype=object)[rng.integers(0, len(REGIONS), m)]),
                "resource_id": _strings("r-", user * 16 + rng.integers(0, 16, m), 9),
                "product": pa.array(np.array(PRODUCTS, dtype=object)[product]),
                "plan": plan_names.take(pa.array(plan)),
                "unit": pa.array(np.where(product == 1, "gib-hour", "hour").astype(object)),
                "quantity_micros": pa.array(rng.integers(1, 64, m) * 1_000_000),
                "hourly_price_micros": pa.array(prices[plan]),
                "monthly_cap_micros": pa.array(cap, mask=cap < 0),
                "currency": pa.array(np.where(user_eur[user], "EUR", "USD").astype(object)),
                "occurred_at": pa.array(t, pa.timestamp("us", tz="UTC")),
                "billing_hour": pa.array(t - t % 3_600_000_000, pa.timestamp("us", tz="UTC")),
                "billing_month": pa.array([day0.strftime("%Y-%m")] * m),
                "_kafka_topic": pa.array(["billing-usage"] * m),
                "_kafka_partition": pa.array((user % 6).astype(np.int32)),
                "_kafka_offset": pa.array(np.arange(offset, offset + m)),
                "_kafka_timestamp": pa.array(t // 1000 + 5, pa.timestamp("ms", tz="UTC")),
                "_kafka_key": pc.cast(_strings("r-", user * 16, 9), pa.binary()),
                "_ingested_at": pa.array(t + 900_000, pa.timestamp("us", tz="UTC")),
                "event_date": pa.array([day0.date()] * m, pa.date32()),
            }
            # derive: [{column: event_hour, from: occurred_at, transform: hour}], as ingest computes it
            columns["event_hour"] = derived_value(pa.chunked_array([columns["occurred_at"]]), "hour")
            offset += m
            yield pa.table(columns, schema=schema)


def layout_id() -> dict[str, Any]:
    """What of shoal's writer decides the files' layout: a lake written otherwise is rewritten."""
    from shoal.lake import table as writer

    return {k: v for k, v in vars(writer).items() if k.isupper() and isinstance(v, int | str | bool)}


def ensure_lake(args: argparse.Namespace) -> Path:
    import pyarrow as pa

    from shoal.config.settings import init_project
    from shoal.project import Project

    project_dir = Path(args.dir)
    meta_path = project_dir / "bench_query.json"
    want = {"rows": args.rows, "days": args.days, "flush_rows": args.flush_rows, "layout": layout_id()}
    want["derived_columns"] = DERIVED  # a lake written without them is rewritten
    if getattr(args, "sort_by", ""):
        want["sort_by"] = args.sort_by
    if not args.regen and meta_path.exists() and json.loads(meta_path.read_text()) == want:
        quiet_checkpoint(Project.load(project_dir).lake)  # a lake written before ADR 0057
        return project_dir
    if project_dir.exists():
        import shutil

        shutil.rmtree(project_dir)
    init_project(project_dir, "bench")
    lake = Project.load(project_dir).lake
    t0 = time.perf_counter()
    # as an ingest pipeline with partition_by [{column: event_date, from: occurred_at, transform: day}]
    # and derive [{column: event_hour, from: occurred_at, transform: hour}] leaves it
    events = lake.create_table(
        EVENTS,
        events_schema(),
        partition_by=["event_date"],
        partition_sources={"event_date": ("occurred_at", "day")},
        derived_columns={k: (v[0], v[1]) for k, v in DERIVED.items()},
    )
    written = 0
    for chunk in day_chunks(args.rows, args.days, args.flush_rows, seed=14):
        events.append(chunk)
        written += chunk.num_rows
        if written % (20 * args.flush_rows) < chunk.num_rows:
            print(f"wrote {written:,} rows", file=sys.stderr, flush=True)
    plans = plan_prices()
    lake.create_table(
        PLANS,
        pa.schema(
            [
                ("plan", pa.string()),
                ("product", pa.string()),
                ("tier", pa.string()),
                ("category", pa.string()),
                ("list_price_micros", pa.int64()),
            ]
        ),
    ).append(
        pa.table(
            {
                k: [p[i] for p in plans]
                for i, k in enumerate(("plan", "product", "tier", "category", "list_price_micros"))
            }
        )
    )
    files = lake.table(EVENTS).files()
    print(
        f"wrote {written:,} rows in {time.perf_counter() - t0:.0f} s ({len(files)} files)",
        file=sys.stderr,
    )
    if getattr(args, "sort_by", ""):
        # the compaction that sorts each day partition by the key (Table.compact(sort_by=...)):
        # its cost is the writer's price for the lookups it speeds up
        t0, c0 = time.perf_counter(), time.process_time()
        res = lake.table(EVENTS).compact(sort_by=args.sort_by.split(","))
        print(
            f"sorted by {args.sort_by}: {res.get('numFilesRemoved')} files into {res.get('numFilesAdded')} "
            f"in {time.perf_counter() - t0:.1f} s, {time.process_time() - c0:.1f} CPU-s",
            file=sys.stderr,
        )
    quiet_checkpoint(lake)
    meta_path.write_text(json.dumps(want))
    return project_dir


def quiet_checkpoint(lake: Any) -> None:
    """What an ingest worker does once its commits pause (ADR 0057): a checkpoint of the latest
    version, so readers replay one file rather than the commits after the interval's checkpoint."""
    for name in (EVENTS, PLANS):
        version = lake.table(name).checkpoint_if_behind()
        if version is not None:
            print(f"{name}: checkpointed at version {version}", file=sys.stderr)


# -- the queries -----------------------------------------------------------------------------------
def month_start() -> date:
    return date(2026, 2, 1)


def params(days: int) -> dict[str, str]:
    end = START + timedelta(days=days)
    last_month = (end - timedelta(days=1)).strftime("%Y-%m")
    return {
        "cut": (end - timedelta(days=7)).strftime("%Y-%m-%d %H:%M:%S"),
        "month": last_month,
        "month_start": last_month + "-01",
        "user": "u-0000420",
    }


SQL = {
    "hourly_revenue": """
        SELECT date_trunc('hour', occurred_at) AS hour, product, region,
               sum(hourly_price_micros) AS revenue_micros, count(*) AS events
        FROM {events} WHERE event_type = 'EVENT_TYPE_USAGE' GROUP BY 1, 2, 3""",
    "daily_users": """
        SELECT date_trunc('day', occurred_at) AS day, count(DISTINCT user_id) AS users
        FROM {events} WHERE event_type = 'EVENT_TYPE_USAGE' GROUP BY 1""",
    "last_7_days": """
        SELECT product, region, sum(hourly_price_micros) AS revenue_micros, count(*) AS events
        FROM {events} WHERE occurred_at >= TIMESTAMP '{cut}' GROUP BY 1, 2""",
    "month_to_date_capped": """
        SELECT user_id, least(sum(hourly_price_micros), max(monthly_cap_micros)) AS cost_micros
        FROM {events} WHERE billing_month = '{month}' AND event_type = 'EVENT_TYPE_USAGE'
        GROUP BY 1""",
    "user_lookup": """
        SELECT event_id, occurred_at, product, plan, hourly_price_micros
        FROM {events} WHERE user_id = '{user}'""",
    "join_plans": """
        SELECT p.category, p.tier, sum(e.hourly_price_micros) AS revenue_micros,
               count(DISTINCT e.user_id) AS users
        FROM {events} e JOIN {plans} p ON e.plan = p.plan
        WHERE e.event_date >= DATE '{month_start}' GROUP BY 1, 2""",
}


def polars_queries(events: Any, plans: Any, p: dict[str, str]) -> dict[str, Callable[[], Any]]:
    import polars as pl

    usage = events.filter(pl.col("event_type") == "EVENT_TYPE_USAGE")
    cut = datetime.fromisoformat(p["cut"]).replace(tzinfo=UTC)
    return {
        "hourly_revenue": lambda: (
            usage.group_by(pl.col("occurred_at").dt.truncate("1h").alias("hour"), "product", "region")
            .agg(pl.col("hourly_price_micros").sum().alias("revenue_micros"), pl.len().alias("events"))
            .collect()
        ),
        "daily_users": lambda: (
            usage.group_by(pl.col("occurred_at").dt.truncate("1d").alias("day"))
            .agg(pl.col("user_id").n_unique().alias("users"))
            .collect()
        ),
        "last_7_days": lambda: (
            events.filter(pl.col("occurred_at") >= cut)
            .group_by("product", "region")
            .agg(pl.col("hourly_price_micros").sum().alias("revenue_micros"), pl.len().alias("events"))
            .collect()
        ),
        "month_to_date_capped": lambda: (
            usage.filter(pl.col("billing_month") == p["month"])
            .group_by("user_id")
            .agg(
                pl.col("hourly_price_micros").sum().alias("s"), pl.col("monthly_cap_micros").max().alias("c")
            )
            .select("user_id", pl.min_horizontal("s", "c").alias("cost_micros"))
            .collect()
        ),
        "user_lookup": lambda: (
            events.filter(pl.col("user_id") == p["user"])
            .select("event_id", "occurred_at", "product", "plan", "hourly_price_micros")
            .collect()
        ),
        "join_plans": lambda: (
            events.filter(pl.col("event_date") >= date.fromisoformat(p["month_start"]))
            .join(plans, on="plan")
            .group_by("category", "tier")
            .agg(
                pl.col("hourly_price_micros").sum().alias("revenue_micros"),
                pl.col("user_id").n_unique().alias("users"),
            )
            .collect()
        ),
    }


# -- one engine, in a child process ----------------------------------------------------------------
def _norm(v: Any) -> Any:
    if isinstance(v, datetime):
        v = v.astimezone(UTC).replace(tzinfo=None) if v.tzinfo else v
        return v.isoformat()
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, float):
        return round(v, 6)
    if isinstance(v, bytes):
        return v.hex()
    return v


def normalise(rows: list[tuple[Any, ...]]) -> list[list[Any]]:
    return sorted(([_norm(v) for v in r] for r in rows), key=lambda r: json.dumps(r, default=str))


def _arrow_rows(table: Any) -> list[tuple[Any, ...]]:
    return list(zip(*[c.to_pylist() for c in table.columns], strict=True))


#: setup timings an engine reports apart from its first query (Spark: session start, table reads)
SETUP: dict[str, float] = {}

Runner = tuple[dict[str, Callable[..., Any]], Callable[[Any], list[tuple[Any, ...]]], Callable[[], None]]


def _runner(engine: str, project_dir: Path, p: dict[str, str], threads: int) -> Runner:
    """The engine's queries (each returns the engine's own result, fully computed), how to turn a
    result into rows (outside the timing), and how to close the engine."""
    from shoal.project import Project

    lake = Project.load(project_dir).lake

    def sql(fmt: dict[str, str]) -> dict[str, str]:
        return {k: " ".join(v.split()).format(**fmt, **p) for k, v in SQL.items()}

    if engine in ("shoal", "shoal-baseline", "shoal-before", "shoal-before-hour", "shoal-before-split"):
        import shoal
        from shoal.query import connect_lake

        con = shoal.connect(project_dir)
        if engine == "shoal-before":  # the same connection without ADR 0039's levers, for A/B
            con.partition_key_rewrite = False
        if engine == "shoal-before-hour":  # ... without ADR 0047's derived columns
            con.derived_column_rewrite = False
        if engine == "shoal-before-split":  # ... without ADR 0050's partition-wise DISTINCT aggregation
            con.partition_wise_aggregation = False
        if engine == "shoal-baseline":  # the same connection without ADR 0021's levers, for A/B
            con.close()
            con = connect_lake(lake, pin_snapshots=False)
            con.utc_time_rewrite = False
        fmt = {"events": EVENTS, "plans": PLANS}
        queries = {k: (lambda q=q: con.sql(q).to_arrow_table()) for k, q in sql(fmt).items()}
        return queries, _arrow_rows, con.close
    if engine == "duckdb":
        import duckdb

        bare = duckdb.connect(config={"threads": threads})
        bare.execute("SET TimeZone = 'UTC'")  # as shoal: the same wall-clock hours and days
        for name in (EVENTS, PLANS):
            files = ", ".join(f"'{f}'" for f in lake.table(name).files())
            view = name.split(".")[1]
            scan = f"read_parquet([{files}], hive_partitioning = true)"
            bare.execute(f"CREATE VIEW {view} AS SELECT * FROM {scan}")
        fmt = {"events": "usage_events", "plans": "plans"}
        queries = {k: (lambda q=q: bare.sql(q).to_arrow_table()) for k, q in sql(fmt).items()}
        return queries, _arrow_rows, bare.close
    if engine == "polars":
        import polars as pl

        events = pl.scan_delta(lake.table(EVENTS).uri)
        plans = pl.scan_delta(lake.table(PLANS).uri)
        return polars_queries(events, plans, p), lambda df: df.rows(), lambda: None
    if engine == "spark":
        # shoal.spark: the snapshot's file list, partition values from the Delta log (ADR 0030)
        from shoal.spark import local_session, read_table

        t0 = time.perf_counter()
        spark = local_session(threads, "shoal-bench-query", memory=os.environ.get("BENCH_SPARK_MEMORY", "2g"))
        SETUP["session_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for name in (EVENTS, PLANS):
            read_table(spark, lake, name).createOrReplaceTempView(name.split(".")[1])
        SETUP["tables_s"] = time.perf_counter() - t0
        fmt = {"events": "usage_events", "plans": "plans"}
        queries = {k: (lambda q=q: spark.sql(q).collect()) for k, q in sql(fmt).items()}
        return queries, lambda rows: [tuple(r) for r in rows], spark.stop
    raise SystemExit(f"unknown engine {engine}")


def cpu_seconds() -> float:
    """CPU seconds of this process's threads and its children (Spark's JVM): on a loaded machine
    the medians of CPU time compare engines where wall time only measures the neighbours."""
    import psutil

    me = psutil.Process()
    total = time.process_time()
    for kid in me.children(recursive=True):
        try:
            total += sum(kid.cpu_times()[:2])
        except psutil.Error:
            continue
    return total


def child(args: argparse.Namespace) -> None:
    os.environ.setdefault("POLARS_MAX_THREADS", str(args.threads))
    p = params(args.days)
    t0 = time.perf_counter()
    queries, to_rows, close = _runner(args.child, Path(args.dir), p, args.threads)
    setup_s = time.perf_counter() - t0
    only = set(args.queries.split(",")) if args.queries else set(queries)
    timings: dict[str, Any] = {}
    results: dict[str, Any] = {}
    for name, run in queries.items():
        if name not in only:
            continue
        t, c = time.perf_counter(), cpu_seconds()
        result = run()
        first, first_cpu = time.perf_counter() - t, cpu_seconds() - c
        rows = to_rows(result)
        times, cpus = [], []
        for _ in range(args.repeat):
            t, c = time.perf_counter(), cpu_seconds()
            run()
            times.append(time.perf_counter() - t)
            cpus.append(cpu_seconds() - c)
        timings[name] = {
            "first_s": first,
            "first_cpu_s": first_cpu,
            "times_s": times,
            "cpu_s": cpus,
            "rows": len(rows),
        }
        results[name] = normalise(rows)
    close()
    Path(args.out).write_text(json.dumps(results))
    print(json.dumps({"setup_s": setup_s, "setup_parts_s": SETUP, "queries": timings}))


def run_child(argv: list[str]) -> dict[str, Any]:
    """Run one engine; peak RSS and CPU are of its whole process tree (Spark's JVM included)."""
    import psutil

    t0 = time.perf_counter()
    before = os.times()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = 0
    cpu: dict[int, float] = {}
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(proc.pid)
        while not stop.wait(0.1):
            try:
                rss = 0
                for pr in [root, *root.children(recursive=True)]:
                    with pr.oneshot():
                        rss += pr.memory_info().rss
                        cpu[pr.pid] = sum(pr.cpu_times()[:2])
                peak = max(peak, rss)
            except psutil.Error:
                continue

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    stop.set()
    sampler.join()
    after = os.times()
    if proc.returncode:
        raise SystemExit(f"child failed: {' '.join(argv[2:4])}\n{err.decode()[-3000:]}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - t0
    result["peak_rss_mib"] = round(peak / 2**20, 1)
    # reaped descendants count in the children times; a JVM left to exit alone only in the samples
    reaped = after.children_user + after.children_system - before.children_user - before.children_system
    result["cpu_s"] = round(max(reaped, sum(cpu.values())), 2)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--days", type=int, default=59, help="days of events from 2026-01-01 (59: Jan and Feb)")
    ap.add_argument("--flush-rows", type=int, default=500_000, help="rows per commit, as an ingest flush")
    ap.add_argument("--engines", default="shoal,duckdb,polars,spark")
    ap.add_argument("--queries", default="", help="comma-separated subset of: " + ", ".join(SQL))
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per query after an untimed one")
    ap.add_argument("--threads", type=int, default=2, help="threads for duckdb, polars and spark")
    ap.add_argument("--dir", default=str(Path(tempfile.gettempdir()) / "shoal-bench-query"))
    ap.add_argument("--regen", action="store_true", help="rewrite the table even if it matches")
    ap.add_argument(
        "--sort-by",
        default="",
        help="after writing, compact each partition sorted by these columns (e.g. user_id)",
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return

    project_dir = ensure_lake(args)
    work = Path(tempfile.mkdtemp(prefix="shoal-bench-query-"))
    runs: dict[str, dict[str, Any]] = {}
    results: dict[str, dict[str, Any]] = {}
    for engine in [e for e in args.engines.split(",") if e]:
        out = work / f"{engine}.json"
        argv = [sys.executable, __file__, "--child", engine, "--out", str(out), "--dir", str(project_dir)]
        argv += ["--days", str(args.days), "--repeat", str(args.repeat), "--threads", str(args.threads)]
        argv += ["--queries", args.queries] if args.queries else []
        runs[engine] = run_child(argv)
        results[engine] = json.loads(out.read_text())
        print(f"{engine}: done in {runs[engine]['wall_s']:.1f} s", file=sys.stderr)

    reference = next(iter(results))
    table: dict[str, Any] = {}
    ok = True
    for q in SQL:
        per = {e: statistics.median(r["queries"][q]["times_s"]) for e, r in runs.items() if q in r["queries"]}
        if not per:
            continue
        cpu = {e: statistics.median(r["queries"][q]["cpu_s"]) for e, r in runs.items() if q in r["queries"]}
        fastest = min(per.values())
        least_cpu = min(cpu.values()) or 1e-9
        same = {e: results[e][q] == results[reference][q] for e in per}
        ok &= all(same.values())
        table[q] = {
            "rows": runs[reference]["queries"][q]["rows"],
            "median_s": {e: round(v, 4) for e, v in per.items()},
            "first_s": {
                e: round(r["queries"][q]["first_s"], 4) for e, r in runs.items() if q in r["queries"]
            },
            "ratio_to_fastest": {e: round(v / fastest, 2) for e, v in per.items()},
            "median_cpu_s": {e: round(v, 4) for e, v in cpu.items()},
            "cpu_ratio_to_least": {e: round(v / least_cpu, 2) for e, v in cpu.items()},
            "same_rows_as_" + reference: same,
        }
    summary = {
        "rows": args.rows,
        "days": args.days,
        "files": len(
            __import__("shoal.project", fromlist=["Project"])
            .Project.load(project_dir)
            .lake.table(EVENTS)
            .files()
        ),
        "threads": args.threads,
        "repeat": args.repeat,
        "queries": table,
        "engines": {
            e: {
                "setup_s": round(r["setup_s"], 2),
                **{k: round(v, 2) for k, v in r.get("setup_parts_s", {}).items()},
                "peak_rss_mib": r["peak_rss_mib"],
                "cpu_s": r["cpu_s"],
            }
            for e, r in runs.items()
        },
        "results_identical": ok,
        "cpus": os.cpu_count(),
        "loadavg_1m": round(os.getloadavg()[0], 1),
    }
    print(json.dumps(summary, indent=2))
    print_table(table, list(runs))
    if not ok:
        raise SystemExit(1)


def print_table(table: dict[str, Any], engines: list[str]) -> None:
    for label, key, ratio in (
        ("wall s", "median_s", "ratio_to_fastest"),
        ("CPU s", "median_cpu_s", "cpu_ratio_to_least"),
    ):
        print(f"{'median ' + label:<22}" + "".join(f"{e:>17}" for e in engines), file=sys.stderr)
        for q, row in table.items():
            cells = "".join(
                f"{row[key][e]:>9.3f} ×{row[ratio][e]:<6.2f}" if e in row[key] else f"{'':>17}"
                for e in engines
            )
            print(f"{q:<22}{cells}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""One query-speed lever at a time: the same query in two or more forms, alternating, one connection.

    .venv/bin/python bench/bench_query_levers.py --rows 10000000 --dir /tmp/speed/lake10m --rounds 7

``bench_query.py`` compares engines; this compares forms of one query on shoal's connection to
the lake ``bench_query.py`` writes (the same ``--rows``/``--days``/``--dir``; written first if
missing). Each lever names a query of ``bench_query.SQL`` and its arms: ``main`` is the SQL shoal
ran before this lever (``Connection._prepare`` with the lever off), the others what it runs with
the lever or a candidate form. Each round runs every arm once, in a rotated order; the summary has
each arm's median CPU seconds (the process's threads: DuckDB's work) and wall seconds, the ratio
to ``main``, and whether its rows equal ``main``'s (sorted, as ``bench_query.normalise``). An arm
whose rows differ makes the exit status 1.

``--profile`` instead times the pieces of the hourly rollup (scan, filter, keys, sums) alone.

``--interleave`` instead runs every query of ``bench_query.py`` four ways in the same rounds:
``main`` (the SQL main's shoal ran: its hour and day floors), ``before`` (the SQL shoal ran before
ADR 0047: hour buckets floored per row, not read from the derived ``event_hour``), ``shoal``
(``con.sql(query)``, the rewrites of this branch included) and ``polars`` (``scan_delta``,
bench_query's expressions), both libraries in this one process with 2 threads each. On a machine
whose load swings between runs, ratios taken in the same rounds are the ones to trust (separate
processes minutes apart gave the same engine 0.5x-1.5x).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_query as bq  # the lake and the queries of bench_query.py

E = bq.EVENTS
#: day of occurred_at from the partition column, as partition_keys.py writes it
DAY_KEY = "make_timestamptz(epoch_us(CAST(event_date AS TIMESTAMP)))"
HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
USAGE = "event_type = 'EVENT_TYPE_USAGE'"


def levers(con: Any) -> dict[str, tuple[str, dict[str, str]]]:
    """lever -> (the bench_query query it speeds up, {arm: SQL}); arm ``main`` first."""
    sql = {
        k: " ".join(v.split()).format(events=E, plans=bq.PLANS, **bq.params(59)) for k, v in bq.SQL.items()
    }

    def prepared(query: str, **flags: bool) -> str:
        saved = {k: getattr(con, k) for k in flags}
        for k, v in flags.items():
            setattr(con, k, v)
        try:
            return str(con._prepare(query))
        finally:
            for k, v in saved.items():
                setattr(con, k, v)

    daily = sql["daily_users"]
    hourly = sql["hourly_revenue"]
    us = "epoch_us(occurred_at)"
    two_mods = f"{us} - (({us} % {HOUR_US}) + {HOUR_US}) % {HOUR_US}"  # what main's utctime.py wrote
    # the same as json_deserialize_sql prints it in the prepared SQL
    two_mods_sql = f"({us} - ((({us} % {HOUR_US}) + {HOUR_US}) % {HOUR_US}))"
    day_two_mods_sql = two_mods_sql.replace(str(HOUR_US), str(DAY_US))
    daily_main = (  # the daily rollup as main's shoal ran it
        f'SELECT make_timestamptz({day_two_mods_sql}) AS "day", count(DISTINCT user_id) AS users '
        f"FROM {E} WHERE ({USAGE}) GROUP BY 1"
    )

    def hourly_as(hour: str) -> str:
        """The hourly rollup as shoal runs it, its hour computed as ``hour``."""
        return (
            f'SELECT {hour} AS "hour", product, region, sum(hourly_price_micros) AS revenue_micros, '
            f"count_star() AS events FROM {E} WHERE ({USAGE}) GROUP BY 1, 2, 3"
        )

    def grouped_by_int(floor: str) -> str:
        """The hourly rollup grouped by the floored integer, made an instant after the grouping."""
        return (
            "SELECT make_timestamptz(h) AS hour, product, region, sum(hourly_price_micros) AS "
            f"revenue_micros, count(*) AS events FROM (SELECT {floor} AS h, product, region, "
            f"hourly_price_micros FROM {E} WHERE {USAGE}) GROUP BY h, product, region"
        )

    return {
        "daily_partition_key": (
            "daily_users",
            {
                "main": daily_main,
                "floor_by_division": prepared(daily, partition_key_rewrite=False),
                "partition_key": prepared(daily),
            },
        ),
        "daily_two_level_distinct": (
            "daily_users",
            {
                "main": prepared(daily),
                "two_level": f"SELECT {DAY_KEY.replace('event_date', 'd')} AS day, count(user_id) AS users "
                f"FROM (SELECT DISTINCT event_date AS d, user_id FROM {E} WHERE {USAGE}) GROUP BY d",
                "two_level_ts_key": f"SELECT day, count(user_id) AS users FROM (SELECT DISTINCT {DAY_KEY} "
                f"AS day, user_id FROM {E} WHERE {USAGE}) GROUP BY day",
            },
        ),
        "daily_two_level_distinct_without_key": (
            "daily_users",
            {
                "main": daily_main,
                "two_level": f"SELECT make_timestamptz(d) AS day, count(user_id) AS users FROM (SELECT "
                f"DISTINCT {us} - (({us} % {DAY_US}) + {DAY_US}) % {DAY_US} AS d, user_id FROM {E} "
                f"WHERE {USAGE}) GROUP BY d",
            },
        ),
        "hourly_derived_column": (
            "hourly_revenue",
            {
                "main": prepared(hourly, derived_column_rewrite=False),  # floor_by_division
                "derived_column": prepared(hourly),  # event_hour (ADR 0047)
            },
        ),
        "hourly_floor": (
            "hourly_revenue",
            {
                "main": hourly_as(f"make_timestamptz({two_mods_sql})"),  # what main's utctime.py wrote
                "floor_by_division": prepared(hourly),  # CASE WHEN us >= 0 THEN us // W * W ELSE ...
                "grouped_by_int": grouped_by_int(two_mods),
                "time_bucket_plain": hourly_as(
                    f"make_timestamptz(epoch_us(time_bucket(INTERVAL 1 HOUR, make_timestamp({us}))))"
                ),
            },
        ),
    }


def profile_parts() -> dict[str, str]:
    """The hourly rollup's pieces, each alone (what its CPU is made of)."""
    floor = f"epoch_us(occurred_at) - ((epoch_us(occurred_at) % {HOUR_US}) + {HOUR_US}) % {HOUR_US}"
    return {
        "count(*) filtered": f"SELECT count(*) FROM {E} WHERE {USAGE}",
        "read occurred_at": f"SELECT max(occurred_at) FROM {E} WHERE {USAGE}",
        "floor to hour": f"SELECT max({floor}) FROM {E} WHERE {USAGE}",
        "sum price": f"SELECT sum(hourly_price_micros) FROM {E} WHERE {USAGE}",
        "group product, region": f"SELECT product, region, count(*) FROM {E} WHERE {USAGE} GROUP BY 1, 2",
        "group hour": f"SELECT make_timestamptz({floor}) h, count(*) FROM {E} WHERE {USAGE} GROUP BY 1",
        "group hour, product, region, count": f"SELECT make_timestamptz({floor}) h, product, region, "
        f"count(*) FROM {E} WHERE {USAGE} GROUP BY 1, 2, 3",
        "the whole query": f"SELECT make_timestamptz({floor}) h, product, region, sum(hourly_price_micros), "
        f"count(*) FROM {E} WHERE {USAGE} GROUP BY 1, 2, 3",
        # the same from the derived column ingest writes (ADR 0047)
        "read event_hour": f"SELECT max(event_hour) FROM {E} WHERE {USAGE}",
        "group event_hour, product, region, count": f"SELECT event_hour, product, region, count(*) "
        f"FROM {E} WHERE {USAGE} GROUP BY 1, 2, 3",
        "the whole query from event_hour": f"SELECT event_hour, product, region, sum(hourly_price_micros), "
        f"count(*) FROM {E} WHERE {USAGE} GROUP BY 1, 2, 3",
    }


def interleaved(con: Any, project: Path) -> dict[str, tuple[str, dict[str, Callable[[], Any]]]]:
    """query -> (query, {main, shoal, polars: run it and return its rows})."""
    os.environ.setdefault("POLARS_MAX_THREADS", "2")  # read when polars is imported
    import polars as pl

    p = bq.params(59)
    sql = {k: " ".join(v.split()).format(events=E, plans=bq.PLANS, **p) for k, v in bq.SQL.items()}
    arms = levers(con)
    main_sql = dict(sql)
    main_sql["hourly_revenue"] = arms["hourly_floor"][1]["main"]
    main_sql["daily_users"] = arms["daily_partition_key"][1]["main"]
    saved, con.derived_column_rewrite = con.derived_column_rewrite, False
    before_sql = {k: str(con._prepare(q)) for k, q in sql.items()}
    con.derived_column_rewrite = saved
    lake = con.lake
    pq = bq.polars_queries(pl.scan_delta(lake.table(E).uri), pl.scan_delta(lake.table(bq.PLANS).uri), p)
    out: dict[str, tuple[str, dict[str, Callable[[], Any]]]] = {}
    for name, query in sql.items():
        out[name] = (
            name,
            {
                "main": lambda q=main_sql[name]: con.sql(q).to_arrow_table(),
                "before": lambda q=before_sql[name]: con.sql(q).to_arrow_table(),
                "shoal": lambda q=query: con.sql(q).to_arrow_table(),
                "polars": pq[name],  # a DataFrame, collected
            },
        )
    return out


def rows_of(result: Any) -> list[Any]:
    """An engine's result as rows, outside the timing (an Arrow table or a Polars DataFrame)."""
    return result.rows() if hasattr(result, "rows") else bq._arrow_rows(result)


def timed(run: Callable[[], Any]) -> tuple[float, float, Any]:
    t, c = time.perf_counter(), time.process_time()
    out = run()
    return time.process_time() - c, time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--days", type=int, default=59)
    ap.add_argument("--flush-rows", type=int, default=500_000)
    ap.add_argument("--dir", default="/tmp/shoal-bench-query")
    ap.add_argument("--regen", action="store_true")
    ap.add_argument("--rounds", type=int, default=5, help="rounds; each runs every arm once")
    ap.add_argument(
        "--levers", default="", help="comma-separated subset of the levers (of the queries with --interleave)"
    )
    ap.add_argument("--profile", action="store_true", help="time the hourly rollup's pieces instead")
    ap.add_argument("--interleave", action="store_true", help="main, shoal and Polars in the same rounds")
    args = ap.parse_args()
    import shoal

    project = bq.ensure_lake(args)
    con = shoal.connect(project)
    raw = con.duckdb
    if args.profile:
        import duckdb

        # the same SQL on bare DuckDB over the snapshot's file list: what the Delta view costs
        bare = duckdb.connect(config={"threads": 2})
        bare.execute("SET TimeZone = 'UTC'; CREATE SCHEMA billing")
        files = ", ".join(f"'{f}'" for f in con.lake.table(E).files())
        bare.execute(f"CREATE VIEW {E} AS SELECT * FROM read_parquet([{files}], hive_partitioning = true)")
        parts = {k: (raw, q) for k, q in profile_parts().items()}
        parts["the whole query, bare DuckDB on the files"] = (bare, parts["the whole query"][1])
        cpu: dict[str, list[float]] = {k: [] for k in parts}
        for _ in range(args.rounds):
            for k, (db, q) in parts.items():
                cpu[k].append(timed(lambda db=db, q=q: db.sql(q).fetchall())[0])
        out = {k: round(statistics.median(v), 4) for k, v in cpu.items()}
        print(json.dumps({"profile_cpu_s": out, "loadavg_1m": round(os.getloadavg()[0], 1)}, indent=2))
        return
    chosen = set(args.levers.split(",")) if args.levers else None
    ok = True
    report: dict[str, Any] = {}
    plans: dict[str, tuple[str, dict[str, Callable[[], Any]]]] = {}
    if args.interleave:  # --levers then names bench_query queries
        plans = {k: v for k, v in interleaved(con, project).items() if chosen is None or k in chosen}
    else:
        for lever, (query, arms) in levers(con).items():
            if chosen is None or lever in chosen:
                plans[lever] = (
                    query,
                    {a: (lambda q=q: raw.sql(q).to_arrow_table()) for a, q in arms.items()},
                )
    for lever, (query, runs) in plans.items():
        names = list(runs)
        rows = {a: bq.normalise(rows_of(runs[a]())) for a in names}  # also warms each arm up
        cpu: dict[str, list[float]] = {a: [] for a in names}
        wall: dict[str, list[float]] = {a: [] for a in names}
        for r in range(args.rounds):
            for a in names[r % len(names) :] + names[: r % len(names)]:
                c, w, _ = timed(runs[a])
                cpu[a].append(c)
                wall[a].append(w)
        base = statistics.median(cpu["main"])
        same = {a: rows[a] == rows["main"] for a in names}
        ok &= all(same.values())
        report[lever] = {
            "query": query,
            "median_cpu_s": {a: round(statistics.median(cpu[a]), 4) for a in names},
            "cpu_ratio_to_main": {a: round(statistics.median(cpu[a]) / base, 3) for a in names},
            "median_wall_s": {a: round(statistics.median(wall[a]), 4) for a in names},
            "same_rows_as_main": same,
            "rows": len(rows["main"]),
        }
        print(
            f"{lever}: " + ", ".join(f"{a} {report[lever]['median_cpu_s'][a]:.3f}" for a in names),
            file=sys.stderr,
        )
    print(
        json.dumps(
            {
                "rows": args.rows,
                "rounds": args.rounds,
                "levers": report,
                "loadavg_1m": round(os.getloadavg()[0], 1),
            },
            indent=2,
        )
    )
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

"""30-day rack power rollup: shoal SQL on the lake vs plain DuckDB on plain Parquet; raw vs 1h rollup.

    .venv/bin/python bench/bench_power_rollup.py                  # the reference run (36 racks, 30 days)
    .venv/bin/python bench/bench_power_rollup.py --days 7 --racks-per-podlet 2   # quick

Setup (timed, not the benchmark): ``write_history`` writes 30 days of simulated 5-minute fleet
history into a fresh local lake (default fleet: 1 region x 2 DCs x 3 podlets x 6 racks x 12
hypervisors, 2 disks each: 11.2 M PDU samples, 48 M samples in all), then the model runner builds
the rollup models ``metrics.samples_5m`` / ``metrics.samples_1h`` (``shoal.usecases.metrics``).

The query: per rack and UTC day over the 30 days, the mean and the peak of the rack's hourly mean
power (sum of its PDU outlets, both feeds) and the hour of the peak. It is run four ways, with the
same SQL text:

  lake_raw         shoal's ``Connection`` (delta_scan views) on ``metrics.samples`` JOIN ``metrics.series``
  lake_rollup_1h   shoal's ``Connection`` on ``metrics.samples_1h`` (per series-hour sum/count) JOIN series
  parquet_raw      baseline (a): a plain DuckDB connection, ``read_parquet`` (hive partitions) of the very
                   Parquet files of the lake's current snapshot: same data, no Delta layer
  parquet_rollup_1h  the same over the rollup table's files

Baseline (b) is raw vs rollup. Each is timed "cold" (first query on a new connection; connection setup
reported apart; the OS page cache is warm either way) and "warm" (median of ``--repeats`` on that
connection). The four answers are checked to agree. Also shoal's ``power.peak_vs_average(rack)``
over the same 30 days (raw samples, warm median). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from shoal.lake import Lake
from shoal.models import ModelRunner
from shoal.query import Connection, connect_lake
from shoal.sources.prometheus.tables import SAMPLES, SAMPLES_1H, SERIES
from shoal.usecases.infra.history import Fleet, write_history
from shoal.usecases.infra.power import peak_vs_average
from shoal.usecases.infra.topology import TopologyConfig
from shoal.usecases.metrics.models import models as metrics_models

START = date(2026, 1, 5)

_TAIL = """
h AS (SELECT rack, hour, sum(w) AS rack_w FROM o GROUP BY ALL)
SELECT rack, CAST(hour AS DATE) AS day, avg(rack_w) AS avg_w, max(rack_w) AS peak_w,
       arg_max(hour, rack_w) AS peak_hour
FROM h GROUP BY ALL ORDER BY rack, day
"""
RAW_SQL = (
    """
WITH o AS (
    SELECT se.labels['rack'] AS rack, to_timestamp((epoch_ms(sa.ts) // 3600000) * 3600) AS hour,
           sa.series_id, avg(sa.value) AS w
    FROM metrics.samples sa JOIN metrics.series se USING (series_id)
    WHERE se.metric = 'pdu_outlet_power_watts' AND sa.day >= ? AND sa.day < ?
    GROUP BY ALL),"""
    + _TAIL
)
ROLLUP_SQL = (
    """
WITH o AS (
    SELECT se.labels['rack'] AS rack, r.bucket AS hour, r.series_id, r.sum / r.count AS w
    FROM metrics.samples_1h r JOIN metrics.series se USING (series_id)
    WHERE se.metric = 'pdu_outlet_power_watts' AND r.day >= ? AND r.day < ?),"""
    + _TAIL
)


def plain_connection(lake: Lake) -> duckdb.DuckDBPyConnection:
    """A plain DuckDB connection with read_parquet views over the lake tables' current data files."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE SCHEMA metrics")
    for name in (SAMPLES, SAMPLES_1H, SERIES):
        table = lake.table(name)
        files = [f.removeprefix("file://") for f in table.files()]
        hive = "true" if table.partition_by else "false"
        con.execute(
            f"CREATE VIEW {name} AS SELECT * FROM read_parquet({files!r}, hive_partitioning = {hive})"
        )
    return con


def timed(fn: Callable[[], pa.Table]) -> tuple[float, pa.Table]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def measure(
    connect: Callable[[], Any], sql: str, params: list[Any], repeats: int, cold_runs: int
) -> tuple[dict[str, float], pa.Table]:
    connect_s: list[float] = []
    cold: list[float] = []
    warm: list[float] = []
    result = pa.table({})
    for c in range(cold_runs):
        t0 = time.perf_counter()
        con = connect()
        connect_s.append(time.perf_counter() - t0)
        try:

            def run(con: Any = con) -> pa.Table:
                return con.sql(sql, params=params).to_arrow_table()

            s, result = timed(run)
            cold.append(s)
            if c == 0:
                warm.extend(timed(run)[0] for _ in range(repeats))
        finally:
            con.close()
    return {
        "connect_s": round(statistics.median(connect_s), 3),
        "cold_s": round(statistics.median(cold), 3),
        "warm_s": round(statistics.median(warm), 3),
    }, result


def max_rel_diff(a: pa.Table, b: pa.Table) -> float:
    if a.num_rows != b.num_rows or a["rack"].to_pylist() != b["rack"].to_pylist():
        return float("inf")
    worst = 0.0
    for col in ("avg_w", "peak_w"):
        for x, y in zip(a[col].to_pylist(), b[col].to_pylist(), strict=True):
            worst = max(worst, abs(x - y) / max(abs(x), 1e-9))
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--datacenters", type=int, default=2)
    ap.add_argument("--podlets-per-datacenter", type=int, default=3)
    ap.add_argument("--racks-per-podlet", type=int, default=6)
    ap.add_argument("--hypervisors-per-rack", type=int, default=12)
    ap.add_argument("--disks-per-hypervisor", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5, help="warm repeats per variant")
    ap.add_argument("--cold-runs", type=int, default=3, help="new connections per variant")
    args = ap.parse_args()
    cfg = TopologyConfig(
        datacenters_per_region=args.datacenters,
        podlets_per_datacenter=args.podlets_per_datacenter,
        racks_per_podlet=args.racks_per_podlet,
        hypervisors_per_rack=args.hypervisors_per_rack,
        disks_per_hypervisor=args.disks_per_hypervisor,
    )

    work = Path(tempfile.mkdtemp(prefix="shoal-bench-power-"))
    try:
        lake = Lake(str(work / "lake"))
        fleet = Fleet.build(cfg, start=START, days=args.days)
        hist = write_history(lake, fleet)
        t0 = time.perf_counter()
        with ModelRunner(lake, list(metrics_models()), con=connect_lake(lake)) as runner:
            runner.refresh()  # the rollups are models of the metrics use case
        rollup_build_s = time.perf_counter() - t0

        topo = fleet.topology
        pdu_series = topo.n_outlets + 6 * topo.n_pdus
        since = datetime(START.year, START.month, START.day, tzinfo=UTC)
        until = since + timedelta(days=args.days)
        params: list[Any] = [since.date(), until.date()]

        variants: dict[str, tuple[Callable[[], Any], str]] = {
            "lake_raw": (lambda: Connection(lake), RAW_SQL),
            "lake_rollup_1h": (lambda: Connection(lake), ROLLUP_SQL),
            "parquet_raw": (lambda: plain_connection(lake), RAW_SQL),
            "parquet_rollup_1h": (lambda: plain_connection(lake), ROLLUP_SQL),
        }
        figures: dict[str, dict[str, float]] = {}
        results: dict[str, pa.Table] = {}
        for name, (connect, sql) in variants.items():
            figures[name], results[name] = measure(connect, sql, params, args.repeats, args.cold_runs)
        ref = results["lake_raw"]
        agree = {name: max_rel_diff(ref, res) for name, res in results.items() if name != "lake_raw"}
        if not all(d < 1e-9 for d in agree.values()):
            raise SystemExit(f"the variants disagree (max relative difference): {agree}")

        with Connection(lake) as con:
            pva = [
                timed(lambda: peak_vs_average(con, "rack", since, until))[0]
                for _ in range(max(args.repeats // 2, 2))
            ]

        warm = {k: v["warm_s"] for k, v in figures.items()}
        cold = {k: v["cold_s"] for k, v in figures.items()}
        out: dict[str, Any] = {
            "fleet": {
                "racks": topo.n_racks,
                "pdus": topo.n_pdus,
                "hypervisors": topo.n_hosts,
                "disks": topo.n_disks,
                "days": args.days,
            },
            "samples_total": hist.samples,
            "pdu_samples": pdu_series * 288 * args.days,
            "outlet_power_samples": topo.n_outlets * 288 * args.days,
            "rollup_1h_rows": lake.table(SAMPLES_1H).count(),
            "setup": {
                "write_history_s": round(hist.seconds, 1),
                "write_history_samples_per_s": round(hist.samples_per_second),
                "refresh_rollups_s": round(rollup_build_s, 1),
            },
            "result_rows": ref.num_rows,
            "query": figures,
            "ratios": {
                "lake_raw_vs_parquet_raw_warm": round(warm["lake_raw"] / warm["parquet_raw"], 2),
                "lake_rollup_vs_parquet_rollup_warm": round(
                    warm["lake_rollup_1h"] / warm["parquet_rollup_1h"], 2
                ),
                "lake_raw_vs_lake_rollup_warm": round(warm["lake_raw"] / warm["lake_rollup_1h"], 1),
                "lake_raw_vs_lake_rollup_cold": round(cold["lake_raw"] / cold["lake_rollup_1h"], 1),
            },
            "max_rel_diff_vs_lake_raw": agree,
            "power_peak_vs_average_rack_warm_s": round(statistics.median(pva), 3),
            "repeats": args.repeats,
            "cold_runs": args.cold_runs,
            "duckdb_threads": os.cpu_count(),
            "loadavg": [round(x, 2) for x in os.getloadavg()],
        }
        print(json.dumps(out, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

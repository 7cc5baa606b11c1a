"""Rollups of ``metrics.samples`` into ``metrics.samples_5m`` and ``metrics.samples_1h``.

Each rollup row is one series in one bucket: min, max, sum, count and last (value at the latest
ts). Refresh is incremental by ``day``: only days touched by samples committed since the last
refresh are recomputed and replaced (``overwrite`` with a ``day IN (...)`` predicate). Progress
is the app transaction ``rollup:<table>`` = the ``metrics.samples`` version rolled up, written in
the rollup's commit, so a crash between days only repeats (idempotent) work.

The same SQL is offered as :func:`rollup_models` for ``shoal.models``' runner (unique_key
series_id + bucket, incremental_by day).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from shoal.lake import Lake
from shoal.sources.prometheus.tables import (
    ROLLUP_SCHEMA,
    SAMPLES,
    SAMPLES_1H,
    SAMPLES_5M,
    ensure_metrics_tables,
)

#: rollup table -> bucket width in seconds
ROLLUPS: dict[str, int] = {SAMPLES_5M: 300, SAMPLES_1H: 3600}


def rollup_sql(step_s: int, source: str = SAMPLES) -> str:
    """DuckDB SELECT computing the rollup of ``source`` (correct for any subset of days)."""
    return f"""
SELECT series_id,
       to_timestamp((epoch_ms(ts) // {step_s * 1000}) * {step_s}) AS bucket,
       day,
       min(value) AS "min",
       max(value) AS "max",
       sum(value) AS "sum",
       count(*)::BIGINT AS "count",
       arg_max(value, ts) AS "last"
FROM {source}
GROUP BY series_id, bucket, day
""".strip()


def rollup_models() -> list[Any]:
    """The rollups as ``shoal.models.Model`` declarations (needs shoal.models)."""
    from shoal.models import Model

    return [
        Model(
            name=name,
            sql=rollup_sql(step),
            unique_key=("series_id", "bucket"),
            incremental_by=("day",),
            upstream=(SAMPLES,),
            description=f"metrics.samples per series and {step}s bucket: min/max/sum/count/last",
            partition_by=("day",),
        )
        for name, step in ROLLUPS.items()
    ]


def _days_literal(days: list[dt.date]) -> str:
    return ", ".join(f"'{d.isoformat()}'" for d in days)


def _compute(dataset: Any, step_s: int, day: dt.date) -> pa.Table:
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("src", dataset)
        sql = rollup_sql(step_s, "(SELECT * FROM src WHERE day = ?)")
        out = con.execute(sql, [day]).to_arrow_table()
    finally:
        con.close()
    cols = [out[f.name].cast(f.type) for f in ROLLUP_SCHEMA]
    return pa.Table.from_arrays(cols, schema=ROLLUP_SCHEMA)


def refresh_rollups(lake: Lake, *, full: bool = False) -> dict[str, list[str]]:
    """Bring every rollup up to date with ``metrics.samples``; returns the days recomputed per table."""
    ensure_metrics_tables(lake)
    src = lake.table(SAMPLES)
    current = src.version
    done: dict[str, list[str]] = {}
    for name, step_s in ROLLUPS.items():
        target = lake.table(name)
        app_id = f"rollup:{name}"
        last = None if full else target.app_version(app_id)
        if last is not None and last >= current:
            done[name] = []
            continue
        if last is None:
            day_col = src.to_arrow(columns=["day"], version=current)["day"]
        else:
            changes = src.changes_since(last)
            day_col = changes["day"] if "day" in changes.column_names else pa.chunked_array([], pa.date32())
        days = sorted(d for d in pc.unique(day_col).to_pylist() if d is not None)
        dataset = src.delta(current).to_pyarrow_dataset()
        if not days:
            target.append(ROLLUP_SCHEMA.empty_table(), app_transactions={app_id: current})
        for i, day in enumerate(days):
            rows = _compute(dataset, step_s, day)
            txns = {app_id: current} if i == len(days) - 1 else None
            target.overwrite(rows, predicate=f"day IN ({_days_literal([day])})", app_transactions=txns)
        done[name] = [d.isoformat() for d in days]
    return done

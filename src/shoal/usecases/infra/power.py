"""Power patterns over the lake's metric tables (DuckDB SQL).

Every function takes a DuckDB connection (or shoal's lake connection) on which ``metrics.series``
and ``metrics.samples`` are visible, and returns an Arrow table. Levels: ``podlet``, ``rack`` and
``device`` (a hypervisor: the sum of its outlets on PDU A and B, joined to its disks' vendor/model).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

import duckdb
import pyarrow as pa

from shoal.errors import ConfigError

LEVELS = ("podlet", "rack", "device")


class SqlConnection(Protocol):
    """What analytics need: ``sql(text, params=...)`` returning a DuckDB relation."""

    def sql(self, query: str, params: Any = ...) -> duckdb.DuckDBPyRelation: ...


def connect_tables(tables: dict[str, pa.Table]) -> duckdb.DuckDBPyConnection:
    """A plain DuckDB connection with Arrow tables registered as ``namespace.table`` views."""
    con = duckdb.connect()
    for name, tbl in tables.items():
        ns, short = name.split(".", 1)
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{ns}"')
        tmp = f"__arrow_{ns}_{short}"
        con.register(tmp, tbl)
        con.execute(f'CREATE OR REPLACE VIEW "{ns}"."{short}" AS SELECT * FROM "{tmp}"')
    return con


def time_filter(column: str, since: datetime | None, until: datetime | None) -> tuple[str, list[Any]]:
    """``AND``-able SQL condition and parameters restricting ``column`` to [since, until)."""
    cond, params = [], []
    if since is not None:
        cond.append(f"{column} >= ?")
        params.append(since)
    if until is not None:
        cond.append(f"{column} < ?")
        params.append(until)
    return (" AND ".join(cond) or "TRUE"), params


def _arrow(con: SqlConnection, query: str, params: list[Any]) -> pa.Table:
    return con.sql(query, params=params).to_arrow_table()


OUTLETS_SQL = """
    SELECT se.labels['podlet'] AS podlet, se.labels['rack'] AS rack, se.labels['pdu'] AS pdu,
           se.labels['phase'] AS phase, se.labels['host'] AS host, sa.ts, sa.value
    FROM metrics.samples sa JOIN metrics.series se USING (series_id)
    WHERE se.metric = 'pdu_outlet_power_watts' AND {where}
"""


def power_profile(
    con: SqlConnection, level: str, since: datetime | None = None, until: datetime | None = None
) -> pa.Table:
    """Daily profile: mean and peak total power per entity and UTC hour of day."""
    if level not in LEVELS:
        raise ConfigError(f"level must be one of {LEVELS}, got {level!r}")
    key = "host" if level == "device" else level
    where, params = time_filter("sa.ts", since, until)
    query = f"""
        WITH o AS ({OUTLETS_SQL.format(where=where)}),
        t AS (SELECT {key} AS entity, ts, sum(value) AS watts FROM o GROUP BY ALL)
        SELECT '{level}' AS level, entity, (epoch_ms(ts) // 3600000) % 24 AS hour_of_day,
               avg(watts) AS avg_w, max(watts) AS peak_w, count(*) AS samples
        FROM t GROUP BY ALL ORDER BY entity, hour_of_day
    """
    return _arrow(con, query, params)


def peak_vs_average(
    con: SqlConnection, level: str, since: datetime | None = None, until: datetime | None = None
) -> pa.Table:
    """Per entity: mean, peak and peak/mean of total power, and the hour of day of the daily peak.

    At ``device`` level the hypervisor's disks' vendor/model (from the SMART series) are joined in.
    """
    if level not in LEVELS:
        raise ConfigError(f"level must be one of {LEVELS}, got {level!r}")
    key = "host" if level == "device" else level
    where, params = time_filter("sa.ts", since, until)
    disks = ""
    disk_cols = ""
    if level == "device":
        disks = """
        , d AS (
            SELECT labels['host'] AS entity,
                   string_agg(DISTINCT labels['vendor'], ',') AS disk_vendor,
                   string_agg(DISTINCT labels['model'], ',') AS disk_model,
                   count(DISTINCT labels['device']) AS disks
            FROM metrics.series WHERE metric = 'smart_power_on_hours' GROUP BY ALL)"""
        disk_cols = ", d.disk_vendor, d.disk_model, d.disks"
    query = f"""
        WITH o AS ({OUTLETS_SQL.format(where=where)}),
        t AS (SELECT {key} AS entity, ts, sum(value) AS watts FROM o GROUP BY ALL),
        h AS (SELECT entity, (epoch_ms(ts) // 3600000) % 24 AS hod, avg(watts) AS w FROM t GROUP BY ALL),
        s AS (SELECT entity, avg(watts) AS avg_w, max(watts) AS peak_w,
                     quantile_cont(watts, 0.95) AS p95_w FROM t GROUP BY ALL),
        pk AS (SELECT entity, arg_max(hod, w) AS peak_hour FROM h GROUP BY ALL)
        {disks}
        SELECT '{level}' AS level, s.entity, s.avg_w, s.p95_w, s.peak_w, s.peak_w / s.avg_w AS peak_to_avg,
               pk.peak_hour {disk_cols}
        FROM s JOIN pk USING (entity) {"LEFT JOIN d USING (entity)" if level == "device" else ""}
        ORDER BY s.entity
    """
    return _arrow(con, query, params)


def phase_balance(
    con: SqlConnection, since: datetime | None = None, until: datetime | None = None
) -> pa.Table:
    """Per PDU and hour: max/min ratio of the mean phase currents (1.0 = perfectly balanced)."""
    where, params = time_filter("sa.ts", since, until)
    query = f"""
        WITH c AS (
            SELECT se.labels['podlet'] AS podlet, se.labels['rack'] AS rack, se.labels['pdu'] AS pdu,
                   se.labels['phase'] AS phase, to_timestamp((epoch_ms(sa.ts) // 3600000) * 3600) AS hour,
                   avg(sa.value) AS amps
            FROM metrics.samples sa JOIN metrics.series se USING (series_id)
            WHERE se.metric = 'pdu_phase_current_amperes' AND {where}
            GROUP BY ALL)
        SELECT podlet, rack, pdu, hour, max(amps) / nullif(min(amps), 0) AS phase_ratio,
               arg_max(phase, amps) AS heaviest_phase, sum(amps) AS total_amps
        FROM c GROUP BY ALL ORDER BY pdu, hour
    """
    return _arrow(con, query, params)


def pdu_ab_balance(
    con: SqlConnection, since: datetime | None = None, until: datetime | None = None
) -> pa.Table:
    """Per rack and hour: power on PDU A / power on PDU B (1.0 = redundant feeds share equally)."""
    where, params = time_filter("sa.ts", since, until)
    query = f"""
        WITH o AS ({OUTLETS_SQL.format(where=where)}),
        h AS (SELECT podlet, rack, to_timestamp((epoch_ms(ts) // 3600000) * 3600) AS hour,
                     sum(value) FILTER (WHERE pdu LIKE '%-pdu-a') / count(DISTINCT ts) AS a_w,
                     sum(value) FILTER (WHERE pdu LIKE '%-pdu-b') / count(DISTINCT ts) AS b_w
              FROM o GROUP BY ALL)
        SELECT podlet, rack, hour, a_w, b_w, a_w / nullif(b_w, 0) AS ab_ratio FROM h ORDER BY rack, hour
    """
    return _arrow(con, query, params)

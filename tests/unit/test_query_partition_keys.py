"""Day buckets read from the partition column they derive from: same rows, names and types."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from shoal.lake import Lake
from shoal.query import connect_lake
from shoal.query.engine import Connection

TS = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema(
    [("occurred_at", TS), ("user_id", pa.string()), ("x", pa.int64()), ("event_date", pa.date32())]
)
#: day starts and ends, a leap day, before 1970 (the floor, not toward zero)
EDGES = [
    datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(2024, 2, 29, 23, 30, 0, 1, tzinfo=UTC),
    datetime(2026, 1, 4, 0, 0, tzinfo=UTC),
    datetime(2026, 1, 4, 23, 59, 59, 999_999, tzinfo=UTC),
]


def _append(events: object, times: list[datetime | None], users: list[str | None]) -> None:
    t = pa.array(times, TS)
    rows = pa.table(
        {
            "occurred_at": t,
            "user_id": pa.array(users, pa.string()),
            "x": list(range(len(times))),
            "event_date": pc.cast(t, pa.date32()),  # what ingest's transform writes (NULL for NULL)
        },
        schema=SCHEMA,
    )
    events.append(rows)  # type: ignore[attr-defined]


def _lake(tmp_path: Path, sources: bool = True) -> Lake:
    """s.events partitioned by event_date = UTC day(occurred_at); s.users has an event_date too."""
    lake = Lake(str(tmp_path / "lake"))
    events = lake.create_table(
        "s.events",
        SCHEMA,
        partition_by=["event_date"],
        partition_sources={"event_date": ("occurred_at", "day")} if sources else None,
    )
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for d in range(6):
        times: list[datetime | None] = [start + timedelta(days=d, minutes=97 * i) for i in range(15)]
        _append(events, times, [f"u{i % 4}" if i % 7 else None for i in range(15)])
    _append(events, [*EDGES, None], ["u1", "u2", None, "u1", "u3", "u2"])
    lake.create_table("s.users", pa.schema([("user_id", pa.string()), ("event_date", pa.date32())])).append(
        pa.table({"user_id": ["u1", "u2"], "event_date": pa.array([start.date()] * 2, pa.date32())})
    )
    return lake


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    return _lake(tmp_path_factory.mktemp("keys"))


REWRITTEN = [
    # the daily billable users of bench_query.py
    "SELECT date_trunc('day', occurred_at) AS day, count(DISTINCT user_id) AS users FROM s.events "
    "WHERE x > 0 GROUP BY 1",
    # no aliases: the column names are the expressions as written
    "SELECT CAST(occurred_at AS DATE), occurred_at::DATE, date_trunc('day', occurred_at), count(*) "
    "FROM s.events GROUP BY ALL",
    "SELECT date_trunc('month', e.occurred_at) m, date_trunc('week', occurred_at), "
    "datetrunc('year', e.occurred_at), date_trunc('quarter', occurred_at), sum(x) FROM s.events e "
    "GROUP BY 1, 2, 3, 4",
    # inside aggregates, in WHERE, HAVING and ORDER BY; references inside aggregates stay as they are
    "SELECT count(DISTINCT occurred_at::DATE), min(occurred_at) FROM s.events",
    "SELECT count(*) FROM s.events WHERE occurred_at::DATE = DATE '2026-01-03'",
    "SELECT occurred_at::DATE AS d, min(occurred_at), max(occurred_at), count(occurred_at) "
    "FROM s.events GROUP BY 1 ORDER BY 1",
    "SELECT date_trunc('day', occurred_at) d, count(*) FROM s.events GROUP BY d "
    "HAVING date_trunc('day', occurred_at) > TIMESTAMPTZ '2026-01-02 00:00:00+00' "
    "ORDER BY date_trunc('day', occurred_at)",
    # a join with another table that has an event_date: the events' own is read
    "SELECT date_trunc('day', e.occurred_at) d, count(DISTINCT u.user_id) FROM s.events e "
    "JOIN s.users u ON e.user_id = u.user_id GROUP BY 1",
    # a CTE, a set operation
    "WITH w AS (SELECT date_trunc('day', occurred_at) AS d, user_id FROM s.events) "
    "SELECT d, count(DISTINCT user_id) FROM w GROUP BY d",
    "SELECT occurred_at::DATE FROM s.events UNION ALL SELECT event_date FROM s.users",
    # grouping sets, windows, DISTINCT ON, FILTER, QUALIFY, an ordered aggregate
    "SELECT occurred_at::DATE AS d, count(*) FROM s.events GROUP BY ROLLUP (occurred_at::DATE)",
    "SELECT occurred_at::DATE d, sum(x) OVER (PARTITION BY occurred_at::DATE) FROM s.events",
    "SELECT DISTINCT ON (occurred_at::DATE) occurred_at::DATE, x FROM s.events ORDER BY occurred_at::DATE, x",
    "SELECT max(date_trunc('day', occurred_at)) FILTER (WHERE x > 3), count(*) FROM s.events",
    "SELECT occurred_at::DATE d FROM s.events "
    "QUALIFY row_number() OVER (PARTITION BY occurred_at::DATE ORDER BY x) = 1",
    "SELECT occurred_at::DATE, list(x ORDER BY occurred_at, x) FROM s.events GROUP BY 1",
]


def _run(con: Connection, query: str, *, keys: bool, utc: bool = True) -> pa.Table:
    con.partition_key_rewrite, con.utc_time_rewrite = keys, utc
    return con.query_arrow(query)


def _rows(t: pa.Table) -> list[str]:
    return sorted(map(repr, zip(*[c.to_pylist() for c in t.columns], strict=True)))


@pytest.mark.parametrize("query", REWRITTEN)
def test_rewrite_reads_the_partition_column_and_keeps_the_result(lake: Lake, query: str) -> None:
    with connect_lake(lake) as con:
        assert "event_date" in con._prepare(query).replace("SELECT event_date FROM s.users", "")
        con.partition_key_rewrite = False
        assert "event_date" not in con._prepare(query).replace("SELECT event_date FROM s.users", "")
        as_written = _run(con, query, keys=False, utc=False)  # DuckDB's own functions, ICU
        got = _run(con, query, keys=True)
        assert got.schema == as_written.schema  # names and types
        assert _rows(got) == _rows(as_written)
        assert got.num_rows > 0


def test_the_daily_bucket_needs_no_timestamp_column(lake: Lake) -> None:
    query = "SELECT date_trunc('day', occurred_at) AS day, count(DISTINCT user_id) FROM s.events GROUP BY 1"
    with connect_lake(lake) as con:
        assert "occurred_at" not in con._prepare(query)
        plan = str(con.duckdb.sql("EXPLAIN " + con._prepare(query)).fetchall())
        assert "occurred_at" not in plan  # not even read from the files


@pytest.mark.parametrize(
    "query",
    [
        # a unit shorter than the partition's
        "SELECT date_trunc('hour', occurred_at) h, count(*) FROM s.events GROUP BY 1",
        "SELECT date_trunc('minute', occurred_at) h FROM s.events",
        # grouped by the time itself: the day of it must stay a function of the grouped column
        "SELECT date_trunc('day', occurred_at) d, count(*) FROM s.events GROUP BY occurred_at",
        "SELECT occurred_at, occurred_at::DATE FROM s.events",
        # an alias or a lambda that reuses the column's name
        "SELECT occurred_at::DATE AS d, x AS occurred_at FROM s.events",
        "SELECT occurred_at::DATE, list_transform([1], occurred_at -> occurred_at + 1) FROM s.events",
        # not a plain cast, a unit that is not a constant
        "SELECT TRY_CAST(occurred_at AS DATE) FROM s.events",
        "SELECT date_trunc(CASE WHEN x > 0 THEN 'day' ELSE 'month' END, occurred_at) FROM s.events",
        # a FROM with a relation that is not a lake table, time travel
        "SELECT occurred_at::DATE FROM s.events, range(2) r(i)",
        "SELECT occurred_at::DATE FROM s.events VERSION AS OF 2",
        # a derived table: its columns are not the lake table's
        "SELECT date_trunc('day', occurred_at) FROM (SELECT occurred_at + INTERVAL 1 HOUR AS occurred_at "
        "FROM s.events)",
    ],
)
def test_no_rewrite_where_it_could_change_a_result(lake: Lake, query: str) -> None:
    with connect_lake(lake) as con:
        assert "event_date" not in con._prepare(query)


def test_no_rewrite_without_declared_sources_or_outside_utc(lake: Lake, tmp_path: Path) -> None:
    query = "SELECT occurred_at::DATE AS d, count(*) FROM s.events GROUP BY 1"
    with connect_lake(_lake(tmp_path, sources=False)) as con:
        assert "event_date" not in con._prepare(query)
    with connect_lake(lake) as con:
        assert "event_date" in con._prepare(query)
        con.execute("SET TimeZone = 'Europe/Paris'")
        assert con._prepare(query) == query


def test_parameters_survive_the_rewrite(lake: Lake) -> None:
    query = "SELECT occurred_at::DATE AS d, count(*) FROM s.events WHERE x > ? AND user_id = ? GROUP BY 1"
    with connect_lake(lake) as con:
        assert "event_date" in con._prepare(query)
        got = con.sql(query, params=[2, "u1"]).fetchall()
        con.partition_key_rewrite = False
        assert sorted(got) == sorted(con.sql(query, params=[2, "u1"]).fetchall())
        assert got


def test_hour_partitions_give_hours_and_longer(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    schema = pa.schema([("occurred_at", TS), ("x", pa.int64()), ("event_hour", TS)])
    table = lake.create_table(
        "s.h", schema, partition_by=["event_hour"], partition_sources={"event_hour": ("occurred_at", "hour")}
    )
    t = pa.array([*EDGES, datetime(2026, 1, 4, 5, 59, tzinfo=UTC)], TS)
    table.append(
        pa.table({"occurred_at": t, "x": range(len(t)), "event_hour": pc.floor_temporal(t, unit="hour")})
    )
    query = (
        "SELECT date_trunc('hour', occurred_at) h, date_trunc('day', occurred_at), count(*) FROM s.h "
        "GROUP BY ALL"
    )
    with connect_lake(lake) as con:
        prepared = con._prepare(query)
        # read from the partition column; the second column keeps its name as written
        assert prepared.count("occurred_at") == 1
        assert "AS \"date_trunc('day', occurred_at)\"" in prepared
        as_written = _run(con, query, keys=False, utc=False)
        got = _run(con, query, keys=True)
        assert got.schema == as_written.schema
        assert _rows(got) == _rows(as_written)

"""Hour buckets read from a derived plain column (``derive``, ADR 0047): same rows, names and types."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from shoal.ingest.transform import derived_value
from shoal.lake import Lake
from shoal.query import connect_lake
from shoal.query.engine import Connection

TS = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema(
    [
        ("occurred_at", TS),
        ("product", pa.string()),
        ("x", pa.int64()),
        ("event_date", pa.date32()),
        ("event_hour", TS),
    ]
)
#: hour and day starts and ends, a leap day, before 1970 (the floor, not toward zero)
EDGES = [
    datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(2024, 2, 29, 23, 30, 0, 1, tzinfo=UTC),
    datetime(2026, 1, 4, 0, 59, 59, 999_999, tzinfo=UTC),
    datetime(2026, 1, 4, 1, 0, tzinfo=UTC),
]


def _rows(times: list[datetime | None]) -> pa.Table:
    t = pa.chunked_array([pa.array(times, TS)])
    return pa.table(
        {
            "occurred_at": t,
            "product": pa.array(["vm", "gpu", None][i % 3] for i in range(len(times))),
            "x": list(range(len(times))),
            "event_date": pc.cast(t, pa.date32()),
            "event_hour": derived_value(t, "hour"),  # what ingest writes: NULL for a NULL time
        },
        schema=SCHEMA,
    )


def _lake(tmp_path: Path, derived: bool = True) -> Lake:
    """s.events: event_date = UTC day(occurred_at) partitions it, event_hour = its hour (declared)."""
    lake = Lake(str(tmp_path / "lake"))
    events = lake.create_table(
        "s.events",
        SCHEMA,
        partition_by=["event_date"],
        partition_sources={"event_date": ("occurred_at", "day")},
        derived_columns={"event_hour": ("occurred_at", "hour")} if derived else None,
    )
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for d in range(3):
        events.append(_rows([start + timedelta(days=d, minutes=37 * i) for i in range(40)]))
    events.append(_rows([*EDGES, None]))
    return lake


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    return _lake(tmp_path_factory.mktemp("derived"))


def _run(con: Connection, query: str, *, derived: bool, utc: bool = True) -> pa.Table:
    con.derived_column_rewrite = con.partition_key_rewrite = derived
    con.utc_time_rewrite = utc
    return con.query_arrow(query)


def _sorted(t: pa.Table) -> list[str]:
    return sorted(map(repr, zip(*[c.to_pylist() for c in t.columns], strict=True)))


HOURLY = (
    "SELECT date_trunc('hour', occurred_at) AS hour, product, sum(x) AS s, count(*) AS n "
    "FROM s.events GROUP BY 1, 2"
)
REWRITTEN = [
    HOURLY,  # the hourly revenue of bench_query.py
    # no alias: the column keeps its name as written; longer units; in WHERE, HAVING, ORDER BY
    "SELECT date_trunc('hour', occurred_at), count(*) FROM s.events GROUP BY ALL",
    "SELECT date_trunc('hour', e.occurred_at) h, count(*) FROM s.events e "
    "WHERE date_trunc('hour', occurred_at) > TIMESTAMPTZ '2026-01-02 05:00:00+00' GROUP BY 1 "
    "HAVING date_trunc('hour', occurred_at) < TIMESTAMPTZ '2026-01-03 05:00:00+00' ORDER BY 1",
    "SELECT date_trunc('hour', occurred_at) h, date_trunc('day', occurred_at) d, "
    "date_trunc('month', occurred_at) m, count(*) FROM s.events GROUP BY ALL",
    "SELECT count(DISTINCT date_trunc('hour', occurred_at)), min(occurred_at) FROM s.events",
    "WITH w AS (SELECT date_trunc('hour', occurred_at) AS h, x FROM s.events) "
    "SELECT h, sum(x) FROM w GROUP BY h",
]


@pytest.mark.parametrize("query", REWRITTEN)
def test_hour_buckets_read_the_derived_column_and_keep_the_result(lake: Lake, query: str) -> None:
    with connect_lake(lake) as con:
        assert "event_hour" in con._prepare(query)
        con.derived_column_rewrite = False
        assert "event_hour" not in con._prepare(query)
        as_written = _run(con, query, derived=False, utc=False)  # DuckDB's own functions, ICU
        got = _run(con, query, derived=True)
        assert got.schema == as_written.schema  # names and types
        assert _sorted(got) == _sorted(as_written)
        assert got.num_rows > 0


def test_the_hourly_rollup_reads_no_timestamp(lake: Lake) -> None:
    with connect_lake(lake) as con:
        prepared = con._prepare(HOURLY)
        assert "occurred_at" not in prepared
        assert "occurred_at" not in str(con.duckdb.sql("EXPLAIN " + prepared).fetchall())


def test_a_day_bucket_still_reads_the_day_partition(lake: Lake) -> None:
    """The coarsest derivation wins: the partition value is one constant per file."""
    query = "SELECT date_trunc('day', occurred_at) d, occurred_at::DATE, count(*) FROM s.events GROUP BY ALL"
    with connect_lake(lake) as con:
        prepared = con._prepare(query)
        assert "event_date" in prepared
        assert "event_hour" not in prepared


@pytest.mark.parametrize(
    "query",
    [
        # a unit shorter than an hour; grouped by the time itself
        "SELECT date_trunc('minute', occurred_at) m, count(*) FROM s.events GROUP BY 1",
        "SELECT date_trunc('hour', occurred_at) h, count(*) FROM s.events GROUP BY occurred_at",
        # an alias that reuses the source's name; not a constant unit
        "SELECT date_trunc('hour', occurred_at) h, x AS occurred_at FROM s.events",
        "SELECT date_trunc(CASE WHEN x > 0 THEN 'hour' ELSE 'day' END, occurred_at) FROM s.events",
        # a FROM that is not only lake tables; time travel; a derived table
        "SELECT date_trunc('hour', occurred_at) FROM s.events, range(2) r(i)",
        "SELECT date_trunc('hour', occurred_at) FROM s.events VERSION AS OF 2",
        "SELECT date_trunc('hour', occurred_at) FROM (SELECT occurred_at + INTERVAL 1 MINUTE AS occurred_at "
        "FROM s.events)",
    ],
)
def test_no_rewrite_where_it_could_change_a_result(lake: Lake, query: str) -> None:
    with connect_lake(lake) as con:
        assert "event_hour" not in con._prepare(query)


def test_no_rewrite_of_an_undeclared_column_or_outside_utc(lake: Lake, tmp_path: Path) -> None:
    with connect_lake(_lake(tmp_path, derived=False)) as con:
        assert "event_hour" not in con._prepare(HOURLY)  # the column is there, but no promise
    with connect_lake(lake) as con:
        con.execute("SET TimeZone = 'Europe/Paris'")
        assert con._prepare(HOURLY) == HOURLY


def test_a_filter_on_the_source_gets_no_bound_on_a_derived_column(lake: Lake) -> None:
    """Bounds are for file pruning: only partition columns get them (an hour bound would be one
    more per-row comparison that skips no file)."""
    query = "SELECT count(*) FROM s.events WHERE occurred_at >= TIMESTAMPTZ '2026-01-02 00:00:00+00'"
    with connect_lake(lake) as con:
        prepared = con._prepare(query)
        assert "event_date" in prepared
        assert "event_hour" not in prepared


def test_declarations_are_checked_and_recorded(tmp_path: Path) -> None:
    from shoal.errors import ConfigError

    lake = Lake(str(tmp_path / "lake"))
    bad = {
        "event_date": ("occurred_at", "day"),  # a partition column
    }
    with pytest.raises(ConfigError, match="'event_date' is a partition column"):
        lake.create_table("s.a", SCHEMA, partition_by=["event_date"], derived_columns=bad)
    with pytest.raises(ConfigError, match="'nope' is not in the schema"):
        lake.create_table("s.a", SCHEMA, derived_columns={"event_hour": ("nope", "hour")})
    with pytest.raises(ConfigError, match="transform 'minute' is not one of day, hour"):
        lake.create_table("s.a", SCHEMA, derived_columns={"event_hour": ("occurred_at", "minute")})
    lake.create_table("s.a", SCHEMA, derived_columns={"event_hour": ("occurred_at", "hour")})
    assert lake.derived_columns("s.a") == {"event_hour": ("occurred_at", "hour")}
    assert lake.partition_sources("s.a") == {}

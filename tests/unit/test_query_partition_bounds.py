"""Partition bounds implied by filters on a partition's source column: same rows, fewer files."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from shoal.errors import ConfigError
from shoal.lake import Lake
from shoal.query import connect_lake

TS = pa.timestamp("us", tz="UTC")
START = datetime(2026, 1, 1, tzinfo=UTC)


def _lake(tmp_path: Path, sources: bool = True) -> Lake:
    """s.events: 10 days, one file per day, partitioned by event_date = UTC day(occurred_at)."""
    lake = Lake(str(tmp_path / "lake"))
    schema = pa.schema(
        [("occurred_at", TS), ("user_id", pa.string()), ("x", pa.int64()), ("event_date", pa.date32())]
    )
    events = lake.create_table(
        "s.events",
        schema,
        partition_by=["event_date"],
        partition_sources={"event_date": ("occurred_at", "day")} if sources else None,
    )
    for d in range(10):
        times = [START + timedelta(days=d, minutes=97 * i) for i in range(15)]  # crosses midnight
        t = pa.array(times, TS)
        events.append(
            pa.table(
                {
                    "occurred_at": t,
                    "user_id": [f"u{i % 4}" for i in range(15)],
                    "x": list(range(15)),
                    "event_date": pc.cast(t, pa.date32()),  # what ingest's transform writes
                },
                schema=schema,
            )
        )
    lake.create_table("s.users", pa.schema([("user_id", pa.string()), ("event_date", pa.date32())])).append(
        pa.table({"user_id": ["u1", "u2"], "event_date": pa.array([START.date()] * 2, pa.date32())})
    )
    return lake


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    return _lake(tmp_path_factory.mktemp("bounds"))


SAME = [
    "SELECT user_id, count(*) AS n, sum(x) FROM s.events "
    "WHERE occurred_at >= TIMESTAMP '2026-01-08 13:00:00' GROUP BY 1",
    "SELECT count(*) FROM s.events e WHERE e.occurred_at > '2026-01-03 23:59:59.999999' AND x < 9",
    "SELECT * FROM s.events WHERE TIMESTAMPTZ '2026-01-02 05:00:00+00' > occurred_at",
    "SELECT * FROM s.events WHERE occurred_at BETWEEN TIMESTAMP '2026-01-04 10:00' AND DATE '2026-01-06'",
    "SELECT * FROM s.events WHERE occurred_at = TIMESTAMP '2026-01-05 00:00:00'",
    "SELECT * FROM s.events WHERE occurred_at <= TIMESTAMP '2026-01-05 00:00:00' - INTERVAL 1 DAY",
    "SELECT count(*) FROM s.events WHERE occurred_at >= now() - INTERVAL 7 DAY",
    "SELECT e.user_id, u.event_date FROM s.events e JOIN s.users u ON e.user_id = u.user_id "
    "WHERE e.occurred_at < TIMESTAMP '2026-01-03 01:00:00'",
    "WITH w AS (SELECT * FROM s.events WHERE occurred_at >= TIMESTAMP '2026-01-09 12:00') "
    "SELECT count(*), min(occurred_at) FROM w",
    "SELECT * FROM s.users WHERE user_id IN "
    "(SELECT user_id FROM s.events WHERE occurred_at < DATE '2026-01-02')",
    # on a day boundary: the partition filter replaces the row filter (ADR 0056)
    "SELECT user_id, sum(x) FROM s.events "
    "WHERE occurred_at >= TIMESTAMP '2026-01-03' + INTERVAL 1 DAY GROUP BY 1",
    "SELECT count(*) FROM s.events "
    "WHERE '2026-01-04 00:00:00' <= occurred_at AND occurred_at < DATE '2026-01-07'",
    "SELECT * FROM s.events WHERE TIMESTAMPTZ '2026-01-05 00:00:00+00' > occurred_at",
]


@pytest.mark.parametrize("query", SAME)
def test_bounds_keep_the_rows_and_column_names(lake: Lake, query: str) -> None:
    con = connect_lake(lake)
    rewritten = con._prepare(query)
    assert "event_date" in rewritten.replace("u.event_date", "")  # a bound was added
    con.utc_time_rewrite = False  # as written
    assert con._prepare(query) == query
    plain = con.sql(query)
    want_names, want = plain.columns, sorted(map(repr, plain.fetchall()))
    con.utc_time_rewrite = True
    got = con.sql(query)
    assert got.columns == want_names
    assert sorted(map(repr, got.fetchall())) == want


def _files_scanned(con: object, query: str) -> str:
    plan = con.duckdb.sql("EXPLAIN ANALYZE " + con._prepare(query)).fetchall()[0][1]  # type: ignore[attr-defined]
    found = re.search(r"Scanning Files: (\d+/\d+)", plan)
    assert found, plan
    return found.group(1)


def test_a_time_filter_prunes_partitions(lake: Lake) -> None:
    con = connect_lake(lake)
    query = "SELECT count(*) FROM s.events WHERE occurred_at >= TIMESTAMP '2026-01-09 00:00:00'"
    # files of day 8 hold events of day 9 after midnight: partitions 9 and 10 (and no others)
    assert _files_scanned(con, query) == "2/10"
    con.utc_time_rewrite = False
    assert _files_scanned(con, query) == "10/10"


@pytest.mark.parametrize(
    "query",
    [
        # a volatile or column-dependent bound, a parameter: left as written
        "SELECT * FROM s.events WHERE occurred_at >= now() - to_days(CAST(random() * 3 AS INTEGER))",
        "SELECT * FROM s.events WHERE occurred_at >= CAST(event_date AS TIMESTAMP)",
        "SELECT * FROM s.events WHERE occurred_at >= ?",
        # not a top-level conjunct
        "SELECT * FROM s.events WHERE occurred_at >= TIMESTAMP '2026-01-09' OR x = 1",
        # a table function in the FROM: the unqualified column could be its
        "SELECT * FROM s.events, range(3) r(occurred_at2) WHERE occurred_at >= TIMESTAMP '2026-01-09'",
        # time travel reads delta_scan(...), not the view
        "SELECT * FROM s.events VERSION AS OF 3 WHERE occurred_at >= TIMESTAMP '2026-01-09'",
    ],
)
def test_no_bound_where_it_is_not_sure(lake: Lake, query: str) -> None:
    con = connect_lake(lake)
    assert "event_date >=" not in con._prepare(query).replace("(event_date AS", "")


def test_no_bound_without_declared_sources_or_outside_utc(lake: Lake, tmp_path: Path) -> None:
    query = "SELECT count(*) FROM s.events WHERE occurred_at >= TIMESTAMP '2026-01-09 00:00:00'"
    con = connect_lake(_lake(tmp_path, sources=False))
    assert con._prepare(query) == query
    con = connect_lake(lake)
    con.execute("SET TimeZone = 'Europe/Paris'")
    assert con._prepare(query) == query


def test_sources_are_checked_when_the_table_is_created(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    schema = pa.schema([("occurred_at", TS), ("event_date", pa.date32())])
    with pytest.raises(ConfigError, match="not a partition column"):
        lake.create_table("s.a", schema, partition_sources={"event_date": ("occurred_at", "day")})
    with pytest.raises(ConfigError, match="'nope', not in the schema"):
        lake.create_table(
            "s.b", schema, partition_by=["event_date"], partition_sources={"event_date": ("nope", "day")}
        )
    by = ["event_date"]
    with pytest.raises(ConfigError, match="transform 'week'"):
        lake.create_table(
            "s.c", schema, partition_by=by, partition_sources={"event_date": ("occurred_at", "week")}
        )
    lake.create_table(
        "s.d", schema, partition_by=by, partition_sources={"event_date": ("occurred_at", "day")}
    )
    assert lake.partition_sources("s.d") == {"event_date": ("occurred_at", "day")}
    lake.mark_pii("s.d", [])
    assert lake.partition_sources("s.d") == {"event_date": ("occurred_at", "day")}


def test_parameters_elsewhere_in_the_query_survive_the_bounds(lake: Lake) -> None:
    con = connect_lake(lake)
    query = (
        "SELECT count(*) FROM s.events WHERE occurred_at >= TIMESTAMP '2026-01-09' AND user_id = ? AND x > ?"
    )
    assert "event_date >=" in con._prepare(query)
    bounded = con.sql(query, params=["u1", 3]).fetchall()
    con.utc_time_rewrite = False
    assert con.sql(query, params=["u1", 3]).fetchall() == bounded


# -- filters the partition says exactly (ADR 0056) -------------------------------------------------
EXACT = [
    "SELECT user_id, count(*) FROM s.events WHERE occurred_at >= TIMESTAMP '2026-01-09 00:00:00' GROUP BY 1",
    "SELECT count(*) FROM s.events WHERE occurred_at < DATE '2026-01-04'",
    "SELECT count(*) FROM s.events WHERE '2026-01-04' <= occurred_at AND x < 9",
    "SELECT sum(x) FROM s.events e WHERE e.occurred_at >= make_timestamp(2026, 1, 6, 0, 0, 0)",
    "SELECT count(*) FROM s.events WHERE occurred_at >= TIMESTAMPTZ '2026-01-06 01:00:00+01'",
]


@pytest.mark.parametrize("query", EXACT)
def test_a_filter_on_a_day_boundary_is_replaced_by_the_partition_filter(lake: Lake, query: str) -> None:
    con = connect_lake(lake)
    rewritten = con._prepare(query)
    where = rewritten.split(" WHERE ", 1)[1]
    assert "occurred_at" not in where.replace("(occurred_at AS", ""), rewritten  # the row filter is gone
    assert "event_date" in where
    want = sorted(map(repr, con.duckdb.sql(query).fetchall()))  # as written, on the raw connection
    assert sorted(map(repr, con.sql(query).fetchall())) == want
    assert want not in (["(0,)"], ["(None,)"])  # the filter kept some rows


@pytest.mark.parametrize(
    "query",
    [
        # not on a boundary, or a comparison the day does not decide alone
        "SELECT count(*) FROM s.events WHERE occurred_at >= TIMESTAMP '2026-01-09 00:00:01'",
        "SELECT count(*) FROM s.events WHERE occurred_at > TIMESTAMP '2026-01-09 00:00:00'",
        "SELECT count(*) FROM s.events WHERE occurred_at <= DATE '2026-01-04'",
        "SELECT count(*) FROM s.events WHERE occurred_at = TIMESTAMP '2026-01-04 00:00:00'",
        "SELECT count(*) FROM s.events WHERE occurred_at BETWEEN DATE '2026-01-04' AND DATE '2026-01-06'",
        "SELECT count(*) FROM s.events WHERE occurred_at >= TIMESTAMPTZ '2026-01-06 00:00:00+01'",
        # a value that depends on when the query runs: its rewrite is kept and reused
        "SELECT count(*) FROM s.events WHERE occurred_at >= date_trunc('day', now()) - INTERVAL 3 DAY",
        "SELECT count(*) FROM s.events WHERE occurred_at >= today() - INTERVAL 3 DAY",
        "SELECT count(*) FROM s.events WHERE occurred_at >= NULL",
    ],
)
def test_a_filter_the_partition_does_not_say_exactly_is_kept(lake: Lake, query: str) -> None:
    con = connect_lake(lake)
    rewritten = con._prepare(query)
    where = rewritten.split(" WHERE ", 1)[1]
    assert "(occurred_at " in where, rewritten
    assert "event_date" in where, rewritten
    assert con.sql(query).fetchall() == con.duckdb.sql(query).fetchall()


def test_rows_without_a_time_stay_out_of_a_replaced_filter(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    schema = pa.schema([("occurred_at", TS), ("x", pa.int64()), ("event_date", pa.date32())])
    events = lake.create_table(
        "s.e", schema, partition_by=["event_date"], partition_sources={"event_date": ("occurred_at", "day")}
    )
    times = pa.array([START, START + timedelta(days=1), None, START + timedelta(days=2, hours=5)], TS)
    days = pc.cast(times, pa.date32())
    events.append(pa.table({"occurred_at": times, "x": [1, 2, 4, 8], "event_date": days}))
    con = connect_lake(lake)
    for query, want in [
        ("SELECT sum(x) FROM s.e WHERE occurred_at < DATE '2026-01-02'", 1),
        ("SELECT sum(x) FROM s.e WHERE occurred_at >= DATE '2026-01-02'", 10),
    ]:
        assert "occurred_at" not in con._prepare(query).split(" WHERE ", 1)[1]
        assert con.sql(query).fetchall() == [(want,)]

"""Time bucketing of lake timestamps without ICU: same values and types as DuckDB's own functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.lake import Lake
from shoal.query import connect_lake
from shoal.query.engine import Connection

TS = pa.timestamp("us", tz="UTC")
EDGES = [
    datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),  # before the epoch: floor, not toward 0
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(2024, 2, 29, 23, 30, 0, 1, tzinfo=UTC),
    datetime(2026, 3, 29, 1, 30, tzinfo=UTC),  # a DST change in Europe: nothing special in UTC
    datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC),
]

QUERIES = [
    "SELECT date_trunc('hour', occurred_at) AS h, count(*) AS n FROM s.events GROUP BY 1",
    "SELECT date_trunc('day', e.occurred_at) AS d, count(DISTINCT user_id) FROM s.events e GROUP BY ALL",
    "SELECT datetrunc('month', occurred_at), date_trunc('week', occurred_at), "
    "date_trunc('year', occurred_at) FROM s.events",
    "SELECT time_bucket(INTERVAL 15 MINUTE, occurred_at) b, sum(x) FROM s.events GROUP BY 1",
    "SELECT CAST(occurred_at AS DATE) AS d, occurred_at::DATE, hour(occurred_at), "
    "extract(minute FROM occurred_at), date_part('dow', occurred_at), dayofyear(s.events.occurred_at) "
    "FROM s.events",
    "WITH w AS (SELECT * FROM s.events WHERE x > 1) SELECT date_trunc('minute', occurred_at) FROM w",
    "SELECT * FROM (SELECT date_trunc('hour', occurred_at) AS h FROM s.events) q JOIN s.users u ON true",
]


def _lake(tmp_path: Path, times: list[datetime]) -> Lake:
    lake = Lake(str(tmp_path / "lake"))
    events = lake.create_table(
        "s.events",
        pa.schema(
            [("occurred_at", TS), ("plain", pa.timestamp("us")), ("user_id", pa.string()), ("x", pa.int64())]
        ),
    )
    events.append(
        pa.table(
            {
                "occurred_at": pa.array(times, TS),
                "plain": pa.array([t.replace(tzinfo=None) for t in times], pa.timestamp("us")),
                "user_id": [f"u{i % 3}" for i in range(len(times))],
                "x": list(range(len(times))),
            }
        )
    )
    lake.create_table("s.users", pa.schema([("user_id", pa.string())])).append(pa.table({"user_id": ["u0"]}))
    return lake


def _both(con: Connection, query: str) -> tuple[pa.Table, pa.Table]:
    con.utc_time_rewrite = False
    plain = con.query_arrow(query)
    con.utc_time_rewrite = True
    return plain, con.query_arrow(query)


def _sorted(t: pa.Table) -> list[tuple[object, ...]]:
    return sorted(zip(*[c.to_pylist() for c in t.columns], strict=True), key=repr)


@pytest.mark.parametrize("query", QUERIES)
def test_rewrite_gives_the_same_values_and_types(tmp_path: Path, query: str) -> None:
    with connect_lake(_lake(tmp_path, EDGES)) as con:
        assert "epoch_us(" in con._prepare(query)  # rewritten (calendar or fixed-width units)
        plain, fast = _both(con, query)
        assert fast.schema == plain.schema
        assert _sorted(fast) == _sorted(plain)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(-(10**15), 4 * 10**15), min_size=1, max_size=40))
def test_rewrite_matches_icu_on_any_instants(
    tmp_path_factory: pytest.TempPathFactory, micros: list[int]
) -> None:
    times = [datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=m) for m in micros]
    with connect_lake(_lake(tmp_path_factory.mktemp("p"), times)) as con:
        for query in QUERIES[:5]:
            plain, fast = _both(con, query)
            assert _sorted(fast) == _sorted(plain), query


@pytest.mark.parametrize(
    "query",
    [
        # an alias reuses the column's name: the argument may not be the lake column
        "SELECT date_trunc('hour', occurred_at) FROM (SELECT plain AS occurred_at FROM s.events)",
        "SELECT date_trunc('hour', occurred_at) FROM s.events t(a, occurred_at)",
        # a plain TIMESTAMP column: no ICU to avoid, and its result type must stay TIMESTAMP
        "SELECT date_trunc('hour', plain) FROM s.events",
        # relations that are not lake tables: their columns are not known here
        "SELECT date_trunc('hour', occurred_at) FROM mem",
        "SELECT date_trunc('hour', occurred_at) FROM s.events VERSION AS OF 1",
        # lambdas bind names of their own; the zone's own fields need an instant
        "SELECT list_transform([1], occurred_at -> occurred_at), date_trunc('hour', occurred_at) "
        "FROM s.events",
        "SELECT date_part('timezone', occurred_at) FROM s.events",
        "SELECT date_trunc(unit, occurred_at) FROM s.events, (SELECT 'hour' AS unit)",
    ],
)
def test_no_rewrite_where_it_could_change_a_result(tmp_path: Path, query: str) -> None:
    with connect_lake(_lake(tmp_path, EDGES)) as con:
        con.duckdb.execute("CREATE TABLE mem AS SELECT now() AS occurred_at")
        prepared = con._prepare(query)
        assert "epoch_us" not in prepared
        plain, fast = _both(con, query)
        assert _sorted(fast) == _sorted(plain)


def test_no_rewrite_outside_utc(tmp_path: Path) -> None:
    query = "SELECT date_trunc('day', occurred_at) AS d FROM s.events"
    with connect_lake(_lake(tmp_path, EDGES)) as con:
        con.execute("SET TimeZone = 'Europe/Paris'")
        assert con._prepare(query) == query
        days = con.query_arrow(query)["d"].to_pylist()
        # ICU's Paris midnights (23:00 or 22:00 UTC), not UTC ones
        assert {d.astimezone(UTC).hour for d in days} <= {22, 23}


def test_parameters_survive_the_rewrite(tmp_path: Path) -> None:
    with connect_lake(_lake(tmp_path, EDGES)) as con:
        q = "SELECT date_trunc('day', occurred_at) AS d FROM s.events WHERE x >= ? AND user_id = ? ORDER BY 1"
        assert "epoch_us" in con._prepare(q)
        got = con.sql(q, [1, "u1"]).to_arrow_table()["d"].to_pylist()
        assert got == [datetime(1970, 1, 1, tzinfo=UTC), datetime(2026, 12, 31, tzinfo=UTC)]


def test_a_pending_result_survives_a_rewritten_query(tmp_path: Path) -> None:
    with connect_lake(_lake(tmp_path, EDGES)) as con:
        con.execute("SELECT x FROM s.events WHERE x < 2 ORDER BY x")
        con.sql(QUERIES[0])  # parsed and rewritten on a cursor of the connection
        assert con.fetchall() == [(0,), (1,)]

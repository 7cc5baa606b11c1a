"""Rewrites kept per connection: reused while the lake columns they saw are unchanged."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from shoal.lake import Lake
from shoal.query import QueryError, connect_lake
from shoal.query.rewrite_cache import RewriteCache

TS = pa.timestamp("us", tz="UTC")
TIMES = [datetime(2026, 12, 6, h, 30, tzinfo=UTC) for h in (0, 0, 5, 23)]
HOURLY = "SELECT date_trunc('hour', occurred_at) AS h, count(*) AS n FROM s.events GROUP BY 1 ORDER BY 1"


def _lake(tmp_path: Path) -> Lake:
    lake = Lake(str(tmp_path / "lake"))
    lake.create_table("s.events", pa.schema([("occurred_at", TS), ("x", pa.int64())])).append(
        pa.table({"occurred_at": pa.array(TIMES, TS), "x": list(range(len(TIMES)))})
    )
    return lake


def test_a_repeated_query_is_rewritten_once_and_gives_the_same_rows(tmp_path: Path) -> None:
    with connect_lake(_lake(tmp_path)) as con:
        cache = con._rewrites
        first = con.query_arrow(HOURLY)
        misses = cache.misses
        for _ in range(3):
            assert con.query_arrow(HOURLY) == first
        assert cache.misses == misses
        assert cache.hits >= 3
        assert "epoch_us(" in con._prepare(HOURLY)
        con.utc_time_rewrite = False
        assert con.query_arrow(HOURLY) == first  # DuckDB's own date_trunc agrees


def test_new_data_keeps_the_rewrite_and_is_read(tmp_path: Path) -> None:
    lake = _lake(tmp_path)
    with connect_lake(lake) as con:
        before = con.query_arrow(HOURLY)["n"].to_pylist()
        misses = con._rewrites.misses
        lake.table("s.events").append(
            pa.table({"occurred_at": pa.array([TIMES[-1]], TS), "x": pa.array([9], pa.int64())})
        )
        after = con.query_arrow(HOURLY)["n"].to_pylist()
        assert after == [*before[:-1], before[-1] + 1]
        assert con._rewrites.misses == misses  # a commit with the same schema: same rewrite


def test_an_evolved_schema_rewrites_the_query_again(tmp_path: Path) -> None:
    lake = _lake(tmp_path)
    query = "SELECT date_trunc('hour', settled_at) AS h FROM s.events WHERE settled_at IS NOT NULL"
    with connect_lake(lake) as con:
        with pytest.raises(QueryError, match="settled_at"):
            con.query_arrow(query)
        assert "epoch_us(" not in con._prepare(query)  # no such column yet: left as written
        events = lake.table("s.events")
        events.add_columns([pa.field("settled_at", TS)])
        events.append(
            pa.table(
                {
                    "occurred_at": pa.array([TIMES[0]], TS),
                    "x": pa.array([7], pa.int64()),
                    "settled_at": pa.array([datetime(2026, 12, 6, 7, 59, tzinfo=UTC)], TS),
                }
            )
        )
        got = con.query_arrow(query)
        assert got["h"].to_pylist() == [datetime(2026, 12, 6, 7, tzinfo=UTC)]
        assert "epoch_us(" in con._prepare(query)  # the kept text was not reused


def test_a_table_mounted_later_is_rewritten(tmp_path: Path) -> None:
    lake = _lake(tmp_path)
    query = "SELECT date_trunc('day', t) AS d FROM s.later"
    with connect_lake(lake) as con:
        with pytest.raises(QueryError):
            con.query_arrow(query)
        lake.create_table("s.later", pa.schema([("t", TS)])).append(pa.table({"t": pa.array(TIMES, TS)}))
        con.refresh()
        assert "epoch_us(" in con._prepare(query)
        assert con.query_arrow(query)["d"].to_pylist() == [datetime(2026, 12, 6, tzinfo=UTC)] * 4


def test_the_cache_keeps_the_most_recently_used(tmp_path: Path) -> None:
    calls: list[str] = []
    with connect_lake(_lake(tmp_path)) as con:
        cache = RewriteCache(con._helper, con._lake_columns, size=2)

        def rewrite(q: str) -> str:
            def run(columns: object) -> str:
                calls.append(q)
                return q.upper()

            return cache.rewrite(q, 0, run)

        for q in ("a", "b", "a", "c", "a", "b"):
            assert rewrite(q) == q.upper()
        # "b" was dropped for "c" (least recently used), "a" never was
        assert calls == ["a", "b", "c", "b"]

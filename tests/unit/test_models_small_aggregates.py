"""A refresh's small aggregations in Arrow give what the DuckDB statements they replace gave."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import duckdb
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.models.context import duplicate_key
from shoal.models.slices import restate_points, restate_points_sql

TS = pa.timestamp("us", tz="UTC")
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _rows(t: pa.Table) -> list[tuple[object, ...]]:
    return sorted(zip(*[c.to_pylist() for c in t.columns], strict=True), key=repr)


def test_a_null_restate_value_restates_its_whole_slice() -> None:
    touched = pa.table(
        {
            "month": ["2026-11", "2026-11", "2026-11", "2026-10", None],
            "resource": pa.array(["a", "a", "b", "a", "a"], pa.string_view()),
            "hour": pa.array([T0 + timedelta(hours=5), T0 + timedelta(hours=2), None, T0, T0], TS),
        }
    )
    got = restate_points(duckdb.connect(), touched, ["month", "resource"], "hour")
    assert _rows(got) == _rows(
        pa.table(
            {
                "month": ["2026-10", "2026-11", "2026-11", None],
                "resource": ["a", "a", "b", "a"],
                "__shoal_from": pa.array([T0, T0 + timedelta(hours=2), None, T0], TS),
            }
        )
    )
    assert got.schema.field("__shoal_from").type == TS


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["2026-10", "2026-11", None]),
            st.integers(0, 5),
            st.one_of(st.none(), st.integers(0, 48)),
        ),
        min_size=1,
        max_size=60,
    )
)
def test_restate_points_match_the_sql(rows: list[tuple[str | None, int, int | None]]) -> None:
    touched = pa.table(
        {
            "month": [m for m, _, _ in rows],
            "resource": [f"r{r}" for _, r, _ in rows],
            "hour": pa.array([None if h is None else T0 + timedelta(hours=h) for _, _, h in rows], TS),
        }
    )
    con = duckdb.connect()
    by = ["month", "resource"]
    arrow, sql = restate_points(con, touched, by, "hour"), restate_points_sql(con, touched, by, "hour")
    assert _rows(arrow) == _rows(sql)


def test_a_duplicate_key_is_found_with_its_count_nulls_being_one_value() -> None:
    con = duckdb.connect()
    unique = pa.table({"k": ["a", "b", None], "n": pa.array([Decimal("1.5"), Decimal("1.5"), None])})
    assert duplicate_key(unique, con) is None
    twice = pa.table({"k": ["a", None, "b", None], "n": [1, None, 2, None]})
    assert duplicate_key(twice, con) == (None, None, 2)
    thrice = pa.table({"k": pa.array(["x", "x", "x"], pa.string_view()), "t": pa.array([T0] * 3, TS)})
    assert duplicate_key(thrice, con) == ("x", T0, 3)


def test_a_key_arrow_cannot_hash_is_checked_in_duckdb() -> None:
    keys = pa.table({"k": pa.array([[1, 2], [1, 2]], pa.list_(pa.int64()))})
    assert duplicate_key(keys, duckdb.connect()) == ([1, 2], 2)

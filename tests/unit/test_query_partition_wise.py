"""Aggregations with a DISTINCT run one range of day partitions at a time (ADR 0050): same rows."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from shoal.ingest.transform import derived_value
from shoal.lake import Lake
from shoal.query import connect_lake, partition_wise
from shoal.query.engine import Connection
from shoal.query.partition_wise import ranges

TS = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema(
    [
        ("occurred_at", TS),
        ("user_id", pa.string()),
        ("x", pa.int64()),
        ("event_date", pa.date32()),
        ("event_hour", TS),
    ]
)
START = datetime(2026, 1, 26, tzinfo=UTC)  # a Monday: the weeks and the month end fall inside


def _batch(times: list[datetime], first: int) -> pa.Table:
    t = pa.chunked_array([pa.array(times, TS)])
    n = len(times)
    return pa.table(
        {
            "occurred_at": t,
            "user_id": pa.array(
                [None if (first + i) % 11 == 0 else f"u{(first + i) * 7 % 13}" for i in range(n)]
            ),
            "x": list(range(first, first + n)),
            "event_date": pc.cast(t, pa.date32()),
            "event_hour": derived_value(t, "hour"),
        },
        schema=SCHEMA,
    )


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """s.events: 12 days from a Monday across a month end, a few files per day, plus s.plain
    (the same rows, no declared partition source)."""
    lake = Lake(str(tmp_path_factory.mktemp("wise") / "lake"))
    events = lake.create_table(
        "s.events",
        SCHEMA,
        partition_by=["event_date"],
        partition_sources={"event_date": ("occurred_at", "day")},
        derived_columns={"event_hour": ("occurred_at", "hour")},
    )
    plain = lake.create_table("s.plain", SCHEMA, partition_by=["event_date"])
    first = 0
    for d in range(12):
        for part in range(2):
            times = [
                START + timedelta(days=d, hours=h, minutes=13 * part + i)
                for h in (0, 7, 23)
                for i in range(5)
            ]
            events.append(_batch(times, first))
            plain.append(_batch(times, first))
            first += len(times)
    return lake


@pytest.fixture
def con(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> Connection:
    monkeypatch.setattr(partition_wise, "MIN_BRANCH_ROWS", 1)  # every day its own range here
    return connect_lake(lake)


SPLIT = [
    # the daily billable users of bench_query.py
    "SELECT date_trunc('day', occurred_at) AS day, count(DISTINCT user_id) AS users FROM s.events "
    "WHERE x > 3 GROUP BY 1",
    "SELECT event_date, count(DISTINCT user_id), sum(x), avg(x), min(user_id) FROM s.events "
    "GROUP BY event_date",
    "SELECT occurred_at::DATE AS d, count(DISTINCT user_id) FROM s.events e GROUP BY d HAVING count(*) > 5",
    # hours, from the derived column and from the source; grouped by the instant itself
    "SELECT event_hour, user_id, count(DISTINCT x) FROM s.events GROUP BY ALL",
    "SELECT date_trunc('hour', e.occurred_at) h, count(DISTINCT e.user_id) n FROM s.events AS e GROUP BY h",
    "SELECT occurred_at, count(DISTINCT user_id) FROM s.events GROUP BY occurred_at",
    # weeks and months: split only where the unit starts (a week and the month cross day ranges)
    "SELECT date_trunc('week', occurred_at) w, count(DISTINCT user_id) FROM s.events GROUP BY 1",
    "SELECT date_trunc('month', occurred_at) m, count(DISTINCT user_id) u, string_agg(DISTINCT user_id, ',' "
    "ORDER BY user_id) s FROM s.events GROUP BY 1",
    # ORDER BY output names and positions, LIMIT and OFFSET
    "SELECT date_trunc('day', occurred_at) AS day, count(DISTINCT user_id) AS users FROM s.events "
    "GROUP BY 1 ORDER BY users DESC, day LIMIT 5 OFFSET 2",
    "SELECT event_date, count(DISTINCT user_id) FROM s.events GROUP BY 1 ORDER BY 2, 1",
]

NOT_SPLIT = [
    # no DISTINCT aggregate; a DISTINCT of the whole result
    "SELECT event_date, count(*), sum(x) FROM s.events GROUP BY 1",
    "SELECT DISTINCT event_date, user_id FROM s.events",
    # groups that span partitions
    "SELECT user_id, count(DISTINCT event_date) FROM s.events GROUP BY 1",
    "SELECT count(DISTINCT user_id) FROM s.events",
    "SELECT x % 3 AS k, count(DISTINCT user_id) FROM s.events GROUP BY k",
    # grouping sets, windows, subqueries, joins, CTEs, an ORDER BY on an expression
    "SELECT event_date, count(DISTINCT user_id) FROM s.events GROUP BY ROLLUP (event_date)",
    "SELECT event_date, count(DISTINCT user_id), sum(count(*)) OVER () FROM s.events GROUP BY 1",
    "SELECT event_date, count(DISTINCT user_id) FROM s.events WHERE x < (SELECT max(x) FROM s.plain) "
    "GROUP BY 1",
    "SELECT e.event_date, count(DISTINCT p.user_id) FROM s.events e JOIN s.plain p USING (x) GROUP BY 1",
    "WITH w AS (SELECT * FROM s.events) SELECT event_date, count(DISTINCT user_id) FROM w GROUP BY 1",
    "SELECT event_date, count(DISTINCT user_id) FROM s.events GROUP BY 1 ORDER BY count(*)",
    "SELECT event_date, event_date, count(DISTINCT user_id) FROM s.events GROUP BY 1 ORDER BY event_date",
    # a table without a declared partition source
    "SELECT event_date, count(DISTINCT user_id) FROM s.plain GROUP BY 1",
]


def _rows(t: pa.Table) -> list[str]:
    return sorted(map(repr, zip(*[c.to_pylist() for c in t.columns], strict=True)))


def _both_ways(con: Connection, query: str) -> tuple[str, pa.Table, pa.Table]:
    """The query as the split rewrites it, its result, and the result as written (not split)."""
    con.partition_wise_aggregation = True
    text, got = con._prepare(query), con.query_arrow(query)
    con.partition_wise_aggregation = False
    return text, got, con.query_arrow(query)


@pytest.mark.parametrize("query", SPLIT)
def test_split_by_day_ranges_gives_the_same_rows(con: Connection, query: str) -> None:
    text, got, want = _both_ways(con, query)
    assert "UNION ALL" in text
    assert "event_date" in text
    assert got.schema == want.schema
    if "GROUP BY 1 ORDER BY" in query:  # ordered by the outer query: the same order too
        assert got.to_pylist() == want.to_pylist()
    else:
        assert _rows(got) == _rows(want)
    assert got.num_rows > 0


def test_weeks_and_months_are_cut_only_where_they_start(con: Connection) -> None:
    text = con._prepare(
        "SELECT date_trunc('month', occurred_at) m, count(DISTINCT user_id) FROM s.events GROUP BY 1"
    )
    assert text.count("UNION ALL") == 1
    assert "'2026-02-01'" in text
    weeks = con._prepare(
        "SELECT date_trunc('week', occurred_at) w, count(DISTINCT user_id) FROM s.events GROUP BY 1"
    )
    assert weeks.count("UNION ALL") == 1
    assert "'2026-02-02'" in weeks


@pytest.mark.parametrize("query", NOT_SPLIT)
def test_left_as_written_where_groups_may_span_partitions(con: Connection, query: str) -> None:
    text, got, want = _both_ways(con, query)
    assert "UNION ALL" not in text
    assert _rows(got) == _rows(want)


def test_parameters_leave_the_query_as_written(con: Connection) -> None:
    query = "SELECT event_date, count(DISTINCT user_id) AS n FROM s.events WHERE x > ? GROUP BY 1"
    con.partition_wise_aggregation = True
    assert "UNION ALL" not in con._prepare(query)
    got = con.execute(query, [5]).fetchall()
    con.partition_wise_aggregation = False
    assert sorted(got) == sorted(con.execute(query, [5]).fetchall())
    assert got


def test_rows_added_after_the_split_points_are_counted_once(lake: Lake, tmp_path: Path) -> None:
    """The ranges cover every partition value: new days (and a day before the first) land in the
    open first or last range, so stale split points cost speed, never rows."""
    events = Lake(str(tmp_path / "lake")).create_table(
        "s.events",
        SCHEMA,
        partition_by=["event_date"],
        partition_sources={"event_date": ("occurred_at", "day")},
        derived_columns={"event_hour": ("occurred_at", "hour")},
    )
    events.append(lake.table("s.events").to_arrow())
    con = connect_lake(Lake(str(tmp_path / "lake")))
    query = "SELECT event_date, count(DISTINCT user_id) AS n FROM s.events GROUP BY 1"
    con.partition_wise_aggregation = True
    partition_wise.MIN_BRANCH_ROWS, kept = 1, partition_wise.MIN_BRANCH_ROWS
    try:
        assert "UNION ALL" in con._prepare(query)  # split points read now, kept for a minute
        late = [START + timedelta(days=30, hours=1), START - timedelta(days=3), START + timedelta(days=5)]
        events.append(_batch(late, 10_000))
        got = con.query_arrow(query)
        con.partition_wise_aggregation = False
        want = con.query_arrow(query)
    finally:
        partition_wise.MIN_BRANCH_ROWS = kept
    assert _rows(got) == _rows(want)
    days = set(got.column("event_date").to_pylist())
    assert {(START + timedelta(days=30)).date(), (START - timedelta(days=3)).date()} <= days


def test_ranges_hold_enough_rows_and_keep_units_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    days = {date(2026, 1, 1) + timedelta(days=i): 100 for i in range(60)}
    monkeypatch.setattr(partition_wise, "MIN_BRANCH_ROWS", 300)
    starts = ranges(days, 0)
    assert starts[0] == date(2026, 1, 4)
    assert all((b - a).days == 3 for a, b in itertools.pairwise(starts))
    assert ranges(days, 2) == [date(2026, 2, 1)]  # months: never cut inside one
    monkeypatch.setattr(partition_wise, "MIN_BRANCH_ROWS", 10_000)
    assert ranges(days, 0) == []  # too few rows for two ranges: not split
    monkeypatch.setattr(partition_wise, "MIN_BRANCH_ROWS", 1)
    monkeypatch.setattr(partition_wise, "MAX_BRANCHES", 10)
    assert len(ranges(days, 0)) == 9


ONE_DAY = [
    "SELECT date_trunc('day', occurred_at) AS day, count(DISTINCT user_id) AS users FROM s.events "
    "WHERE x > 3 GROUP BY 1",
    # a day the filter leaves empty gives no row, as grouped
    "SELECT event_date, count(DISTINCT user_id) AS n, sum(x), min(user_id) FROM s.events "
    "WHERE event_date <> DATE '2026-01-29' GROUP BY 1",
    # an expression of the key, the key not selected
    "SELECT strftime(occurred_at::DATE, '%d') AS d, count(DISTINCT user_id) FROM s.events "
    "GROUP BY occurred_at::DATE",
    "SELECT event_date, count(DISTINCT user_id) FROM s.events GROUP BY 1 ORDER BY 2, 1 LIMIT 4",
]


@pytest.mark.parametrize("query", ONE_DAY)
def test_a_branch_of_one_day_runs_without_its_group_by(con: Connection, query: str) -> None:
    text, got, want = _both_ways(con, query)
    assert "any_value(" in text
    assert "HAVING (count_star() > 0)" in text
    assert text.count("GROUP BY") == 2  # the first and the last branch, open-ended, stay grouped
    assert got.schema == want.schema
    assert _rows(got) == _rows(want)
    assert got.num_rows > 0


@pytest.mark.parametrize(
    "query",
    [
        # keys that change within a day, a HAVING, GROUP BY ALL
        "SELECT event_hour, count(DISTINCT user_id) FROM s.events GROUP BY 1",
        "SELECT event_date, count(DISTINCT user_id) FROM s.events GROUP BY 1 HAVING count(*) > 1",
        "SELECT event_date, count(DISTINCT user_id) FROM s.events GROUP BY ALL",
        # a key outside the aggregate of an item
        "SELECT event_date, count(DISTINCT user_id) * 100 // dayofmonth(event_date) FROM s.events GROUP BY 1",
        # a macro in the select list: it could hold an aggregate
        "SELECT twice(event_date - DATE '2026-01-01') AS k, count(DISTINCT user_id) FROM s.events "
        "GROUP BY event_date",
    ],
)
def test_branches_stay_grouped_where_a_day_may_hold_several_groups(con: Connection, query: str) -> None:
    con.execute("CREATE OR REPLACE MACRO twice(a) AS a * 2")
    text, got, want = _both_ways(con, query)
    assert "UNION ALL" in text
    assert "any_value(" not in text
    assert _rows(got) == _rows(want)

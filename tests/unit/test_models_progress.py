"""A model refresh's exactly-once progress: the keys it writes, what it treats as applied, and
which upstream changes one refresh consumes."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pyarrow as pa

from shoal.lake import Lake, Progress
from shoal.lake.progress import MODEL_DEFINITION, model_input
from shoal.models import Model, ModelRunner, RefreshResult
from shoal.models.additive import refresh_additive
from shoal.models.context import Session
from shoal.models.watching import watch

EVENTS = pa.schema([("day", pa.string()), ("x", pa.int64())])
BY_DAY = Model(
    name="s.by_day",
    sql="select day, sum(x)::BIGINT as x, count(*) as n from s.events group by day",
    unique_key=("day",),
    additive_sql="select day, sum(__shoal_sign * x)::BIGINT as x, sum(__shoal_sign)::BIGINT as n "
    "from __shoal_delta group by day",
    additive=("x", "n"),
    additive_count="n",
    upstream=("s.events",),
)
TOTAL = Model(  # neither incremental nor additive: rebuilt whenever an upstream moved
    name="s.total",
    sql="select 'all' as k, sum(x)::BIGINT as x from s.events",
    unique_key=("k",),
    upstream=("s.events",),
)


def _rows(lake: Lake, name: str) -> list[tuple[object, ...]]:
    table = lake.table(name).to_arrow()
    return sorted(zip(*(table[c].to_pylist() for c in table.column_names), strict=True))


def _batch(days: list[str], xs: list[int]) -> pa.Table:
    return pa.table({"day": days, "x": xs}, schema=EVENTS)


def test_at_is_exact_where_applied_is_at_or_past() -> None:
    progress = Progress({"a": 3, "b": 5, "c": None}, table_version=7)
    assert progress.at({"a": 3, "b": 5})
    assert progress.applied({"a": 3, "b": 5})
    # a lower position (a recreated upstream, a changed hash): applied says yes, at says no
    assert progress.applied({"a": 2})
    assert not progress.at({"a": 2})
    assert not progress.at({"a": 4})
    assert not progress.at({"c": 0})  # never written
    assert not progress.at({"missing": 1})
    assert progress.at({})  # nothing proposed: nothing differs


def test_a_refresh_commits_the_progress_keys_earlier_releases_wrote(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    ev = lake.create_table("s.events", EVENTS)
    ev.append(_batch(["d1"], [1]))
    with ModelRunner(lake, [BY_DAY]) as runner:
        runner.refresh()
    target = lake.table("s.by_day")
    # the on-disk spelling existing lakes resume from
    assert MODEL_DEFINITION == "model:definition"
    assert model_input("s.events") == "model:s.events"
    assert target.app_version("model:definition") == BY_DAY.sql_hash
    assert target.app_version("model:s.events") == ev.version


def test_a_recreated_upstream_with_a_lower_version_rebuilds(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    ev = lake.create_table("s.events", EVENTS)
    for x in (1, 2, 3):
        ev.append(_batch(["d1"], [x]))
    with ModelRunner(lake, [TOTAL]) as runner:
        assert [r.mode for r in runner.refresh()] == ["full"]
        assert [r.mode for r in runner.refresh()] == ["unchanged"]
    recorded = lake.table("s.total").app_version("model:s.events")
    shutil.rmtree(tmp_path / "lake" / "s" / "events")
    ev = lake.create_table("s.events", EVENTS)
    ev.append(_batch(["d1"], [10]))
    assert recorded is not None
    assert ev.version < recorded
    with ModelRunner(lake, [TOTAL]) as runner:
        assert [r.mode for r in runner.refresh()] == ["full"]
    assert _rows(lake, "s.total") == [("all", 10)]


def test_a_commit_landing_during_a_refresh_is_left_to_the_next_one(tmp_path: Path) -> None:
    """An additive model adds each change once, even when the upstream moves mid-refresh."""
    lake = Lake(str(tmp_path / "lake"))
    ev = lake.create_table("s.events", EVENTS)
    ev.append(_batch(["d1", "d2"], [1, 2]))
    with ModelRunner(lake, [BY_DAY]) as runner:
        runner.refresh()
    ev.append(_batch(["d1"], [10]))
    session = Session(lake)
    try:
        ctx = session.begin(BY_DAY)  # consumes the upstream up to here
        ev.append(_batch(["d1", "d3"], [100, 1000]))  # lands while the refresh runs
        assert sorted(ctx.changes("s.events")["x"].to_pylist()) == [10]
        assert refresh_additive(ctx).mode == "incremental"
    finally:
        session.close()
    assert lake.table("s.by_day").app_version("model:s.events") == ev.version - 1
    with ModelRunner(lake, [BY_DAY]) as runner:
        (r,) = runner.refresh()
        assert (r.mode, r.touched) == ("incremental", 2)
        got = _rows(lake, "s.by_day")
        runner.refresh(full=True)
    assert got == _rows(lake, "s.by_day") == [("d1", 111, 3), ("d2", 2, 1), ("d3", 1000, 1)]


def test_watch_refreshes_when_a_source_moves_and_waits_for_missing_ones() -> None:
    versions: list[dict[str, int | None]] = [{"s.a": None}, {"s.a": 1}, {"s.a": 1}, {"s.a": 2}]
    looks: list[dict[str, int | None]] = []
    refreshed: list[list[RefreshResult]] = []

    def source_versions() -> dict[str, int | None]:
        looks.append(versions[min(len(looks), len(versions) - 1)])
        return looks[-1]

    def refresh() -> list[RefreshResult]:
        return [RefreshResult("s.m", "incremental")]

    cycles = watch(
        source_versions,
        refresh,
        interval_s=0.0,
        should_stop=lambda: len(looks) >= len(versions) + 1,
        on_cycle=refreshed.append,
    )
    # None: wait quietly; 1: refresh; 1 again: nothing new; 2: refresh; 2 again: nothing new
    assert cycles == 2
    assert len(refreshed) == 2


def test_watch_starts_a_cycle_soon_after_a_commit_that_lands_past_its_interval() -> None:
    """Once the interval has passed with nothing new, the watcher looks often: a commit landing
    then is taken within a poll, not up to a whole interval later (freshness, issue 18)."""
    interval_s, commit_at = 1.0, 1.3
    t0 = time.monotonic()
    starts: list[float] = []

    def source_versions() -> dict[str, int | None]:
        return {"s.a": 1 if time.monotonic() - t0 < commit_at else 2}

    def refresh() -> list[RefreshResult]:
        starts.append(time.monotonic() - t0)
        return []

    watch(source_versions, refresh, interval_s=interval_s, should_stop=lambda: len(starts) >= 2)
    # looking once per interval would take it at 2.0 s, 0.7 s after the commit
    assert starts[1] - commit_at < 0.3, starts


def test_watch_calls_on_idle_once_its_sources_have_paused_after_a_cycle() -> None:
    """ADR 0057: on_idle (the quiet checkpoint) once a look finds nothing new idle_after_s after
    a cycle, once per pause; never while the sources move at every look, however long it runs."""
    idle: list[float] = []
    t0 = time.monotonic()
    moving = {"n": 0}

    def moves() -> dict[str, int | None]:
        moving["n"] += 1
        return {"s.a": moving["n"]}

    watch(
        moves,
        list,
        interval_s=0.3,  # longer than idle_after_s: the time between looks is not a pause
        should_stop=lambda: time.monotonic() - t0 > 1.0,
        on_idle=lambda: idle.append(time.monotonic()),
        idle_after_s=0.1,
    )
    assert moving["n"] >= 3
    assert idle == []  # a source that moved at every look: no pause

    t0 = time.monotonic()

    def pauses() -> dict[str, int | None]:  # moves for 0.3 s, then stops
        return {"s.a": int((time.monotonic() - t0) * 20) if time.monotonic() - t0 < 0.3 else 99}

    cycles: list[float] = []
    watch(
        pauses,
        list,
        interval_s=0.02,
        should_stop=lambda: time.monotonic() - t0 > 1.0,
        on_cycle=lambda _r: cycles.append(time.monotonic()),
        on_idle=lambda: idle.append(time.monotonic()),
        idle_after_s=0.2,
    )
    assert len(idle) == 1  # once for the pause, not at every look after it
    assert idle[0] - cycles[-1] >= 0.2  # not before the pause had lasted idle_after_s

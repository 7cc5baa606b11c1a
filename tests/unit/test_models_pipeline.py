"""One pipeline per cycle: a model's downstream models in the same runner take its commit's change
rows from memory (a handoff), which must be exactly the rows the Delta change feed holds for that
commit; a commit that is not the only one since the downstream's version is never handed off."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from shoal.lake import Lake
from shoal.models import Model, ModelRunner

EVENTS = pa.schema([("ticket", pa.int64()), ("day", pa.string()), ("x", pa.int64())])
TICKETS = Model(  # slices keyed by their own scope column: its old rows hold every written key
    name="s.tickets",
    sql="select ticket, min(day) as day, sum(x)::BIGINT as x, count(*) as n from s.events group by ticket",
    unique_key=("ticket",),
    incremental_by=("ticket",),
    upstream=("s.events",),
)


def _sums(name: str, key: str, upstream: str, count: str = "n") -> Model:
    """An additive model: sum(x) and the number of ``upstream`` rows per ``key``."""
    return Model(
        name=name,
        sql=f"select {key}, sum(x)::BIGINT as x, count(*) as {count} from {upstream} group by {key}",
        unique_key=(key,),
        additive_sql=f"select {key}, sum(__shoal_sign * x)::BIGINT as x, "
        f"sum(__shoal_sign)::BIGINT as {count} from __shoal_delta group by {key}",
        additive=("x", count),
        additive_count=count,
        upstream=(upstream,),
    )


BY_DAY = _sums("s.by_day", "day", "s.tickets")  # additive over slices
DAY_TOTALS = Model(  # slices over an additive model
    name="s.day_totals",
    sql="select day, x * 10 as x10 from s.by_day",
    unique_key=("day",),
    incremental_by=("day",),
    upstream=("s.by_day",),
)
CHAIN = [TICKETS, BY_DAY, DAY_TOTALS]


def _rows(lake: Lake, name: str) -> list[tuple[object, ...]]:
    t = lake.table(name).to_arrow()
    return sorted(zip(*(t[c].to_pylist() for c in t.column_names), strict=True))


def _feed(rows: pa.Table) -> list[tuple[object, ...]]:
    """Change rows comparable across the handoff and the Delta change feed."""
    cols = sorted(c for c in rows.column_names if c != "_commit_timestamp")
    return sorted(zip(*(rows[c].to_pylist() for c in cols), strict=True), key=repr)


def _batch(tickets: list[int], days: list[str], xs: list[int]) -> pa.Table:
    return pa.table({"ticket": tickets, "day": days, "x": xs}, schema=EVENTS)


def test_handoff_rows_are_exactly_the_change_feed_of_the_commit(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    ev = lake.create_table("s.events", EVENTS)
    ev.append(_batch([1, 2, 3], ["d1", "d1", "d2"], [1, 2, 3]))
    with ModelRunner(lake, CHAIN) as runner:
        runner.refresh()
        session = runner._session
        steps = [
            lambda: ev.append(_batch([4, 5], ["d3", "d1"], [4, 5])),  # inserts, one updated group
            lambda: ev.merge(_batch([2], ["d3"], [20]), ["ticket"]),  # a ticket moves d1 -> d3
            lambda: ev.delete("day = 'd2'"),  # a ticket and a whole day go
            lambda: ev.append(_batch([6], ["d0"], [0])),  # a group whose sum does not move
        ]
        for step in steps:
            step()
            for model in CHAIN:
                before = lake.table(model.name).version
                result = runner.refresh_one(model)
                if model is not TICKETS:
                    assert result.handed_off == list(model.upstream), model.name
                if model is DAY_TOTALS:
                    continue  # nothing downstream: nothing handed off
                fed = session.handed_off(model.name, before, result.version or -1)
                assert fed is not None, model.name
                assert _feed(fed) == _feed(lake.table(model.name).changes_since(before)), model.name
            session.end_cycle()
        got = {m.name: _rows(lake, m.name) for m in CHAIN}
        runner.refresh(full=True)
        assert {m.name: _rows(lake, m.name) for m in CHAIN} == got
    assert got["s.by_day"] == [("d0", 0, 1), ("d1", 6, 2), ("d3", 24, 2)]


def test_a_cycle_hands_changes_on_and_each_model_keeps_its_own_progress(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    ev = lake.create_table("s.events", EVENTS)
    ev.append(_batch([1, 2], ["d1", "d2"], [1, 2]))
    with ModelRunner(lake, CHAIN) as runner:
        assert [r.handed_off for r in runner.refresh()] == [[], [], []]  # rebuilds read no feed
        ev.append(_batch([3], ["d1"], [3]))
        results = runner.refresh()
        assert [(r.mode, r.handed_off) for r in results] == [
            ("incremental", []),
            ("incremental", ["s.tickets"]),
            ("incremental", ["s.by_day"]),
        ]
        for r in results[1:]:  # each commit records the upstream version it consumed
            (up,) = r.upstream_versions
            assert lake.table(r.model).app_version(f"model:{up}") == lake.table(up).version
        assert [r.mode for r in runner.refresh()] == ["unchanged"] * 3


def test_a_crash_between_the_chains_commits_converges_from_the_change_feed(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    ev = lake.create_table("s.events", EVENTS)
    ev.append(_batch([1, 2], ["d1", "d2"], [1, 2]))
    with ModelRunner(lake, CHAIN) as runner:
        runner.refresh()
        # the upstream commits twice, and then the process dies: its handoffs die with it
        ev.append(_batch([3], ["d1"], [3]))
        runner.refresh_one(TICKETS)
        ev.merge(_batch([1], ["d2"], [10]), ["ticket"])
        runner.refresh_one(TICKETS)
    with ModelRunner(lake, CHAIN) as runner:
        ev.append(_batch([4], ["d4"], [4]))
        results = {r.model: r for r in runner.refresh()}
        # by_day is three commits of s.tickets behind: the change feed, not a handoff
        assert results["s.by_day"].handed_off == []
        assert results["s.day_totals"].handed_off == ["s.by_day"]
        got = {m.name: _rows(lake, m.name) for m in CHAIN}
        runner.refresh(full=True)
        assert {m.name: _rows(lake, m.name) for m in CHAIN} == got
    assert got["s.by_day"] == [("d1", 3, 1), ("d2", 12, 2), ("d4", 4, 1)]


def test_a_commit_by_another_writer_in_between_is_not_handed_off(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    ev = lake.create_table("s.events", EVENTS)
    ev.append(_batch([1], ["d1"], [1]))
    with ModelRunner(lake, CHAIN) as runner:
        runner.refresh()
        ev.append(_batch([2], ["d1"], [2]))
        runner.refresh_one(TICKETS)
        # someone else rewrites s.tickets after the runner's commit (e.g. a `refresh --full` elsewhere)
        with ModelRunner(lake, [TICKETS]) as other:
            other.refresh(full=True)
        results = {r.model: r for r in (runner.refresh_one(BY_DAY), runner.refresh_one(DAY_TOTALS))}
        assert results["s.by_day"].handed_off == []
        assert _rows(lake, "s.by_day") == [("d1", 3, 2)]


def _view_sql(runner: ModelRunner, name: str) -> str:
    ns, table = name.split(".")
    (sql,) = runner.con.sql(
        f"SELECT sql FROM duckdb_views() WHERE schema_name = '{ns}' AND view_name = '{table}'"
    ).fetchone() or ("",)
    return str(sql)


def test_additive_models_are_read_from_memory_during_a_cycle_and_from_delta_after(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    ev = lake.create_table("s.events", EVENTS)
    ev.append(_batch([1, 2], ["d1", "d2"], [1, 2]))
    with ModelRunner(lake, CHAIN) as runner:
        arranged = runner._session.arranged
        for batch in (_batch([3], ["d1"], [3]), _batch([4], ["d3"], [4])):
            runner.refresh()
            # the copy reflects the version the runner wrote; between cycles the view reads Delta
            assert arranged.held("s.by_day") == lake.table("s.by_day").version
            assert "delta_scan" in _view_sql(runner, "s.by_day")
            ev.append(batch)
        runner.refresh()
        got = _rows(lake, "s.by_day")
        assert sorted(runner.con.sql("SELECT * FROM s.by_day").fetchall()) == got
        runner.refresh(full=True)
        assert _rows(lake, "s.by_day") == got == [("d1", 4, 2), ("d2", 2, 1), ("d3", 4, 1)]


def test_a_continuous_runner_with_its_own_connection_leaves_views_on_the_copies(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    ev = lake.create_table("s.events", EVENTS)
    ev.append(_batch([1, 2], ["d1", "d2"], [1, 2]))
    with ModelRunner(lake, CHAIN, hold=True) as runner:
        runner.refresh()
        # nobody else reads through its connection: the view stays on the copy between cycles
        assert "__shoal_arranged_" in _view_sql(runner, "s.by_day")
        # another writer moves the table meanwhile: the next refresh reads Delta, not the copy
        lake.table("s.by_day").delete("day = 'd1'")
        ev.append(_batch([4], ["d1"], [4]))
        runner.refresh()
        assert _rows(lake, "s.by_day") == [("d1", 4, 1), ("d2", 2, 1)]
    with ModelRunner(lake, CHAIN) as plain:
        ev.append(_batch([5], ["d3"], [5]))
        calls = iter([False, False, True])  # one cycle, then stop
        assert plain.watch(should_stop=lambda: next(calls), interval_s=0.01) == 1
        # watch() kept them pointed while it ran; once it returns, its caller reads Delta
        assert "__shoal_arranged_" not in _view_sql(plain, "s.by_day")
        assert _rows(lake, "s.by_day") == [("d1", 4, 1), ("d2", 2, 1), ("d3", 5, 1)]
    shared = ModelRunner(lake, CHAIN).con
    with ModelRunner(lake, CHAIN, con=shared, hold=True) as given:
        ev.append(_batch([6], ["d3"], [6]))
        given.refresh()
        # a connection given to it is read by its owner between cycles: the views read Delta there
        assert "__shoal_arranged_" not in _view_sql(given, "s.by_day")
        # ... except while it watches (shoal refresh --watch gives it the project's connection)
        ev.append(_batch([7], ["d4"], [7]))
        seen: list[str] = []
        calls = iter([False, False, True])
        given.watch(
            should_stop=lambda: next(calls),
            interval_s=0.01,
            on_cycle=lambda _: seen.append(_view_sql(given, "s.by_day")),
        )
        assert len(seen) == 1
        assert "__shoal_arranged_" in seen[0]
        assert "__shoal_arranged_" not in _view_sql(given, "s.by_day")


def test_a_copy_is_not_read_once_its_table_moved_without_the_runner(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    ev = lake.create_table("s.events", EVENTS)
    ev.append(_batch([1, 2], ["d1", "d2"], [1, 2]))
    with ModelRunner(lake, CHAIN) as runner:
        runner.refresh()
        ev.append(_batch([3], ["d2"], [3]))
        runner.refresh()
        assert runner._session.arranged.held("s.by_day") is not None
        # another writer deletes a row of the additive model itself (its progress keys stay)
        lake.table("s.by_day").delete("day = 'd1'")
        # s.day_totals reads s.by_day's rows of the day the delete touched: Delta's, not the copy's
        results = {r.model: r.mode for r in runner.refresh()}
        assert results == {"s.tickets": "unchanged", "s.by_day": "unchanged", "s.day_totals": "incremental"}
        assert _rows(lake, "s.day_totals") == [("d2", 50)]
        ev.append(_batch([4], ["d1"], [4]))
        runner.refresh()
        # the additive refresh added to what Delta holds (no d1), not to the stale copy (d1 = 1)
        assert _rows(lake, "s.by_day") == [("d1", 4, 1), ("d2", 5, 2)]
        assert runner._session.arranged.held("s.by_day") == lake.table("s.by_day").version


def test_a_held_key_whose_count_reaches_zero_is_deleted_at_the_commit(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    ev = lake.create_table("s.events", EVENTS)
    ev.append(_batch([1, 2], ["d2", "d3"], [1, 2]))
    held = BY_DAY.model_copy(update={"commit_every_s": 3600})
    with ModelRunner(lake, [TICKETS, held], hold=True) as runner:
        runner.refresh()
        before = lake.table("s.by_day").version
        # ticket 1's first day moves to d1: d2 loses its only ticket (count 0), d3 is untouched
        ev.append(_batch([1], ["d1"], [5]))
        assert {r.model: r.mode for r in runner.refresh()}["s.by_day"] == "incremental"
        assert lake.table("s.by_day").version == before  # held, not committed yet
        assert sorted(
            runner.con.sql(f"SELECT * FROM {runner._session.arranged.copy_table('s.by_day')}").fetchall()
        ) == [
            ("d1", 6, 1),
            ("d3", 2, 1),
        ]
    assert _rows(lake, "s.by_day") == [("d1", 6, 1), ("d3", 2, 1)]


def test_an_additive_copy_kept_as_keyed_sums_writes_what_the_sql_path_would(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    ev = lake.create_table("s.events", EVENTS)
    ev.append(_batch([1, 2], ["d2", "d3"], [1, 2]))
    steps = [
        lambda: ev.append(_batch([3, 4], ["d2", "d4"], [3, 4])),  # a group grows, a new one
        lambda: ev.merge(_batch([1, 3], ["d1", "d1"], [5, 6]), ["ticket"]),  # d2 reaches 0: deleted
        lambda: ev.delete("ticket = 4"),  # d4 goes
        lambda: ev.append(_batch([7], ["d2"], [7])),  # d2 again, from its new row alone
        lambda: ev.append(_batch([8], ["d0"], [0])),  # a group whose sum does not move
    ]
    # s.by_day feeds no model of its runner: its copy is keyed, its commits built from it
    with ModelRunner(lake, [TICKETS, BY_DAY]) as runner:
        runner.refresh()
        for step in steps:
            step()
            results = {r.model: r for r in runner.refresh()}
            assert results["s.by_day"].mode == "incremental"
            assert runner._session.arranged.is_keyed("s.by_day")
            held = runner._session.arranged.held("s.by_day")
            assert held == lake.table("s.by_day").version
            copy = runner.con.sql(f"SELECT * FROM {runner._session.arranged.copy_table('s.by_day')}")
            assert sorted(copy.fetchall()) == _rows(lake, "s.by_day")
        got = _rows(lake, "s.by_day")
        runner.refresh(full=True)
        assert _rows(lake, "s.by_day") == got == [("d0", 0, 1), ("d1", 11, 2), ("d2", 7, 1), ("d3", 2, 1)]

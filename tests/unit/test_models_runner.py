"""Incremental models: only touched slices recomputed; results equal a full rebuild."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pyarrow as pa
import pytest

from shoal.errors import ConfigError
from shoal.lake import Lake
from shoal.models import Model, ModelError, ModelRunner, SliceInputs, order_models
from shoal.models.slices import scoped

EVENTS = pa.schema([("ticket", pa.int64()), ("day", pa.string()), ("x", pa.int64())])
TICKETS = Model(
    name="s.tickets",
    sql="select ticket, min(day) as day, sum(x)::BIGINT as total, count(*) as n "
    "from s.events group by ticket",
    unique_key=("ticket",),
    incremental_by=("ticket",),
    upstream=("s.events",),
)
DAILY = Model(
    name="s.daily",
    sql="select day, sum(total)::BIGINT as total, count(*) as tickets from s.tickets group by day",
    unique_key=("day",),
    incremental_by=("day",),
    upstream=("s.tickets",),
)


def _snapshot(runner: ModelRunner, name: str) -> list[tuple[object, ...]]:
    return sorted(runner.con.sql(f"select * from {name}").fetchall())


def test_incremental_equals_full(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    ev = lake.create_table("s.events", EVENTS)
    ev.append(pa.table({"ticket": [1, 1, 2], "day": ["d1", "d1", "d2"], "x": [1, 2, 3]}, schema=EVENTS))
    with ModelRunner(lake, [DAILY, TICKETS]) as runner:
        assert [r.mode for r in runner.refresh()] == ["full", "full"]
        ev.append(pa.table({"ticket": [2, 3], "day": ["d2", "d3"], "x": [10, 5]}, schema=EVENTS))
        res = runner.refresh()
        assert [(r.mode, r.touched) for r in res] == [("incremental", 2), ("incremental", 2)]
        ev.delete("ticket = 1")
        res = runner.refresh()
        assert res[0].rows_deleted == 1
        inc = (_snapshot(runner, "s.tickets"), _snapshot(runner, "s.daily"))
        assert [r.mode for r in runner.refresh()] == ["unchanged", "unchanged"]
        runner.refresh(full=True)
        assert (_snapshot(runner, "s.tickets"), _snapshot(runner, "s.daily")) == inc
        assert inc[1] == [("d2", 13, 1), ("d3", 5, 1)]


def test_changed_definition_forces_full_rebuild(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    lake.create_table("s.events", EVENTS).append(
        pa.table({"ticket": [1], "day": ["d1"], "x": [1]}, schema=EVENTS)
    )
    with ModelRunner(lake, [TICKETS]) as r:
        r.refresh()
    changed = TICKETS.model_copy(update={"sql": TICKETS.sql.replace("sum(x)", "sum(x * 2)")})
    with ModelRunner(lake, [changed]) as r:
        assert r.refresh()[0].mode == "full"
        assert _snapshot(r, "s.tickets") == [(1, "d1", 2, 1)]


def test_cycle_is_a_config_error() -> None:
    a = Model(name="x.a", sql="select 1 k", unique_key="k", upstream="x.b")
    b = Model(name="x.b", sql="select 1 k", unique_key="k", upstream="x.a")
    with pytest.raises(ConfigError, match="cycle"):
        order_models([a, b])


def test_watch_refreshes_when_a_source_moves(tmp_path: Path) -> None:
    import threading

    lake = Lake(str(tmp_path / "lake"))
    stop = threading.Event()
    cycles: list[list[str]] = []
    seen_after_cycle: list[list[tuple[object, ...]]] = []
    with ModelRunner(lake, [DAILY, TICKETS]) as runner:
        assert runner.sources == ["s.events"]

        def on_cycle(results: list) -> None:  # type: ignore[type-arg]
            cycles.append([r.mode for r in results])
            seen_after_cycle.append(_snapshot(runner, "s.daily"))

        worker = threading.Thread(
            target=runner.watch, kwargs={"interval_s": 0.02, "should_stop": stop.is_set, "on_cycle": on_cycle}
        )
        worker.start()
        try:
            # the source does not exist yet: the watcher waits instead of failing
            ev = lake.create_table("s.events", EVENTS)
            ev.append(pa.table({"ticket": [1], "day": ["d1"], "x": [1]}, schema=EVENTS))
            _wait(lambda: len(cycles) >= 1)
            ev.append(pa.table({"ticket": [2], "day": ["d1"], "x": [4]}, schema=EVENTS))
            _wait(lambda: bool(seen_after_cycle) and seen_after_cycle[-1] == [("d1", 5, 2)])
        finally:
            stop.set()
            worker.join(10)
    assert not worker.is_alive()
    assert cycles[0] == ["full", "full"]
    assert ["incremental", "incremental"] in cycles[1:]
    n = len(cycles)
    # no source change, no cycle: an idle watcher does not rewrite the models
    with ModelRunner(lake, [DAILY, TICKETS]) as runner:
        stop2 = threading.Event()
        timer = threading.Timer(0.3, stop2.set)
        timer.start()
        extra: list[object] = []
        runner.watch(interval_s=0.02, should_stop=stop2.is_set, on_cycle=extra.append)
    assert len(cycles) == n
    assert len(extra) == 1  # one first look, every model unchanged
    assert [r.mode for r in extra[0]] == ["unchanged", "unchanged"]  # type: ignore[attr-defined]


def test_watch_starts_a_cycle_at_most_once_per_interval(tmp_path: Path) -> None:
    """A source that moves during every cycle does not make the watcher refresh back to back: a
    watcher given a long interval batches what its sources commit meanwhile."""
    lake = Lake(str(tmp_path / "lake"))
    ev = lake.create_table("s.events", EVENTS)
    ev.append(pa.table({"ticket": [1], "day": ["d1"], "x": [1]}, schema=EVENTS))
    starts: list[float] = []
    interval_s = 0.4

    def on_cycle(_results: object) -> None:
        # the source moves while (right after) every cycle, as a busy upstream's does
        ev.append(pa.table({"ticket": [len(starts) + 2], "day": ["d1"], "x": [1]}, schema=EVENTS))

    def refresh_and_time(*args: object, **kw: object) -> object:
        starts.append(time.monotonic())
        return refresh(*args, **kw)

    # stop after a number of cycles, not after a time: under load the first cycle (a full build)
    # may take longer than any fixed window
    cycles, deadline = 4, time.monotonic() + 30.0

    def should_stop() -> bool:
        return len(starts) >= cycles or time.monotonic() > deadline

    with ModelRunner(lake, [TICKETS]) as runner:
        refresh = runner.refresh
        runner.refresh = refresh_and_time  # type: ignore[method-assign]
        runner.watch(interval_s=interval_s, should_stop=should_stop, on_cycle=on_cycle)
    assert len(starts) == cycles  # the source moved each time: it refreshed again, every time
    # never back to back (half the interval: slack for a slow look at the Delta logs), and at most
    # one start per interval over the run (the slack once, not per cycle)
    assert min(b - a for a, b in itertools.pairwise(starts)) >= interval_s / 2
    assert starts[-1] - starts[0] >= (cycles - 1.5) * interval_s


def test_a_quiet_watcher_checkpoints_the_models_it_committed(tmp_path: Path) -> None:
    """ADR 0057: once nothing has come for QUIET_CHECKPOINT_S after a cycle, the watcher writes a
    checkpoint of each model table it committed to, at its latest version; not before."""
    import threading

    from shoal.lake.catalog import CHECKPOINT_INTERVAL, QUIET_CHECKPOINT_S

    lake = Lake(str(tmp_path / "lake"))
    ev = lake.create_table("s.events", EVENTS)
    ev.append(pa.table({"ticket": [1], "day": ["d1"], "x": [1]}, schema=EVENTS))
    stop = threading.Event()
    cycles: list[float] = []
    with ModelRunner(lake, [DAILY, TICKETS]) as runner:
        worker = threading.Thread(
            target=runner.watch,
            kwargs={"interval_s": 0.02, "should_stop": stop.is_set, "on_cycle": lambda _r: cycles.append(1)},
        )
        worker.start()
        try:
            # more commits than the interval, until the interval's checkpoint lags in both tables
            _wait(lambda: bool(cycles))  # the first build creates them
            tables = [lake.table("s.tickets"), lake.table("s.daily")]
            i = 0
            while i < CHECKPOINT_INTERVAL + 2 or any(t.last_checkpoint() == t.version for t in tables):
                assert i < 3 * CHECKPOINT_INTERVAL
                n = len(cycles)
                ev.append(pa.table({"ticket": [i + 2], "day": ["d1"], "x": [i]}, schema=EVENTS))
                _wait(lambda n=n: len(cycles) > n)
                i += 1
            ended = time.monotonic()
            versions = [t.version for t in tables]
            _wait(lambda: all(t.last_checkpoint() == v for t, v in zip(tables, versions, strict=True)))
            assert time.monotonic() - ended >= QUIET_CHECKPOINT_S * 0.9  # not before the pause
            assert [t.version for t in tables] == versions  # a checkpoint is not a commit
        finally:
            stop.set()
            worker.join(10)
    assert not worker.is_alive()


def test_a_stopped_watcher_leaves_its_models_checkpointed(tmp_path: Path) -> None:
    """A watcher stopped before any pause checkpoints what it committed on its way out (ADR 0057),
    as an ingest worker does."""
    lake = Lake(str(tmp_path / "lake"))
    ev = lake.create_table("s.events", EVENTS)
    ev.append(pa.table({"ticket": [1], "day": ["d1"], "x": [1]}, schema=EVENTS))
    cycles: list[int] = []

    def on_cycle(_results: object) -> None:
        cycles.append(1)
        if len(cycles) < 3:  # a new commit at once: no pause before the stop
            ev.append(pa.table({"ticket": [len(cycles) + 1], "day": ["d1"], "x": [1]}, schema=EVENTS))

    with ModelRunner(lake, [DAILY, TICKETS]) as runner:
        runner.watch(interval_s=0.02, should_stop=lambda: len(cycles) >= 3, on_cycle=on_cycle)
    for name in ("s.tickets", "s.daily"):
        table = lake.table(name)
        assert table.last_checkpoint() == table.version, name


def _wait(cond: object, timeout_s: float = 20.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


RUNNING_SCHEMA = pa.schema([("k", pa.string()), ("t", pa.int64()), ("x", pa.int64())])
RUNNING = Model(
    name="s.running",
    sql="select k, t, sum(x) over (partition by k order by t)::BIGINT as total from s.ev",
    unique_key=("k", "t"),
    incremental_by=("k",),
    restate_from="t",
    upstream=("s.ev",),
)


def test_restate_from_rewrites_only_changed_rows_and_equals_a_full_rebuild(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    ev = lake.create_table("s.ev", RUNNING_SCHEMA)
    ev.append(pa.table({"k": ["a"] * 5 + ["b"] * 3, "t": [1, 2, 3, 4, 5, 1, 2, 4], "x": [1] * 8}))
    with ModelRunner(lake, [RUNNING]) as runner:
        assert runner.refresh()[0].mode == "full"
        # on time: a new hour for a only; nothing else is rewritten (a plain append)
        ev.append(pa.table({"k": ["a"], "t": [6], "x": [1]}, schema=RUNNING_SCHEMA))
        (r,) = runner.refresh()
        assert (r.mode, r.touched, r.rows_written, r.rows_deleted) == ("incremental", 1, 1, 0)
        assert lake.table("s.running").history(1)[0]["operation"] == "WRITE"
        # late: t=3 of b changes b's totals from 3 on; a and b's t<3 are untouched
        ev.append(pa.table({"k": ["b"], "t": [3], "x": [10]}, schema=RUNNING_SCHEMA))
        (r,) = runner.refresh()
        assert (r.rows_written, r.rows_deleted) == (2, 0)  # (b, 3) new, (b, 4) restated
        assert lake.table("s.running").history(1)[0]["operation"] == "MERGE"
        got = _snapshot(runner, "s.running")
        runner.refresh(full=True)
        assert _snapshot(runner, "s.running") == got
    assert [row for row in got if row[0] == "b"] == [("b", 1, 1), ("b", 2, 2), ("b", 3, 12), ("b", 4, 13)]
    assert ("a", 6, 6) in got


MONTHLY_SCHEMA = pa.schema([("m", pa.string()), ("k", pa.string()), ("t", pa.int64()), ("x", pa.int64())])
MONTHLY = Model(
    name="s.monthly",
    sql="select m, k, t, sum(x) over (partition by m, k order by t)::BIGINT as total from s.mev",
    unique_key=("m", "k", "t"),
    incremental_by=("m", "k"),
    restate_from="t",
    upstream=("s.mev",),
)


def test_restate_scope_is_read_per_group_with_its_own_bounds(tmp_path: Path) -> None:
    """A late change in an old group (last month) does not lower the restate bound of the others."""
    lake = Lake(str(tmp_path / "lake"))
    ev = lake.create_table("s.mev", MONTHLY_SCHEMA)
    ev.append(
        pa.table(
            {
                "m": ["m1"] * 5 + ["m2"] * 8,
                "k": ["a"] * 5 + ["a"] * 5 + ["b"] * 3,
                "t": [1, 3, 4, 5, 6, 1, 2, 3, 4, 5, 1, 2, 3],
                "x": [1] * 13,
            },
            schema=MONTHLY_SCHEMA,
        )
    )
    with ModelRunner(lake, [MONTHLY]) as runner:
        runner.refresh()
        # late in m1 (restates a from t=2), on time in m2
        late = {"m": ["m1", "m2", "m2"], "k": ["a", "b", "a"], "t": [2, 4, 6], "x": [10, 1, 1]}
        ev.append(pa.table(late, schema=MONTHLY_SCHEMA))
        (r,) = runner.refresh()
        assert (r.mode, r.touched) == ("incremental", 3)
        got = _snapshot(runner, "s.monthly")
        runner.refresh(full=True)
        assert _snapshot(runner, "s.monthly") == got
        touched = pa.table({"m": ["m1", "m2", "m2"], "k": ["a", "b", "a"], "__shoal_from": [2, 4, 6]})
        branches = scoped(MONTHLY, touched, "s.monthly").split(" UNION ALL ")
    assert ("m1", "a", 2, 11) in got
    assert ("m1", "a", 5, 14) in got
    assert ("m2", "b", 4, 4) in got
    assert len(branches) == 2
    (m2,) = [b for b in branches if "'m2'" in b]
    assert '__s."t" >= 4' in m2
    assert ">= 2" not in m2


def test_incremental_arrow_computes_the_rows_or_hands_back_to_the_sql(tmp_path: Path) -> None:
    """A model's ``incremental_arrow`` gets the touched slices, the change rows, the rows in scope
    and a query function; rows it returns are committed as the SQL's would be, and None runs the
    SQL instead."""
    sql = (
        "with prior as (select r.k, max(r.total) as base from s.running r join __shoal_touched t "
        "on r.k = t.k where r.t < t.__shoal_from group by r.k) "
        "select e.k, e.t, (coalesce(p.base, 0) + sum(e.x) over (partition by e.k order by e.t))"
        "::BIGINT as total from s.ev e join __shoal_touched t on e.k = t.k and e.t >= t.__shoal_from "
        "left join prior p on p.k = e.k"
    )
    seen: list[SliceInputs] = []
    answer: dict[str, pa.Table | None] = {"rows": None}

    queried: list[object] = []

    def compute(inputs: SliceInputs) -> pa.Table | None:
        seen.append(inputs)
        queried.append(inputs.query("select max(total) as m from s.running").to_pylist())
        return answer["rows"]

    inc = RUNNING.model_copy(update={"incremental_sql": sql, "incremental_arrow": compute})
    lake = Lake(str(tmp_path / "lake"))
    ev = lake.create_table("s.ev", RUNNING_SCHEMA)
    ev.append(pa.table({"k": ["a"] * 4, "t": [1, 2, 4, 6], "x": [1, 2, 4, 6]}))
    with ModelRunner(lake, [inc]) as runner:
        runner.refresh()
        assert not seen  # a rebuild runs the full SQL
        ev.append(pa.table({"k": ["a"], "t": [3], "x": [100]}, schema=RUNNING_SCHEMA))
        (r,) = runner.refresh()  # None: the SQL's rows
        assert (r.mode, r.rows_written) == ("incremental", 3)
        (inputs,) = seen
        assert inputs.touched.to_pylist() == [{"k": "a", "__shoal_from": 3}]
        assert inputs.changes is not None
        assert inputs.changes["x"].to_pylist() == [100]
        assert sorted(inputs.old.select(["t", "total"]).to_pylist(), key=lambda d: d["t"]) == [
            {"t": 4, "total": 7},
            {"t": 6, "total": 13},
        ]
        assert inputs.schema == runner.lake.table("s.running").schema
        assert queried == [[{"m": 13}]]  # the model's table as the refresh reads it
        assert _snapshot(runner, "s.running") == [
            ("a", 1, 1),
            ("a", 2, 3),
            ("a", 3, 103),
            ("a", 4, 107),
            ("a", 6, 113),
        ]
        # rows returned are what is committed (here deliberately not the SQL's, to tell them apart)
        answer["rows"] = pa.table({"k": ["a"], "t": [7], "total": [-1]}, schema=inputs.schema)
        ev.append(pa.table({"k": ["a"], "t": [7], "x": [7]}, schema=RUNNING_SCHEMA))
        (r,) = runner.refresh()
        assert (r.mode, r.rows_written) == ("incremental", 1)
        assert _snapshot(runner, "s.running")[-1] == ("a", 7, -1)
    with pytest.raises(ValueError, match="incremental_arrow needs incremental_sql"):
        Model(name="s.x", sql="select 1 k", unique_key="k", incremental_by="k", incremental_arrow=compute)
    named = Model(
        name="s.x", sql="select 1 k", unique_key="k", incremental_by="k", incremental_sql="select 1 k",
        incremental_arrow="shoal.usecases.billing.charges:charges_incremental",
    )  # fmt: skip
    assert named.incremental_arrow is not None
    assert named.incremental_arrow.__name__ == "charges_incremental"


def test_a_duplicate_unique_key_is_a_one_line_model_error(tmp_path: Path) -> None:
    """Rows of one key would be appended twice (or fail the merge with delta-rs's message)."""
    lake = Lake(str(tmp_path / "lake"))
    ev = lake.create_table("s.ev", RUNNING_SCHEMA)
    ev.append(pa.table({"k": ["a", "a"], "t": [1, 2], "x": [1, 1]}, schema=RUNNING_SCHEMA))
    with ModelRunner(lake, [RUNNING]) as runner:
        runner.refresh()
        ev.append(pa.table({"k": ["a"], "t": [2], "x": [5]}, schema=RUNNING_SCHEMA))  # t=2 again
        with pytest.raises(
            ModelError, match=r"^model s\.running: its SQL returned 2 rows for one unique_key \(k='a', t=2\)$"
        ):
            runner.refresh()
        with pytest.raises(ModelError, match="returned 2 rows for one unique_key"):
            runner.refresh(full=True)
        assert _snapshot(runner, "s.running") == [("a", 1, 1), ("a", 2, 2)]  # nothing committed


def test_incremental_sql_replaces_the_scoped_query(tmp_path: Path) -> None:
    # the incremental form reads its own earlier rows instead of re-running the window
    inc = RUNNING.model_copy(
        update={
            "incremental_sql": (
                "with prior as (select r.k, max(r.total) as base from s.running r join __shoal_touched t "
                "on r.k = t.k where r.t < t.__shoal_from group by r.k) "
                "select e.k, e.t, (coalesce(p.base, 0) + sum(e.x) over (partition by e.k order by e.t))"
                "::BIGINT as total from s.ev e join __shoal_touched t on e.k = t.k and e.t >= t.__shoal_from "
                "left join prior p on p.k = e.k"
            )
        }
    )
    lake = Lake(str(tmp_path / "lake"))
    ev = lake.create_table("s.ev", RUNNING_SCHEMA)
    ev.append(pa.table({"k": ["a"] * 4, "t": [1, 2, 4, 6], "x": [1, 2, 4, 6]}))
    with ModelRunner(lake, [inc]) as runner:
        runner.refresh()
        ev.append(pa.table({"k": ["a", "a"], "t": [7, 3], "x": [7, 100]}, schema=RUNNING_SCHEMA))
        (r,) = runner.refresh()
        assert (r.mode, r.rows_written) == ("incremental", 4)  # t=3 new, 4 and 6 restated, 7 new
        got = _snapshot(runner, "s.running")
    assert got == [("a", 1, 1), ("a", 2, 3), ("a", 3, 103), ("a", 4, 107), ("a", 6, 113), ("a", 7, 120)]
    with pytest.raises(ValueError, match="incremental_sql needs incremental_by"):
        Model(name="s.x", sql="select 1 k", unique_key="k", incremental_sql="select 1 k")


def _sums(name: str, key: str, upstream: str) -> Model:
    """An additive model: sum(x) and count(*) of ``upstream`` per ``key``."""
    return Model(
        name=name,
        sql=f"select {key}, sum(x)::BIGINT as x, count(*) as n from {upstream} group by {key}",
        unique_key=(key,),
        additive_sql=f"select {key}, sum(__shoal_sign * x)::BIGINT as x, sum(__shoal_sign)::BIGINT as n "
        f"from __shoal_delta group by {key}",
        additive=("x", "n"),
        additive_count="n",
        upstream=(upstream,),
    )


BY_DAY = _sums("s.by_day", "day", "s.events")


def test_additive_model_follows_inserts_updates_and_deletes(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    ev = lake.create_table("s.events", EVENTS)
    ev.append(pa.table({"ticket": [1, 2, 3], "day": ["d1", "d1", "d2"], "x": [1, 2, 3]}, schema=EVENTS))
    with ModelRunner(lake, [BY_DAY]) as runner:
        assert runner.refresh()[0].mode == "full"
        # only a new day: appended, nothing rewritten
        ev.append(pa.table({"ticket": [4], "day": ["d3"], "x": [4]}, schema=EVENTS))
        (r,) = runner.refresh()
        assert (r.mode, r.rows_written, r.rows_deleted) == ("incremental", 1, 0)
        assert lake.table("s.by_day").history(1)[0]["operation"] == "WRITE"
        # an update moves a row from d1 to d3 (pre-image -1 in d1, post-image +1 in d3)
        ev.merge(pa.table({"ticket": [2], "day": ["d3"], "x": [20]}, schema=EVENTS), ["ticket"])
        (r,) = runner.refresh()
        assert (r.rows_written, r.rows_deleted) == (2, 0)
        assert _snapshot(runner, "s.by_day") == [("d1", 1, 1), ("d2", 3, 1), ("d3", 24, 2)]
        # every row of d2 deleted: its group goes
        ev.delete("day = 'd2'")
        (r,) = runner.refresh()
        assert (r.rows_written, r.rows_deleted) == (0, 1)
        got = _snapshot(runner, "s.by_day")
        assert [r.mode for r in runner.refresh()] == ["unchanged"]
        runner.refresh(full=True)
        assert _snapshot(runner, "s.by_day") == got == [("d1", 1, 1), ("d3", 24, 2)]


def test_additive_declaration_is_checked() -> None:
    base = {"name": "s.x", "sql": "select 1 k", "unique_key": "k", "additive_sql": "select 1 k"}
    with pytest.raises(ValueError, match="exactly one upstream"):
        Model(**base, additive=("n",), additive_count="n", upstream=("a.b", "a.c"))
    with pytest.raises(ValueError, match="additive_count"):
        Model(**base, additive=("n",), additive_count="m", upstream=("a.b",))
    with pytest.raises(ValueError, match="need additive_sql"):
        Model(name="s.x", sql="select 1 k", unique_key="k", additive=("n",))


# A running total whose incremental form reads the earlier total from a state model (per-key sums)
# instead of re-summing the key's history: only new rows and rows from the restate point are read.
ROWS = Model(
    name="s.rows",
    sql="select k, t, x, sum(x) over (partition by k order by t)::BIGINT as total from s.ev",
    unique_key=("k", "t"),
    incremental_by=("k",),
    restate_from="t",
    incremental_sql=(
        "with restated as (select k, sum(x) as x from __shoal_old group by k), "
        "prior as (select t.k, coalesce(s.x, 0) - coalesce(r.x, 0) as base from __shoal_touched t "
        "left join s.state s using (k) left join restated r using (k)), "
        "ev as (select k, t, x from __shoal_old union all "
        "select k, t, x from __shoal_changes where _change_type = 'insert') "
        "select ev.k, ev.t, ev.x, (p.base + sum(ev.x) over (partition by ev.k order by ev.t))::BIGINT "
        "as total from ev join prior p using (k)"
    ),
    state_models=("s.state",),
    upstream=("s.ev",),
)
STATE = _sums("s.state", "k", "s.rows")


def test_state_model_is_brought_to_its_models_version_first(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    ev = lake.create_table("s.ev", RUNNING_SCHEMA)
    ev.append(pa.table({"k": ["a"] * 3 + ["b"], "t": [1, 2, 4, 1], "x": [1, 2, 4, 1]}))
    with ModelRunner(lake, [STATE, ROWS]) as runner:
        assert [r.model for r in runner.refresh()] == ["s.rows", "s.state"]
        # s.rows commits, then a "crash" before s.state does: the state lags one version behind
        ev.append(pa.table({"k": ["a", "b"], "t": [5, 2], "x": [5, 10]}, schema=RUNNING_SCHEMA))
        runner.refresh_one(ROWS)
        assert lake.table("s.state").app_version("model:s.rows") != lake.table("s.rows").version
        # late t=3 for a: a's totals from 3 on are restated from the (caught-up) state
        ev.append(pa.table({"k": ["a"], "t": [3], "x": [100]}, schema=RUNNING_SCHEMA))
        runner.refresh()
        assert lake.table("s.state").app_version("model:s.rows") == lake.table("s.rows").version
        got = _snapshot(runner, "s.rows")
        runner.refresh(full=True)
        assert _snapshot(runner, "s.rows") == got
    assert [row for row in got if row[0] == "a"] == [
        ("a", 1, 1, 1), ("a", 2, 2, 3), ("a", 3, 100, 103), ("a", 4, 4, 107), ("a", 5, 5, 112)
    ]  # fmt: skip
    with pytest.raises(ConfigError, match=r"reads state model s\.state"):
        ModelRunner(lake, [ROWS])

"""A holding runner's copy of a restating model's recent rows (``shoal.models.recent``, ADR 0052):
it always equals the table's rows from its floor on, refreshes read their rows in scope from it,
and anything the runner did not commit itself drops it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from test_billing_models import assert_fast_path_exact, fast_path, to_arrow
from test_models_runner import RUNNING, RUNNING_SCHEMA

from shoal.lake import Lake
from shoal.models import ModelRunner
from shoal.models.recent import RecentRows
from shoal.usecases.billing.simulator import BillingSimulator

SOURCE = "billing.usage_events"
CHARGES = "billing.charges_hourly"


@pytest.fixture(scope="module")
def events() -> list:
    # 10% late (1-72 h, mostly 1-3), 2% re-sent: most batches restate hours already billed
    sim = BillingSimulator(5, datetime(2026, 1, 29, tzinfo=UTC), 4, 80, late_share=0.1, dup_share=0.02)
    return list(sim.events())


def _copy_rows(runner: ModelRunner, name: str) -> tuple[pa.Table, int]:
    copy = runner._session.recent._copies[name]
    live = copy.table().filter(pa.array(copy.alive))
    return live, copy.floor


def _sorted(rows: pa.Table) -> list[dict[str, object]]:
    return sorted(
        rows.to_pylist(),
        key=lambda r: (r["billing_month"], r["resource_id"], r["billing_hour"], r["event_id"]),
    )


def test_the_copy_equals_the_table_from_its_floor_on_after_every_cycle(tmp_path: Path, events: list) -> None:
    table = to_arrow(events)
    n = 14
    cuts = [table.num_rows * i // n for i in range(n + 1)]
    lake = Lake(str(tmp_path / "lake"))
    source = lake.create_table(SOURCE, table.schema)
    source.append(table.slice(0, cuts[2]))
    served = 0
    with ModelRunner(lake, fast_path(), hold=True) as runner:
        runner.refresh()
        recent = runner._session.recent
        for i in range(2, n):
            source.append(table.slice(cuts[i], cuts[i + 1] - cuts[i]))
            runner.refresh()
            if recent.held(CHARGES) is None:
                continue
            served += 1
            live, floor = _copy_rows(runner, CHARGES)
            charges = lake.table(CHARGES)
            floor_at = (
                pa.array([floor], pa.int64()).cast(charges.schema.field("billing_hour").type)[0].as_py()
            )
            on_disk = runner.con.query_arrow(
                f"SELECT * FROM {CHARGES} WHERE billing_hour >= TIMESTAMPTZ '{floor_at.isoformat()}'"
            )
            assert live.num_rows == on_disk.num_rows > 0
            assert _sorted(live) == _sorted(on_disk.cast(live.schema))
        runner.close()
        assert_fast_path_exact(runner.con, events)
    assert served >= n // 2  # late events restated billed hours in most cycles, read from the copy


def _ev(k: str, t: int, x: int) -> pa.Table:
    return pa.table({"k": [k], "t": [t], "x": [x]}, schema=RUNNING_SCHEMA)


def _snapshot(runner: ModelRunner) -> list[tuple[object, ...]]:
    return sorted(runner.con.sql("select * from s.running").fetchall())


def test_the_copy_is_loaded_extended_kept_and_dropped(tmp_path: Path) -> None:
    """Loaded from the first restate point a refresh needs, extended by the range below when a later
    one reaches further back, kept by the runner's own commits, dropped by anyone else's and by a
    rebuild; the model's rows are right throughout."""
    lake = Lake(str(tmp_path / "lake"))
    ev = lake.create_table("s.ev", RUNNING_SCHEMA)
    ev.append(pa.table({"k": ["a", "a", "b"], "t": [1, 4, 2], "x": [1, 4, 2]}))
    with ModelRunner(lake, [RUNNING], hold=True) as runner:
        runner.refresh()
        recent = runner._session.recent
        assert recent.held("s.running") is None  # nothing restated yet
        ev.append(_ev("a", 3, 10))  # restates a from t=3: (a, 4) is read from Delta, from t=3 on
        runner.refresh()
        assert recent.held("s.running") == 2  # (a, 3) appended, (a, 4) replaced: b is below the floor
        ev.append(_ev("a", 2, 100))  # below the floor: the rows of t=2 are read and added
        runner.refresh()
        assert recent.held("s.running") == 4  # (b, 2) and a's three from t=2
        assert _snapshot(runner) == [("a", 1, 1), ("a", 2, 101), ("a", 3, 111), ("a", 4, 115), ("b", 2, 2)]
        # another runner commits the model: the copy no longer reflects the table
        ev.append(_ev("b", 5, 5))
        with ModelRunner(Lake(str(tmp_path / "lake")), [RUNNING]) as other:
            other.refresh()
        ev.append(_ev("a", 6, 1000))
        runner.refresh()
        assert recent.held("s.running") is None
        ev.append(_ev("a", 5, 50))  # loaded again, from t=5
        runner.refresh()
        assert recent.held("s.running") == 3  # (b, 5), (a, 5), (a, 6)
        assert _snapshot(runner) == [
            ("a", 1, 1), ("a", 2, 101), ("a", 3, 111), ("a", 4, 115), ("a", 5, 165), ("a", 6, 1165),
            ("b", 2, 2), ("b", 5, 7),
        ]  # fmt: skip
        runner.refresh(full=True)
        assert recent.held("s.running") is None


def test_only_a_holding_runner_keeps_copies_of_models_that_fit() -> None:
    assert RecentRows.fits(RUNNING, RUNNING_SCHEMA)
    keyed_by_id = RUNNING.model_copy(update={"unique_key": ("k", "x")})  # t not in the key
    assert not RecentRows.fits(keyed_by_id, RUNNING_SCHEMA)
    text_order = pa.schema([("k", pa.string()), ("t", pa.string()), ("total", pa.int64())])
    assert not RecentRows.fits(RUNNING, text_order)


def test_a_watcher_keeps_the_copy_and_leaves_none_behind(tmp_path: Path) -> None:
    """``shoal refresh --watch`` builds a plain runner and watches with it: the watch holds state
    (the copy is kept from cycle to cycle) and drops it when it returns."""
    lake = Lake(str(tmp_path / "lake"))
    ev = lake.create_table("s.ev", RUNNING_SCHEMA)
    ev.append(pa.table({"k": ["a", "a", "b"], "t": [1, 4, 2], "x": [1, 4, 2]}))
    late = [_ev("a", 2, 100)]
    held: list[int | None] = []
    with ModelRunner(lake, [RUNNING]) as runner:
        runner.refresh()
        recent = runner._session.recent

        def on_cycle(_results: object) -> None:
            held.append(recent.held("s.running"))
            if late:
                ev.append(late.pop())

        ev.append(_ev("a", 3, 10))
        runner.watch(interval_s=0.05, should_stop=lambda: len(held) >= 2, on_cycle=on_cycle)
        assert held == [2, 4]  # loaded in the first cycle, extended and kept in the second
        assert recent.held("s.running") is None
        assert _snapshot(runner) == [("a", 1, 1), ("a", 2, 101), ("a", 3, 111), ("a", 4, 115), ("b", 2, 2)]

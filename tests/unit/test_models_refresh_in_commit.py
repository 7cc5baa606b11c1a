"""Refreshing in the commit of the source (ADR 0038): the rows a writer just appended are taken
from memory by the next cycle, and two runners of the same models never apply a change twice."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from test_billing_models import assert_fast_path_exact, fast_path, to_arrow

from shoal.lake import Lake, Table
from shoal.lake.errors import CommitConflict
from shoal.models import ModelRunner
from shoal.models.context import RefreshContext
from shoal.usecases.billing.simulator import BillingSimulator

SOURCE = "billing.usage_events"
LINES = "billing.invoice_lines"


@pytest.fixture(scope="module")
def events() -> list:
    sim = BillingSimulator(9, datetime(2026, 1, 30, tzinfo=UTC), 3, 60, late_share=0.1, dup_share=0.02)
    return list(sim.events())


def test_appended_rows_are_taken_from_memory_and_revenue_stays_exact(tmp_path: Path, events: list) -> None:
    table = to_arrow(events)
    cuts = [table.num_rows * i // 4 for i in range(5)]
    lake = Lake(str(tmp_path / "lake"))
    source = lake.create_table(SOURCE, table.schema)
    source.append(table.slice(0, cuts[1]))
    with ModelRunner(lake, fast_path()) as runner:
        runner.refresh()
        for i in range(1, 4):
            before = source.version
            rows = table.slice(cuts[i], cuts[i + 1] - cuts[i])
            version = source.append(rows)
            runner.offer_appended(SOURCE, before, version, rows)
            results = {r.model: r for r in runner.refresh()}
            # the models reading the source took its rows from memory, not from the change feed
            assert results["billing.charges_hourly"].handed_off == [SOURCE]
            assert results["billing.charges_hourly"].upstream_versions[SOURCE] == version
        assert_fast_path_exact(runner.con, events)


def test_an_offer_that_does_not_match_the_models_position_is_ignored(tmp_path: Path, events: list) -> None:
    table = to_arrow(events)
    half = table.num_rows // 2
    lake = Lake(str(tmp_path / "lake"))
    source = lake.create_table(SOURCE, table.schema)
    source.append(table.slice(0, half // 2))
    with ModelRunner(lake, fast_path()) as runner:
        runner.refresh()
        source.append(table.slice(half // 2, half - half // 2))  # another writer's commit
        before = source.version
        rows = table.slice(half)
        version = source.append(rows)
        # the models stand at the version before the other writer's commit: the offer alone would
        # miss its rows, so they read the change feed
        runner.offer_appended(SOURCE, before, version, rows)
        results = {r.model: r for r in runner.refresh()}
        assert results["billing.charges_hourly"].handed_off == []
        assert_fast_path_exact(runner.con, events)


def test_two_runners_of_the_same_models_never_apply_a_change_twice(
    tmp_path: Path, events: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = to_arrow(events)
    half = table.num_rows // 2
    lake = Lake(str(tmp_path / "lake"))
    source = lake.create_table(SOURCE, table.schema)
    source.append(table.slice(0, half))
    with ModelRunner(lake, fast_path()) as first:
        first.refresh()
    source.append(table.slice(half))
    a, b = (
        ModelRunner(Lake(str(tmp_path / "lake")), fast_path()),
        ModelRunner(Lake(str(tmp_path / "lake")), fast_path()),
    )
    write = RefreshContext.write
    raced = []

    def racing_write(self: RefreshContext, *args: object, **kwargs: object) -> object:
        # runner b has read its progress and computed its rows: runner a refreshes the same
        # models from the same progress and commits first
        if self.session is b._session and not raced:
            raced.append(self.model.name)
            monkeypatch.setattr(RefreshContext, "write", write)
            a.refresh()
        return write(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(RefreshContext, "write", racing_write)
    try:
        with pytest.raises(CommitConflict):
            b.refresh()
        assert raced == ["billing.charges_hourly"]
        b.refresh()  # the retry re-reads the progress: nothing left to apply
        assert_fast_path_exact(b.con, events)
    finally:
        a.close()
        b.close()


def _held_fast(every: float) -> list:
    return [m.model_copy(update={"commit_every_s": every}) if m.commit_every_s else m for m in fast_path()]


def _land_in_quarters(tmp_path: Path, events: list) -> tuple[Lake, Table, pa.Table, list[int]]:
    table = to_arrow(events)
    cuts = [table.num_rows * i // 4 for i in range(5)]
    lake = Lake(str(tmp_path / "lake"))
    source = lake.create_table(SOURCE, table.schema)
    source.append(table.slice(0, cuts[1]))
    return lake, source, table, cuts


def test_a_holding_runner_commits_invoice_lines_every_few_seconds_and_at_close(
    tmp_path: Path, events: list
) -> None:
    lake, source, table, cuts = _land_in_quarters(tmp_path, events)
    with ModelRunner(lake, fast_path()) as first:
        first.refresh()
    lines = lake.table(LINES)
    committed = lines.version
    runner = ModelRunner(lake, fast_path(), hold=True)
    try:
        for i in range(1, 3):
            source.append(table.slice(cuts[i], cuts[i + 1] - cuts[i]))
            results = {r.model: r for r in runner.refresh()}
            # charges_hourly read its month-to-date state from memory: the table did not move
            assert results[LINES].held
            # held as numpy sums found by key hash, not a DuckDB temp table (shoal.models.keyed)
            assert runner._session.arranged.is_keyed(LINES)
            # and revenue_hourly's copy too, whose commits are built from it
            assert runner._session.arranged.is_keyed("billing.revenue_hourly")
            assert results["billing.charges_hourly"].mode == "incremental"
            assert lines.version == committed
    finally:
        runner.close()  # commits what is held
    assert lines.version == committed + 1
    with ModelRunner(lake, fast_path()) as check:
        assert all(r.mode == "unchanged" for r in check.refresh())
        source.append(table.slice(cuts[3]))
        check.refresh()
        assert_fast_path_exact(check.con, events)


def test_held_changes_are_committed_when_due(tmp_path: Path, events: list) -> None:
    lake, source, table, cuts = _land_in_quarters(tmp_path, events)
    fast = _held_fast(0.2)
    with ModelRunner(lake, fast) as first:
        first.refresh()
    lines = lake.table(LINES)
    with ModelRunner(lake, fast, hold=True) as runner:
        for i in range(1, 4):
            before = lines.version
            source.append(table.slice(cuts[i], (cuts[i + 1] if i < 3 else table.num_rows) - cuts[i]))
            time.sleep(0.25)
            results = runner.refresh()
            # the change held in cycle 1 is due in cycle 2: committed at its end, with cycle 2's
            # own; cycle 3's change is held again
            commits = [r for r in results if r.mode == "commit"]
            assert [r.model for r in commits] == ([LINES] if i == 2 else [])
            assert lines.version == before + len(commits)
        runner.close()
        assert_fast_path_exact(runner.con, events)


def test_a_crash_loses_only_what_was_held_and_the_next_runner_takes_it_again(
    tmp_path: Path, events: list
) -> None:
    lake, source, table, cuts = _land_in_quarters(tmp_path, events)
    with ModelRunner(lake, fast_path()) as first:
        first.refresh()
    runner = ModelRunner(lake, fast_path(), hold=True)
    for i in range(1, 3):
        source.append(table.slice(cuts[i], cuts[i + 1] - cuts[i]))
        runner.refresh()
    runner._session.close()  # a crash: the connection and what it held are gone, nothing committed
    behind = lake.table(LINES).app_version("model:billing.charges_hourly")
    assert behind != lake.table("billing.charges_hourly").version
    source.append(table.slice(cuts[3]))
    with ModelRunner(lake, fast_path(), hold=True) as after:
        after.refresh()
        after.close()
        assert_fast_path_exact(after.con, events)


def test_another_writer_of_a_held_model_is_never_double_counted(tmp_path: Path, events: list) -> None:
    lake, source, table, cuts = _land_in_quarters(tmp_path, events)
    with ModelRunner(lake, fast_path()) as first:
        first.refresh()
    holding = ModelRunner(lake, fast_path(), hold=True)
    try:
        source.append(table.slice(cuts[1], cuts[2] - cuts[1]))
        assert {r.model: r for r in holding.refresh()}[LINES].held
        # someone else brings invoice_lines up to date meanwhile (e.g. `shoal refresh` by hand)
        with ModelRunner(Lake(str(tmp_path / "lake")), fast_path()) as other:
            other.refresh()
        source.append(table.slice(cuts[2]))
        holding.refresh()  # the copy and the held changes are dropped: it goes on from the table
    finally:
        holding.close()
    with ModelRunner(lake, fast_path()) as check:
        check.refresh()
        assert_fast_path_exact(check.con, events)

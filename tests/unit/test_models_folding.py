"""A runner that folds its models' small files (ADR 0053): the billing fast path stays exact to the
cent through many small cycles and their folds, what the runner keeps in memory (restate marks,
in-memory copies) is carried over the fold's commit instead of being dropped, and a fold runs only
where it is turned on."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_billing_models import assert_fast_path_exact, fast_path, to_arrow

from shoal.lake import Lake
from shoal.models import ModelRunner, RefreshResult, folding
from shoal.usecases.billing.simulator import BillingSimulator

CHARGES = "billing.charges_hourly"


@pytest.fixture
def small_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    # a look every 3 commits, a fold once 3 small files are there: many folds in a short run
    monkeypatch.setattr(folding, "FOLD_EVERY", 3)
    monkeypatch.setattr(folding, "MIN_FILES", 3)


def test_folds_keep_the_fast_path_exact_and_the_runners_memory(
    tmp_path: Path, small_thresholds: None
) -> None:
    sim = BillingSimulator(8, datetime(2026, 1, 30, tzinfo=UTC), 3, 40, late_share=0.1, dup_share=0.02)
    events = list(sim.events())
    table = to_arrow(events)
    lake = Lake(str(tmp_path / "lake"))
    source = lake.create_table("billing.usage_events", table.schema)
    batches = 27
    cuts = [len(events) * i // batches for i in range(batches + 1)]
    source.append(table.slice(0, cuts[1]))
    folds = []
    with ModelRunner(lake, fast_path(), hold=True, fold=True) as runner:
        runner.refresh()
        session = runner._session  # what the runner keeps between cycles
        loads = {"marks": 0, "copies": 0}
        real_marks, real_copy = session.marks._load, session.arranged.load

        def marks_load(*args: object, **kwargs: object) -> None:
            loads["marks"] += 1
            real_marks(*args, **kwargs)  # type: ignore[arg-type]

        def copy_load(*args: object, **kwargs: object) -> None:
            loads["copies"] += 1
            real_copy(*args, **kwargs)  # type: ignore[arg-type]

        session.marks._load = marks_load  # type: ignore[method-assign]
        session.arranged.load = copy_load  # type: ignore[method-assign]
        for i in range(1, batches):
            source.append(table.slice(cuts[i], cuts[i + 1] - cuts[i]))
            results = runner.refresh()
            folds += [r for r in results if r.mode == "fold"]
            if any(r.mode == "fold" and r.model == CHARGES for r in results):
                # revenue_hourly takes the cycle's charges commit from memory across the fold
                (revenue,) = [r for r in results if r.model == "billing.revenue_hourly"]
                assert revenue.handed_off == [CHARGES], results
        # the last folds may still be rewriting: let the next cycles commit them
        for f in session.folds._running.values():
            f.result()
        folds += [r for r in runner.refresh() if r.mode == "fold"]
        runner.commit_held()  # invoice_lines' changes are held in memory between its commits
        assert_fast_path_exact(runner.con, events)
    folded = [f for f in folds if f.model == CHARGES]
    assert len(folded) >= 3, folds
    # the marks (one load for each of the two months the stream reaches, as without folds) and
    # the copies (loaded by the first refresh) were carried over every fold's commit, not dropped
    # and read back
    assert loads == {"marks": 2, "copies": 0}, (loads, folds)
    assert all(f.touched >= 3 and f.rows_written > 0 for f in folded)
    # the folds kept charges_hourly's file count down: far fewer files than commits
    assert len(lake.table(CHARGES).files()) < batches // 2
    # and a fresh runner agrees (the folds' commits are data-neutral for every reader)
    with ModelRunner(lake, fast_path()) as runner:
        assert_fast_path_exact(runner.con, events)


def test_only_a_runner_that_folds_folds(tmp_path: Path, small_thresholds: None) -> None:
    sim = BillingSimulator(9, datetime(2026, 1, 30, tzinfo=UTC), 2, 30, late_share=0.1, dup_share=0.02)
    table = to_arrow(list(sim.events()))
    lake = Lake(str(tmp_path / "lake"))
    source = lake.create_table("billing.usage_events", table.schema)
    step = table.num_rows // 24
    source.append(table.slice(0, step))
    with ModelRunner(lake, fast_path()) as runner:  # a one-off refresh, as `shoal refresh` runs
        runner.refresh()
        for i in range(1, 12):
            source.append(table.slice(i * step, step))
            assert not any(r.mode == "fold" for r in runner.refresh())
    assert len(lake.table(CHARGES).files()) >= 10
    # a watcher (`shoal refresh --watch`) folds: its cycles' results carry the folds
    cycles: list[list[str]] = []

    def on_cycle(results: list[RefreshResult]) -> None:
        cycles.append([r.mode for r in results if r.model == CHARGES])
        source.append(table.slice((11 + len(cycles)) * step, step))  # the stream goes on

    with ModelRunner(lake, fast_path()) as runner:
        runner.watch(interval_s=0.01, should_stop=lambda: len(cycles) >= 12, on_cycle=on_cycle)
    assert any("fold" in modes for modes in cycles), cycles

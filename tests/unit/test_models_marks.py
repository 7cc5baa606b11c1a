"""Restate marks (ADR 0043): a slice refresh reads the target only for slices whose restate point
is at or below the greatest restate_from value they hold, and stays exact when it must read them
(late events, duplicates) or when another writer moved the table."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from test_billing_models import assert_fast_path_exact, fast_path, to_arrow
from test_models_runner import MONTHLY, MONTHLY_SCHEMA

from shoal.lake import Lake, Table
from shoal.models import Model, ModelRunner, ScopeInputs, marks, slices
from shoal.models.seen import SeenIds, id_hashes
from shoal.usecases.billing import charges
from shoal.usecases.billing.simulator import BillingSimulator

SOURCE = "billing.usage_events"
CHARGES = "billing.charges_hourly"


def _first_eighth_landed(tmp_path: Path, events: list) -> tuple[Lake, Table, pa.Table, list[int]]:
    """A lake whose usage_events hold the first eighth of ``events``; the cuts of the other seven."""
    table = to_arrow(events)
    lake = Lake(str(tmp_path / "lake"))
    source = lake.create_table(SOURCE, table.schema)
    cuts = [table.num_rows * i // 8 for i in range(9)]
    source.append(table.slice(0, cuts[1]))
    return lake, source, table, cuts


def _land_the_rest(runner: ModelRunner, source: Table, table: pa.Table, cuts: list[int]) -> None:
    """Build the models, then land the rest of ``table`` batch by batch (between ``cuts``),
    refreshing after each."""
    runner.refresh()
    for lo, hi in pairwise(cuts[1:]):
        source.append(table.slice(lo, hi - lo))
        runner.refresh()


@pytest.fixture
def target_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of touched slices each read of charges_hourly's own rows was scoped to."""
    reads: list[int] = []
    real = slices.scoped

    def spy(model: Model, touched: pa.Table, relation: str, *args: object, **kwargs: object) -> str:
        if relation == model.name:
            reads.append(touched.num_rows)
        return real(model, touched, relation, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(slices, "scoped", spy)
    return reads


@pytest.fixture
def ids_read_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refresh waits for the background reads of ids it finds under way, so that what it reads
    does not depend on how fast the loader thread was (the runner itself never waits)."""
    real = marks._settle

    def settle(held: Any) -> None:
        for future, _ in list(held.loading.values()):
            future.exception()  # waits; the real settle takes the result or the failure
        real(held)

    monkeypatch.setattr(marks, "_settle", settle)


def marks_only() -> list[Model]:
    """The fast path with restate marks alone: no ``restate_scope``, no ``dedupe_by`` (ADR 0055),
    so that every slice touched at or below its mark is read."""
    off = {"restate_scope": None, "scope_lows": (), "dedupe_by": None}
    return [m.model_copy(update=off) if m.name == CHARGES else m for m in fast_path()]


def _events(late: float, dup: float) -> list:
    """Three days across a month boundary, in arrival order (late ones arrive hours after)."""
    sim = BillingSimulator(5, datetime(2026, 1, 30, tzinfo=UTC), 3, 40, late_share=late, dup_share=dup)
    return list(sim.events())


def test_in_order_hours_read_nothing_of_the_target(tmp_path: Path, target_reads: list[int]) -> None:
    # no late events, no duplicates, batches of whole hours: each batch starts every slice it
    # touches past the hours it holds
    events = sorted(_events(0.0, 0.0), key=lambda e: (e.billing_hour, e.event_id))
    table = to_arrow(events)
    lake = Lake(str(tmp_path / "lake"))
    source = lake.create_table(SOURCE, table.schema)
    hours = sorted({e.billing_hour for e in events})
    firsts = [next(i for i, e in enumerate(events) if e.billing_hour == h) for h in hours]
    cuts = [firsts[len(hours) * i // 6] for i in range(6)] + [len(events)]
    source.append(table.slice(0, cuts[1]))
    with ModelRunner(lake, fast_path()) as runner:
        runner.refresh()  # builds the models
        for i in range(1, 6):
            source.append(table.slice(cuts[i], cuts[i + 1] - cuts[i]))
            target_reads.clear()
            runner.refresh()
            # a batch's slices either start past every hour they hold, or hold nothing yet
            assert target_reads == [], f"cycle {i} read the target for {target_reads} slices"
        assert_fast_path_exact(runner.con, events)


def test_late_and_duplicate_events_read_their_slices_and_stay_exact(
    tmp_path: Path, target_reads: list[int]
) -> None:
    events = _events(0.15, 0.05)
    lake, source, table, cuts = _first_eighth_landed(tmp_path, events)
    touched_total = read_total = 0
    with ModelRunner(lake, marks_only()) as runner:
        runner.refresh()
        for i in range(1, 8):
            source.append(table.slice(cuts[i], cuts[i + 1] - cuts[i]))
            target_reads.clear()
            results = {r.model: r for r in runner.refresh()}
            touched_total += results[CHARGES].touched
            read_total += sum(target_reads)
        assert_fast_path_exact(runner.con, events)
    # some slices had to be read (late hours, duplicates), far from all of them
    assert 0 < read_total < touched_total / 2, (read_total, touched_total)


def test_another_writer_drops_the_marks(tmp_path: Path) -> None:
    """Two runners take turns on one lake: each one's marks are stale after the other's commit,
    and a refresh on stale marks would miss rows (a duplicate key, or a cap counted twice)."""
    events = _events(0.15, 0.05)
    lake, source, table, cuts = _first_eighth_landed(tmp_path, events)
    with ModelRunner(lake, fast_path()) as a, ModelRunner(lake, fast_path()) as b:
        a.refresh()
        b.refresh()
        for i in range(1, 8):
            source.append(table.slice(cuts[i], cuts[i + 1] - cuts[i]))
            (a if i % 2 else b).refresh()
        a.refresh()
        assert_fast_path_exact(a.con, events)


def test_a_rebuild_drops_the_marks(tmp_path: Path) -> None:
    events = _events(0.15, 0.05)
    table = to_arrow(events)
    lake = Lake(str(tmp_path / "lake"))
    source = lake.create_table(SOURCE, table.schema)
    third = table.num_rows // 3
    source.append(table.slice(0, third))
    with ModelRunner(lake, fast_path()) as runner:
        runner.refresh()
        source.append(table.slice(third, third))
        runner.refresh()
        runner.refresh(full=True)
        source.append(table.slice(2 * third))
        runner.refresh()
        assert_fast_path_exact(runner.con, events)


def test_a_revenue_commit_reads_only_the_days_its_changes_touch(tmp_path: Path) -> None:
    # revenue_hourly is partitioned by billing_date, which is in its key: the merge of a cycle's
    # sums prunes the other days' files instead of scanning the month (docs/benchmarks.md, issue 18)
    events = sorted(_events(0.0, 0.0), key=lambda e: (e.billing_hour, e.event_id))
    lake, source, table, cuts = _first_eighth_landed(tmp_path, events)
    with ModelRunner(lake, fast_path()) as runner:
        _land_the_rest(runner, source, table, cuts)
        revenue = lake.table("billing.revenue_hourly")
        last = revenue.history(1)[0]
        assert last["operation"] == "MERGE"
        metrics = last["operationMetrics"]
        days = len({e.billing_hour.date() for e in events[cuts[-2] :]})
        assert metrics["num_target_files_scanned"] <= 2 * days
        assert metrics["num_target_files_skipped_during_scan"] > 0
        assert_fast_path_exact(runner.con, events)


def _running_totals_lake(tmp_path: Path) -> tuple[Lake, Table]:
    """A lake with the source of ``MONTHLY`` (running totals per slice (m, k) in t order): slices
    (a, NULL) and (a, b) at t = 1 and 3."""
    lake = Lake(str(tmp_path / "lake"))
    ev = lake.create_table("s.mev", MONTHLY_SCHEMA)
    data = {"m": ["a"] * 4, "k": [None, None, "b", "b"], "t": [1, 3, 1, 3], "x": [1, 2, 3, 4]}
    ev.append(pa.table(data, schema=MONTHLY_SCHEMA))
    return lake, ev


def _running_rows(lake: Lake) -> list[tuple[object, ...]]:
    got = lake.table("s.monthly").to_arrow().to_pylist()
    return sorted((r["m"], r["k"] or "", r["t"], r["total"]) for r in got)


def test_a_slice_with_a_null_slice_value_is_read_when_restated(tmp_path: Path) -> None:
    """Marks are matched by slice in Arrow, whose join matches no NULL: a slice whose second
    ``incremental_by`` value is NULL must still be read when a late row restates it, or the
    refresh would append its restated rows beside the old ones."""
    lake, ev = _running_totals_lake(tmp_path)

    with ModelRunner(lake, [MONTHLY]) as runner:
        runner.refresh()
        ev.append(pa.table({"m": ["a"], "k": ["b"], "t": [5], "x": [1]}, schema=MONTHLY_SCHEMA))
        runner.refresh()  # marks loaded and raised
        # a late row for the NULL slice only, before an hour it holds: nothing else is read
        ev.append(pa.table({"m": ["a"], "k": [None], "t": [2], "x": [10]}, schema=MONTHLY_SCHEMA))
        runner.refresh()
        incremental = _running_rows(lake)
        runner.refresh(full=True)
    assert incremental == _running_rows(lake)
    assert ("a", "", 3, 13) in incremental
    assert len(incremental) == 6


def test_a_batch_of_new_and_restated_slices_stays_exact(tmp_path: Path) -> None:
    """Only the new rows of slices read into the old scope are compared with the old rows; the
    others are new by construction. A NULL slice value counts as read (SQL matches it, Arrow's
    join does not): classed as new, its restated rows would be appended beside the old ones."""
    lake, ev = _running_totals_lake(tmp_path)

    with ModelRunner(lake, [MONTHLY]) as runner:
        runner.refresh()
        # late rows for the NULL slice and for (a, b), a new slice (a, c), a next row of (a, b)
        late = {"m": ["a"] * 5, "k": [None, "b", "c", "c", "b"], "t": [2, 2, 1, 2, 4], "x": [10, 20, 5, 6, 7]}
        ev.append(pa.table(late, schema=MONTHLY_SCHEMA))
        runner.refresh()
        incremental = _running_rows(lake)
        runner.refresh(full=True)
    assert incremental == _running_rows(lake)
    assert ("a", "", 3, 13) in incremental
    assert ("a", "b", 4, 34) in incremental
    assert len(incremental) == 9


def test_seen_ids_hold_what_was_added_across_merges() -> None:
    rng = np.random.default_rng(7)
    held = SeenIds()
    added: set[tuple[int, int]] = set()

    def draw(n: int) -> np.ndarray:
        return rng.integers(0, 1 << 63, size=n, dtype=np.uint64)

    for size in (1000, 10, 50, 300, 5, 2000, 1, 0, 700):
        first, second = draw(size) % np.uint64(5000), draw(size)  # the first hash repeats often
        held.add(first, second)
        added.update(zip(first.tolist(), second.tolist(), strict=True))
        probe_first = np.concatenate([first, first, draw(100) % np.uint64(5000)])
        probe_second = np.concatenate([second, second + np.uint64(1), draw(100)])
        want = [(a, b) in added for a, b in zip(probe_first.tolist(), probe_second.tolist(), strict=True)]
        assert held.contains(probe_first, probe_second).tolist() == want
    assert len(held) == sum(s for s in (1000, 10, 50, 300, 5, 2000, 1, 0, 700))
    empty = np.array([1, 2], dtype=np.uint64)
    assert SeenIds().contains(empty, empty).tolist() == [False, False]


def test_id_hashes_are_a_function_of_the_bytes_alone() -> None:
    """The same id gives the same pair however it is held (a slice of a larger array, chunks,
    string views, ids of other lengths beside it); 200,000 distinct ids give distinct hashes."""
    ids = [str(uuid.UUID(int=i * 7919 + 11)) for i in range(200_000)]
    first, second = id_hashes(pa.array(ids))
    assert len(set(first.tolist())) == len(ids)
    assert len(set(second.tolist())) == len(ids)
    mixed = ["", "a", ids[5], "b" * 17, ids[9], "a"]
    got = id_hashes(pa.chunked_array([pa.array(mixed[:2]), pa.array(mixed[2:])]).cast(pa.string_view()))
    want = [id_hashes(pa.array([v])) for v in mixed]
    assert got[0].tolist() == [int(w[0][0]) for w in want]
    assert got[1].tolist() == [int(w[1][0]) for w in want]
    assert got[0][2] == first[5]
    assert got[1][4] == second[9]
    sliced = id_hashes(pa.array(ids).slice(100, 3))
    assert sliced[0].tolist() == first[100:103].tolist()


def test_a_re_sent_event_already_charged_is_dropped_without_a_read(
    tmp_path: Path, target_reads: list[int], ids_read_at_once: None
) -> None:
    """dedupe_by (ADR 0055): a producer re-sends events charged cycles ago. The runner finds their
    ids among those it holds and drops them: no read of the slices, no second charge."""
    events = sorted(_events(0.0, 0.0), key=lambda e: (e.billing_hour, e.event_id))
    lake, source, table, cuts = _first_eighth_landed(tmp_path, events)
    with ModelRunner(lake, fast_path()) as runner:
        _land_the_rest(runner, source, table, cuts)
        resent = table.slice(cuts[2], 50)  # charged five batches ago, now at later offsets
        offsets = pa.array([o + 1_000_000 for o in resent["_kafka_offset"].to_pylist()], pa.int64())
        at = resent.schema.get_field_index("_kafka_offset")
        source.append(resent.set_column(at, "_kafka_offset", offsets))
        target_reads.clear()
        results = {r.model: r for r in runner.refresh()}
        assert target_reads == []
        assert results[CHARGES].rows_written == 0
        assert_fast_path_exact(runner.con, events)


def test_a_month_of_late_events_across_cap_crossings_stays_exact_with_fewer_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ids_read_at_once: None
) -> None:
    """restate_scope (ADR 0055) over a whole month: caps are reached from ~hour 672, late events
    and re-sent duplicates arrive all along. The refreshes stay exact to the Decimal reference, and
    the scope function leaves out slices the marks alone would have read."""
    events = list(
        BillingSimulator(3, datetime(2026, 1, 1, tzinfo=UTC), 32, 40, late_share=0.1, dup_share=0.03).events()
    )
    table = to_arrow(events)
    lake = Lake(str(tmp_path / "lake"))
    source = lake.create_table(SOURCE, table.schema)
    cuts = [table.num_rows * i // 24 for i in range(25)]
    source.append(table.slice(0, cuts[1]))
    decided = {"candidates": 0, "kept": 0}
    real = charges.charges_scope

    def spy(inputs: ScopeInputs) -> pa.Table | None:
        kept = real(inputs)
        decided["candidates"] += inputs.candidates.num_rows
        decided["kept"] += inputs.candidates.num_rows if kept is None else kept.num_rows
        return kept

    models = [m.model_copy(update={"restate_scope": spy}) if m.name == CHARGES else m for m in fast_path()]
    with ModelRunner(lake, models) as runner:
        _land_the_rest(runner, source, table, cuts)
        assert_fast_path_exact(runner.con, events)
    assert 0 < decided["kept"] < decided["candidates"] / 2, decided


def test_groups_beyond_the_limit_are_let_go_and_loaded_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ids_read_at_once: None
) -> None:
    """A runner holds the marks and ids of at most MAX_GROUPS months: the least recently touched
    are let go, and loaded again (with their ids) when a late event touches them. Exact all along."""
    monkeypatch.setattr(marks, "MAX_GROUPS", 1)
    loads: list[list[str]] = []
    real = marks.RestateMarks._load

    def spy(self: marks.RestateMarks, model: Model, *args: object) -> None:
        if model.name == CHARGES:
            loads.append(sorted(args[-1]))  # type: ignore[call-overload]
        real(self, model, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(marks.RestateMarks, "_load", spy)
    events = _events(0.15, 0.05)  # Jan 30 to Feb 1
    lake, source, table, cuts = _first_eighth_landed(tmp_path, events)
    rest = table.slice(cuts[1])
    january = pc.equal(rest["billing_month"], "2026-01")
    later_january, february = rest.filter(january), rest.filter(pc.invert(january))
    with ModelRunner(lake, fast_path()) as runner:
        runner.refresh()
        half = february.num_rows // 2
        for batch in (february.slice(0, half), later_january, february.slice(half)):
            source.append(batch)  # one month at a time: the other is let go, then loaded again
            runner.refresh()
        assert_fast_path_exact(runner.con, events)
    loaded = [g for batch in loads for g in batch]
    assert len(loaded) > len(set(loaded)), loads  # a month let go was loaded again


def test_until_a_months_ids_are_read_its_slices_are_read_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target_reads: list[int]
) -> None:
    """The ids of a month are read in a thread; until that read is in, a refresh neither drops
    re-deliveries nor leaves slices out, and stays exact. A read that fails is done again."""
    gate = threading.Event()
    real = marks._read_ids
    failed: list[bool] = []

    def slow(cursor: Any, sql: str) -> Any:
        assert gate.wait(30)
        if not failed:  # the first read fails, as a lost connection would
            failed.append(True)
            cursor.close()
            raise duckdb.IOException("simulated")
        return real(cursor, sql)

    monkeypatch.setattr(marks, "_read_ids", slow)
    events = _events(0.15, 0.05)
    lake, source, table, cuts = _first_eighth_landed(tmp_path, events)
    with ModelRunner(lake, fast_path()) as runner:
        runner.refresh()
        for i in range(1, 4):  # the reads are held back: every late slice is read
            source.append(table.slice(cuts[i], cuts[i + 1] - cuts[i]))
            target_reads.clear()
            runner.refresh()
            assert target_reads, i
        gate.set()
        for i in range(4, 8):
            source.append(table.slice(cuts[i], cuts[i + 1] - cuts[i]))
            runner.refresh()
        assert_fast_path_exact(runner.con, events)
    assert failed

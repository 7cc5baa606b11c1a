"""The billing models under shoal's ModelRunner on a local Delta lake: incremental == reference,
also after a crash between the chain's commits, a restart from an old version, late events for
closed hours and replayed duplicates."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
from test_billing_models import assert_fast_path_exact, fast_path, keyed, to_arrow

from shoal.lake import Lake
from shoal.models import ModelRunner
from shoal.usecases.billing import models, reference
from shoal.usecases.billing.events import USAGE, BillingEvent
from shoal.usecases.billing.simulator import BillingSimulator

CHARGES = "billing.charges_hourly"


def _events() -> list[BillingEvent]:
    sim = BillingSimulator(21, datetime(2026, 1, 30, tzinfo=UTC), 4, 150, late_share=0.1, dup_share=0.02)
    return list(sim.events())


def assert_matches_reference(runner: ModelRunner, events: Sequence[BillingEvent]) -> None:
    """Every billing model equals the Decimal reference over the events delivered, to the cent."""
    ref = reference.compute(events)
    for m in models():
        got: list[dict[str, Any]] = runner.con.query_arrow(f"SELECT * FROM {m.name}").to_pylist()
        want = getattr(ref, m.name.split(".", 1)[1])
        assert keyed(got, m.unique_key) == keyed(want, m.unique_key), m.name


def test_runner_incremental_refresh_matches_reference(tmp_path: Path) -> None:
    events = _events()
    cut = len(events) * 4 // 5
    table = to_arrow(events)
    lake = Lake(str(tmp_path / "lake"))
    source = lake.create_table("billing.usage_events", table.schema)
    source.append(table.slice(0, cut))
    with ModelRunner(lake, models()) as runner:
        assert {r.mode for r in runner.refresh()} == {"full"}
        source.append(table.slice(cut))
        results = {r.model: r for r in runner.refresh()}
        modes = {name: r.mode for name, r in results.items()}
        assert modes[CHARGES] == "incremental"
        assert modes["billing.revenue_hourly"] == "incremental"
        # one pipeline: the additive models took charges_hourly's commit from memory
        for name in ("billing.revenue_hourly", "billing.invoice_lines"):
            assert results[name].handed_off == [CHARGES], name
        assert_matches_reference(runner, events)


def test_a_crash_between_the_chains_commits_and_a_restart_from_an_old_version(tmp_path: Path) -> None:
    events = _events()
    table = to_arrow(events)
    cuts = [len(events) * i // 5 for i in range(6)]
    lake = Lake(str(tmp_path / "lake"))
    source = lake.create_table("billing.usage_events", table.schema)
    source.append(table.slice(0, cuts[1]))
    specs = {m.name: m for m in models()}
    with ModelRunner(lake, models()) as runner:
        runner.refresh()
        # charges_hourly commits, then the process dies before its downstream models do
        source.append(table.slice(cuts[1], cuts[2] - cuts[1]))
        runner.refresh_one(specs[CHARGES])
    # the watcher stays down while two more batches land: every model is versions behind
    for lo, hi in ((cuts[2], cuts[3]), (cuts[3], cuts[4])):
        source.append(table.slice(lo, hi - lo))
    with ModelRunner(lake, models()) as runner:
        results = {r.model: r for r in runner.refresh()}
        # invoice_lines (charges' state) was brought up from the change feed before charges ran;
        # revenue_hourly was behind by two commits of charges: the feed, not a handoff
        assert results["billing.revenue_hourly"].handed_off == []
        assert_matches_reference(runner, events[: cuts[4]])
        source.append(table.slice(cuts[4]))
        results = {r.model: r for r in runner.refresh()}
        assert results["billing.revenue_hourly"].handed_off == [CHARGES]
        assert_matches_reference(runner, events)


def test_late_events_for_closed_hours_and_replayed_duplicates(tmp_path: Path) -> None:
    events = _events()
    cut = len(events) // 2
    lake = Lake(str(tmp_path / "lake"))
    first = to_arrow(events[:cut])
    source = lake.create_table("billing.usage_events", first.schema)
    source.append(first)
    # a late event for the first hour of a capped resource, big enough to cross its cap: every
    # later hour of that resource-month is restated (charged 0 from then on)
    capped = next(e for e in events[:cut] if e.event_type == USAGE and e.monthly_cap_micros)
    hour = min(e.billing_hour for e in events[:cut] if e.resource_id == capped.resource_id)
    late = capped._replace(
        event_id="late-crossing-the-cap",
        billing_hour=hour,
        occurred_at=hour + timedelta(minutes=5),
        quantity_micros=10**12,
    )
    # a replay: the broker redelivers a stretch of already-ingested events (same event ids)
    replayed = events[cut // 3 : cut // 3 + 500]
    delivered = [*events[:cut], late, *replayed, *events[cut:]]
    second = to_arrow([late, *replayed, *events[cut:]])
    # offsets after those of the first batch: a redelivery is a later record of the same partition
    offsets = pa.array([o + len(first) for o in second["_kafka_offset"].to_pylist()], pa.int64())
    second = second.set_column(second.schema.get_field_index("_kafka_offset"), "_kafka_offset", offsets)
    with ModelRunner(lake, models()) as runner:
        runner.refresh()
        source.append(second)
        runner.refresh()
        assert_matches_reference(runner, delivered)
    ref = reference.compute(delivered)
    later = [
        r
        for r in ref.charges_hourly
        if (r["resource_id"], r["billing_month"]) == (capped.resource_id, capped.billing_month)
        and r["billing_hour"] > hour
    ]
    assert later  # the late event restated hours already charged: they now pay nothing
    assert all(r["charge"] == 0 for r in later)


def test_a_commit_of_charges_without_changes_keeps_invoice_lines_held_changes(tmp_path: Path) -> None:
    """A runner holding invoice_lines' changes in memory (a watcher, ADR 0038) meets a commit of
    charges_hourly that changes no row (a batch of replayed duplicates): invoice_lines consumes
    it in memory too. Committing that position to its table would declare the held changes
    consumed and lose them (this failed before: the lines lacked the second batch)."""
    events = _events()
    table = to_arrow(events)
    cut = len(events) // 2
    lake = Lake(str(tmp_path / "lake"))
    source = lake.create_table("billing.usage_events", table.schema)
    source.append(table.slice(0, cut // 2))
    with ModelRunner(lake, fast_path(), hold=True) as runner:
        runner.refresh()
        source.append(table.slice(cut // 2, cut - cut // 2))
        results = {r.model: r for r in runner.refresh()}
        assert results["billing.invoice_lines"].held  # the second batch's sums are in memory
        # a redelivery of events already charged: charges_hourly commits, but no row changes
        replay = table.slice(cut - 300, 300)
        offsets = pa.array([o + cut for o in replay["_kafka_offset"].to_pylist()], pa.int64())
        source.append(
            replay.set_column(replay.schema.get_field_index("_kafka_offset"), "_kafka_offset", offsets)
        )
        results = {r.model: r for r in runner.refresh()}
        assert (results[CHARGES].mode, results[CHARGES].rows_written) == ("incremental", 0)
        assert results["billing.invoice_lines"].held
    with ModelRunner(lake, fast_path()) as runner:  # what the lake holds once the runner stopped
        assert_fast_path_exact(runner.con, events[:cut])

"""A simulated month (≥5 % late, ≥1 % duplicate events) through the ModelRunner's incremental
refreshes on a local lake: after every refresh each billing model equals the Decimal reference, and
late events that move monthly-cap crossings restate hours that were already billed."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from test_billing_models import keyed, to_arrow

from shoal.lake import Lake
from shoal.models import ModelRunner
from shoal.usecases.billing import models, reference
from shoal.usecases.billing.events import BillingEvent
from shoal.usecases.billing.simulator import BillingSimulator

START = datetime(2026, 1, 1, tzinfo=UTC)
# caps are reached after 672 hours (Jan 29 00:00): refresh just after, then twice more
REFRESH_AT = (datetime(2026, 1, 29, 12, tzinfo=UTC), datetime(2026, 1, 31, tzinfo=UTC))


def shares(events: list[BillingEvent]) -> tuple[float, float]:
    """(late, duplicate) shares: late = delivered after an event of a later billing hour."""
    latest, late = events[0].billing_hour, 0
    for e in events:
        late += e.billing_hour < latest
        latest = max(latest, e.billing_hour)
    distinct = len({e.event_id for e in events})
    return late / len(events), (len(events) - distinct) / distinct


def test_month_of_incremental_refreshes_matches_reference(tmp_path: Path) -> None:
    # January plus Feb 1: late events cross the month boundary, caps reset
    events = list(BillingSimulator(3, START, 32, 80, late_share=0.07, dup_share=0.012).events())
    late, dup = shares(events)
    assert late >= 0.05
    assert dup >= 0.01
    cuts = [next(i for i, e in enumerate(events) if e.billing_hour >= t) for t in REFRESH_AT]
    cuts.append(len(events))

    table = to_arrow(events)
    lake = Lake(str(tmp_path / "lake"))
    source = lake.create_table("billing.usage_events", table.schema)
    specs = models()
    before: dict[str, Decimal] = {}
    restated = 0
    lo = 0
    with ModelRunner(lake, specs) as runner:
        for hi in cuts:
            source.append(table.slice(lo, hi - lo))
            modes = {r.model: r.mode for r in runner.refresh()}
            assert modes == {
                m.name: "full" if lo == 0 or not (m.incremental_by or m.additive_sql) else "incremental"
                for m in specs
            }
            lo = hi
            ref = reference.compute(events[:hi])
            for m in specs:
                got: list[dict[str, Any]] = runner.con.query_arrow(f"SELECT * FROM {m.name}").to_pylist()
                want = getattr(ref, m.name.split(".", 1)[1])
                assert keyed(got, m.unique_key) == keyed(want, m.unique_key), m.name
            charges = {r["event_id"]: r["charge"] for r in ref.charges_hourly}
            restated += sum(1 for k, v in before.items() if charges[k] != v)
            before = charges
    capped = [r for r in ref.charges_hourly if r["charge"] < r["uncapped_charge"]]
    assert len(capped) > 1000
    # a late hour moved a cap crossing: charges of hours billed by an earlier refresh changed
    assert restated > 0

"""The billing models under shoal's ModelRunner on a local Delta lake: incremental == reference."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from test_billing_models import keyed, to_arrow

from shoal.lake import Lake
from shoal.models import ModelRunner
from shoal.usecases.billing import models, reference
from shoal.usecases.billing.simulator import BillingSimulator


def test_runner_incremental_refresh_matches_reference(tmp_path: Path) -> None:
    events = list(
        BillingSimulator(
            21, datetime(2026, 1, 30, tzinfo=UTC), 4, 150, late_share=0.1, dup_share=0.02
        ).events()
    )
    cut = len(events) * 4 // 5
    table = to_arrow(events)
    lake = Lake(str(tmp_path / "lake"))
    source = lake.create_table("billing.usage_events", table.schema)
    source.append(table.slice(0, cut))
    with ModelRunner(lake, models()) as runner:
        assert {r.mode for r in runner.refresh()} == {"full"}
        source.append(table.slice(cut))
        modes = {r.model: r.mode for r in runner.refresh()}
        assert modes["billing.charges_hourly"] == "incremental"
        assert modes["billing.revenue_hourly"] == "incremental"
        ref = reference.compute(events)
        for m in models():
            got: list[dict[str, Any]] = runner.con.query_arrow(f"SELECT * FROM {m.name}").to_pylist()
            want = getattr(ref, m.name.split(".", 1)[1])
            assert keyed(got, m.unique_key) == keyed(want, m.unique_key), m.name

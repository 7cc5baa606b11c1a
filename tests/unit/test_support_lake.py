"""End to end on a local lake: the support models under the real ModelRunner, full then incremental."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shoal import lake as lake_mod
from shoal import query as query_mod
from shoal.models import runner as runner_mod
from shoal.usecases.support import models, reference
from shoal.usecases.support.simulator import SupportSimulator

TICKETS_KEY = ("ticket_id",)
DAILY_KEY = ("day", "team", "product")


def _sorted(rows: list[dict[str, Any]], key: tuple[str, ...]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: tuple("" if r[k] is None else str(r[k]) for k in key))


def _table_rows(lake: Any, name: str, key: tuple[str, ...]) -> list[dict[str, Any]]:
    return _sorted(lake.table(name).to_arrow().to_pylist(), key)


def _expected(rows: list[Any], key: tuple[str, ...]) -> list[dict[str, Any]]:
    return _sorted([dataclasses.asdict(r) for r in rows], key)


def _run(tmp_path: Path, names: tuple[str, ...]) -> None:
    """Land 60% of the events, refresh (full), land the rest, refresh (incremental); compare each time."""
    from test_support_models import events_to_arrow

    sim = SupportSimulator(
        21, datetime(2026, 3, 2, tzinfo=UTC), days=3, tickets_per_day=60, tail_days=1, duplicate_rate=0.02
    )
    events = list(sim.events())
    cut = int(len(events) * 0.6)
    table = events_to_arrow(events)
    lake = lake_mod.Lake(str(tmp_path / "lake"))
    raw = lake.create_table("support.ticket_events", table.schema, partition_by=["event_date"])
    raw.append(table.slice(0, cut))

    declared = [m for m in models.models() if m.name in names]
    con = query_mod.connect_lake(lake)  # sessions run in UTC: Delta refuses other zone labels
    with runner_mod.ModelRunner(lake, declared, con=con) as runner:
        for upto, mode in ((cut, "full"), (len(events), "incremental")):
            if upto == len(events):
                raw.append(table.slice(cut))
            assert {r.model: r.mode for r in runner.refresh()} == dict.fromkeys(names, mode)
            want = reference.tickets(events[:upto])
            if "support.tickets" in names:
                assert _table_rows(lake, "support.tickets", TICKETS_KEY) == _expected(want, TICKETS_KEY)
            if "support.csat_daily" in names:
                daily = _expected(reference.csat_daily(want), DAILY_KEY)
                assert _table_rows(lake, "support.csat_daily", DAILY_KEY) == daily


def test_tickets_model_full_then_incremental(tmp_path: Path) -> None:
    _run(tmp_path, ("support.tickets",))


def test_both_models_full_then_incremental(tmp_path: Path) -> None:
    _run(tmp_path, ("support.tickets", "support.csat_daily"))

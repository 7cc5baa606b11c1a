"""SupportSimulator: determinism, order, realism properties, and generation speed."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shoal.errors import ConfigError
from shoal.usecases.support import messages as pb
from shoal.usecases.support import reference
from shoal.usecases.support.simulator import ESCALATION_TEAM, TEAMS, SupportSimulator

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday


def _us(ev: Any) -> int:
    return int(ev.occurred_at.seconds) * 1_000_000 + ev.occurred_at.nanos // 1000


@pytest.fixture(scope="module")
def events() -> list[Any]:
    return list(SupportSimulator(42, START, days=14, tickets_per_day=150, duplicate_rate=0.02).events())


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    a = list(SupportSimulator(1, START, days=2, tickets_per_day=50).encoded())
    b = list(SupportSimulator(1, START, days=2, tickets_per_day=50).encoded())
    c = list(SupportSimulator(2, START, days=2, tickets_per_day=50).encoded())
    assert a == b
    assert a != c
    assert len(a) > 500


def test_keys_are_ticket_ids_and_values_decode() -> None:
    for key, value in SupportSimulator(3, START, days=1, tickets_per_day=40).encoded():
        ev = pb.TicketEvent.FromString(value)
        assert key == ev.ticket_id.encode()
        assert ev.WhichOneof("payload") is not None
        assert (
            ev.event_type
            == pb.TicketEvent.DESCRIPTOR.fields_by_name["event_type"]
            .enum_type.values_by_name["EVENT_TYPE_" + ev.WhichOneof("payload").upper()]
            .number
        )


def test_events_in_time_order_except_redeliveries(events: list[Any]) -> None:
    seen: set[str] = set()
    last = 0
    redelivered = 0
    for ev in events:
        if ev.event_id in seen:
            redelivered += 1
            continue
        seen.add(ev.event_id)
        assert _us(ev) >= last
        last = _us(ev)
    assert 0.01 < redelivered / len(events) < 0.03


def test_nothing_after_the_window_and_open_tickets_remain(events: list[Any]) -> None:
    end = START + timedelta(days=14)
    assert max(_us(e) for e in events) <= int(end.timestamp() * 1e6)
    rows = reference.tickets(events)
    open_share = sum(r.resolved_at is None for r in rows) / len(rows)
    assert 0.02 < open_share < 0.5


def test_weekends_are_quiet(events: list[Any]) -> None:
    created = Counter(
        datetime.fromtimestamp(e.occurred_at.seconds, UTC).weekday()
        for e in events
        if e.WhichOneof("payload") == "ticket_created"
    )
    weekday_avg = sum(created[d] for d in range(5)) / 5
    weekend_avg = (created[5] + created[6]) / 2
    assert weekend_avg < 0.7 * weekday_avg


def test_business_hours_tickets_get_first_responses_in_business_hours(events: list[Any]) -> None:
    offsets = {t.name: t.utc_offset_h for t in (*TEAMS, ESCALATION_TEAM)}
    checked = 0
    first_public: dict[str, Any] = {}
    for ev in events:
        if ev.WhichOneof("payload") == "agent_replied" and ev.agent_replied.public:
            first_public.setdefault(ev.ticket_id, ev)
    for ev in first_public.values():
        if ev.priority == 4 or ev.customer_tier == 4:  # urgent / enterprise are covered 24/7
            continue
        local = datetime.fromtimestamp(ev.occurred_at.seconds, UTC) + timedelta(hours=offsets[ev.team])
        assert local.weekday() < 5, (ev.ticket_id, local)
        assert 9 <= local.hour < 17, (ev.ticket_id, local)
        checked += 1
    assert checked > 500


def test_csat_falls_with_first_response_time(events: list[Any]) -> None:
    rows = [
        r for r in reference.tickets(events) if r.latest_csat is not None and r.first_response_s is not None
    ]
    rated_share = len(rows) / len(reference.tickets(events))
    assert 0.15 < rated_share < 0.5
    rows.sort(key=lambda r: r.first_response_s or 0)
    third = len(rows) // 3
    fast, slow = rows[:third], rows[-third:]
    good = defaultdict(float)
    for name, group in (("fast", fast), ("slow", slow)):
        good[name] = sum(1 for r in group if (r.latest_csat or 0) >= 4) / len(group)
    assert good["fast"] > good["slow"] + 0.15


def test_lifecycle_variety(events: list[Any]) -> None:
    cases = Counter(e.WhichOneof("payload") for e in events)
    for case in (
        "ticket_created",
        "ticket_assigned",
        "customer_replied",
        "agent_replied",
        "status_changed",
        "escalated",
        "resolved",
        "reopened",
        "satisfaction_rated",
    ):
        assert cases[case] > 0, case
    teams = Counter(e.team for e in events)
    assert set(teams) == {t.name for t in (*TEAMS, ESCALATION_TEAM)}
    internal = sum(
        1 for e in events if e.WhichOneof("payload") == "agent_replied" and not e.agent_replied.public
    )
    assert internal > 0  # misrouted tickets leave an internal note


def test_invalid_arguments() -> None:
    with pytest.raises(ConfigError, match="duplicate_rate"):
        SupportSimulator(1, START, days=1, tickets_per_day=1, duplicate_rate=1.5)
    with pytest.raises(ConfigError, match="days"):
        SupportSimulator(1, START, days=-1, tickets_per_day=1)

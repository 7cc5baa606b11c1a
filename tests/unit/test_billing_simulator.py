"""Billing simulator, customer base and protobuf codec."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

from shoal.usecases.billing import catalog
from shoal.usecases.billing.customers import generate_customers
from shoal.usecases.billing.events import USAGE, decode_event, message_class
from shoal.usecases.billing.simulator import BillingSimulator

START = datetime(2026, 3, 30, tzinfo=UTC)


def test_same_seed_same_events_and_different_seed_differs() -> None:
    a = list(BillingSimulator(5, START, 3, 80).events())
    b = list(BillingSimulator(5, START, 3, 80).events())
    c = list(BillingSimulator(6, START, 3, 80).events())
    assert a == b
    assert a != c


def test_stream_shape_late_duplicates_and_one_usage_per_resource_hour() -> None:
    events = list(BillingSimulator(3, START, 4, 300, late_share=0.1, dup_share=0.05).events())
    by_id: dict[str, object] = {}
    for e in events:
        assert by_id.setdefault(e.event_id, e) == e  # a duplicate is the identical event
    dups = len(events) - len(by_id)
    assert 0.03 < dups / len(by_id) < 0.07
    usage = [e for e in by_id.values() if getattr(e, "event_type", None) == USAGE]
    per_hour = Counter((e.resource_id, e.billing_hour) for e in usage)  # type: ignore[attr-defined]
    assert max(per_hour.values()) == 1
    latest = START
    late = 0
    for e in events:
        assert e.billing_hour == e.billing_hour.replace(minute=0, second=0, microsecond=0)
        assert e.billing_month == e.billing_hour.strftime("%Y-%m")
        assert e.occurred_at >= e.billing_hour
        late += e.billing_hour < latest
        latest = max(latest, e.billing_hour)
    assert late / len(events) > 0.05
    # the run crosses March -> April, late events included
    assert {e.billing_month for e in events} == {"2026-03", "2026-04"}
    assert {e.product for e in usage} >= {"vm", "backup", "snapshot", "object_storage"}


def test_volumes_are_free_in_beta_and_paid_after_ga() -> None:
    sim = BillingSimulator(9, START, 6, 1500, volume_ga_day=3)
    ga = START + timedelta(days=3)
    vols = [e for e in sim.events() if e.product == "volume" and e.event_type == USAGE]
    before = [e for e in vols if e.billing_hour < ga]
    after = [e for e in vols if e.billing_hour >= ga]
    assert before
    assert after
    assert {e.plan for e in before} == {"volume-gb-beta"}
    assert all(e.hourly_price_micros == 0 for e in before)
    assert {e.plan for e in after} == {"volume-gb"}
    assert len({e.user_id for e in after}) > len({e.user_id for e in before})


def test_encoded_roundtrip_key_is_resource_id() -> None:
    sim = BillingSimulator(4, START, 1, 60)
    events = list(sim.events())
    pairs = list(sim.encoded())
    assert len(pairs) == len(events)
    for ev, (key, value) in zip(events, pairs, strict=True):
        assert key == ev.resource_id.encode()
        assert str(uuid.UUID(ev.event_id)) == ev.event_id
        assert uuid.UUID(ev.event_id).version == 4
        assert decode_event(value) == ev
    cls = message_class()
    assert cls.DESCRIPTOR.full_name == "shoal.billing.v1.UsageEvent"
    assert cls.DESCRIPTOR.fields_by_name["monthly_cap_micros"].has_presence


def test_customer_base_of_100k_users() -> None:
    customers = generate_customers(1, 90, 100_000)
    assert len(customers) == 100_000
    assert len({c.user_id for c in customers}) == 100_000
    signups = [c.signup_hour for c in customers]
    assert signups == sorted(signups)
    new = [h for h in signups if h >= 0]
    assert 0.5 < len(new) / len(customers) < 0.6
    # growth: the last third of the period has more sign-ups than the first third
    assert sum(h >= 60 * 24 for h in new) > 1.5 * sum(h < 30 * 24 for h in new)
    regions = Counter(c.region for c in customers)
    assert set(regions) == set(catalog.REGIONS)
    assert regions.most_common(1)[0][0] == "nyc3"
    seg = Counter(c.segment for c in customers)
    assert seg["hobby"] > seg["startup"] > seg["business"] > seg["enterprise"] > 0
    assert len({c.team_id for c in customers}) < 0.9 * len(customers)

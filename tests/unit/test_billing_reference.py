"""Hand-checked billing rules in the Decimal reference calculator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from shoal.usecases.billing import reference
from shoal.usecases.billing.events import CREATED, USAGE, BillingEvent

BASE = datetime(2026, 6, 1, tzinfo=UTC)


def ev(
    eid: str,
    h: int,
    *,
    price: int,
    qty: int = 1_000_000,
    cap: int | None = None,
    resource: str = "r1",
    user: str = "u1",
    product: str = "vm",
    plan: str = "p",
    kind: str = USAGE,
) -> BillingEvent:
    hour = BASE + timedelta(hours=h)
    return BillingEvent(
        eid, kind, user, "t1", "fra1", resource, product, plan, "hour", qty, price, cap, "USD",
        hour + timedelta(minutes=61), hour, hour.strftime("%Y-%m"),
    )  # fmt: skip


def test_cap_remainder_then_zero_and_reset_next_month() -> None:
    events = [ev(f"e{h}", h, price=4_000_000, cap=10_000_000) for h in range(-3, 4)]  # 3 May + 4 June hours
    charges = {r["event_id"]: r["charge"] for r in reference.charges(events)}
    assert [charges[f"e{h}"] for h in (-3, -2, -1)] == [Decimal(4), Decimal(4), Decimal(2)]
    assert [charges[f"e{h}"] for h in range(4)] == [Decimal(4), Decimal(4), Decimal(2), Decimal(0)]


def test_upsize_keeps_accruing_to_the_new_cap() -> None:
    events = [
        ev("a", 2, price=3_000_000, cap=5_000_000, plan="small"),
        ev("b", 3, price=3_000_000, cap=5_000_000, plan="small"),  # crosses: pays 2
        ev("c", 4, price=6_000_000, cap=12_000_000, plan="big"),  # before = 6 uncapped -> pays 6
        ev("d", 5, price=6_000_000, cap=12_000_000, plan="big"),  # before = 12 -> 0
    ]
    charges = [r["charge"] for r in sorted(reference.charges(events), key=lambda r: r["billing_hour"])]
    assert charges == [Decimal(3), Decimal(2), Decimal(6), Decimal(0)]


def test_duplicates_count_once_and_lifecycle_is_not_charged() -> None:
    e = ev("x", 5, price=1_500_000)
    rows = reference.charges([e, e, ev("y", 5, price=9_000_000, kind=CREATED)])
    assert [(r["event_id"], r["charge"]) for r in rows] == [("x", Decimal("1.5"))]


def test_micro_half_up_and_invoice_half_even() -> None:
    # 10_000 micro-$/GB × 0.000050 GB = 0.5 micro-$ -> 1 micro-$ (half-up)
    bw = [ev(f"b{i}", 2 + i, price=10_000, qty=50, product="bandwidth", resource="bw") for i in range(3)]
    # $0.005 exactly -> $0.00 (half-even); $0.015 -> $0.02
    half = ev("h", 2, price=5_000, resource="r-half")
    three_halves = ev("k", 2, price=15_000, resource="r-3half")
    rows = reference.charges([*bw, half, three_halves])
    assert {r["charge"] for r in rows if r["product"] == "bandwidth"} == {Decimal("0.000001")}
    lines = {r["resource_id"]: r for r in reference.invoice_preview(rows)}
    assert lines["bw"]["amount"] == Decimal("0.000003")
    assert lines["bw"]["amount_due"] == Decimal("0.00")
    assert lines["r-half"]["amount_due"] == Decimal("0.00")
    assert lines["r-3half"]["amount_due"] == Decimal("0.02")
    assert lines["r-3half"]["invoice_total"] == Decimal("0.02")


def test_run_rate_and_storage_buckets() -> None:
    events = [
        ev("v1", 0, price=2_000_000, resource="vm1"),
        ev("v2", 1, price=50_000_000, resource="vm1"),  # MTD compute in June: $50 -> "$50-500"
        ev("s1", 1, price=1_000, qty=100_000_000, product="volume", resource="vol1"),  # $0.10
        ev("s2", 1, price=1_000, qty=10_000_000, product="volume", resource="vol2", user="u2"),  # "$0"
        ev("n", 2, price=1, resource="vm2", user="u3"),  # newest hour: as-of = hour 1
    ]
    rows = reference.charges(events)
    rr = {r["product"]: r for r in reference.run_rate(rows)}
    assert rr["vm"]["as_of_hour"] == BASE + timedelta(hours=1)
    assert rr["vm"]["run_rate"] == Decimal(50) * 8760
    assert rr["volume"]["run_rate"] == Decimal("0.11") * 8760
    buckets = {r["compute_spend_bucket"]: r for r in reference.storage_run_rate_by_compute_spend(rows)}
    assert buckets["$50-500"]["storage_users"] == 1
    assert buckets["$50-500"]["storage_hourly_revenue"] == Decimal("0.1")
    assert buckets["$0"]["storage_run_rate"] == Decimal("0.01") * 8760
    assert buckets[">$5k"]["storage_users"] == 0

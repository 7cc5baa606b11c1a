"""Independent reference calculator for the billing models, in plain Python ``Decimal``.

It reads raw :class:`BillingEvent` objects (any order, with duplicates) and
applies the billing rules documented in :mod:`shoal.usecases.billing.models`
without sharing code with the SQL: months come from ``billing_hour`` itself,
charges are computed in dollars with ``Decimal`` quantize, caps by a running
loop. Row dicts use the same column names as the models, so tests can compare
them row by row.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Context, Decimal, localcontext
from typing import Any

from shoal.usecases.billing.events import USAGE, BillingEvent

Row = dict[str, Any]
MICRO = Decimal("0.000001")
CENT = Decimal("0.01")
ZERO = Decimal(0)
HOURS_PER_YEAR = 24 * 365
COMPUTE_PRODUCTS = frozenset({"vm"})
STORAGE_PRODUCT = "volume"
BUCKETS = ("$0", "<$50", "$50-500", "$500-5k", ">$5k")


def _dollars(micros: int) -> Decimal:
    return Decimal(micros).scaleb(-6)


def spend_bucket(mtd_compute: Decimal) -> str:
    if mtd_compute == 0:
        return "$0"
    if mtd_compute < 50:
        return "<$50"
    if mtd_compute < 500:
        return "$50-500"
    if mtd_compute < 5000:
        return "$500-5k"
    return ">$5k"


def dedupe(events: Iterable[BillingEvent]) -> list[BillingEvent]:
    """First delivery of each event_id."""
    seen: set[str] = set()
    out: list[BillingEvent] = []
    for ev in events:
        if ev.event_id not in seen:
            seen.add(ev.event_id)
            out.append(ev)
    return out


def charges(events: Iterable[BillingEvent]) -> list[Row]:
    """One row per deduped usage event (= resource-hour) with monthly caps applied."""
    groups: dict[tuple[str, str], list[BillingEvent]] = defaultdict(list)
    for ev in dedupe(events):
        if ev.event_type == USAGE:
            bh = ev.billing_hour
            groups[(ev.resource_id, f"{bh.year:04d}-{bh.month:02d}")].append(ev)
    rows: list[Row] = []
    priced: dict[tuple[int, int], tuple[Decimal, Decimal, Decimal]] = {}  # memo: few distinct prices
    with localcontext(Context(prec=60)):
        for (_, month), evs in groups.items():
            evs.sort(key=lambda e: (e.billing_hour, e.event_id))
            before = ZERO
            for ev in evs:
                pq = (ev.hourly_price_micros, ev.quantity_micros)
                if pq not in priced:
                    price, qty = _dollars(pq[0]), _dollars(pq[1])
                    priced[pq] = (price, qty, (price * qty).quantize(MICRO, rounding=ROUND_HALF_UP))
                price, qty, uncapped = priced[pq]
                cap = None if ev.monthly_cap_micros is None else _dollars(ev.monthly_cap_micros)
                charge = uncapped if cap is None else max(ZERO, min(uncapped, cap - before))
                before += uncapped
                rows.append(
                    {
                        "billing_month": month,
                        "billing_date": ev.billing_hour.date(),
                        "billing_hour": ev.billing_hour,
                        "event_id": ev.event_id,
                        "resource_id": ev.resource_id,
                        "user_id": ev.user_id,
                        "team_id": ev.team_id,
                        "region": ev.region,
                        "product": ev.product,
                        "plan": ev.plan,
                        "unit": ev.unit,
                        "currency": ev.currency,
                        "quantity": qty,
                        "hourly_price": price,
                        "monthly_cap": cap,
                        "uncapped_charge": uncapped,
                        "charge": charge,
                    }
                )
    return rows


def _rollup(rows: list[Row], keys: tuple[str, ...], *, distinct: bool) -> list[Row]:
    """Sums by ``keys``; with ``distinct`` the distinct resources and users, else the number of
    charged usage events."""
    acc: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        k = tuple(r[c] for c in keys)
        a = acc.get(k)
        if a is None:
            a = acc[k] = {
                "revenue": ZERO,
                "uncapped_revenue": ZERO,
                "quantity": ZERO,
                "r": set(),
                "u": set(),
                "n": 0,
            }
        a["revenue"] += r["charge"]
        a["uncapped_revenue"] += r["uncapped_charge"]
        a["quantity"] += r["quantity"]
        a["r"].add(r["resource_id"])
        a["u"].add(r["user_id"])
        a["n"] += 1
    out = []
    for k, a in acc.items():
        row = dict(zip(keys, k, strict=True))
        row.update(revenue=a["revenue"], uncapped_revenue=a["uncapped_revenue"], quantity=a["quantity"])
        if distinct:
            row.update(resources=len(a["r"]), users=len(a["u"]))
        else:
            row.update(usage_events=a["n"])
        out.append(row)
    return out


def revenue_hourly(charge_rows: list[Row]) -> list[Row]:
    keys = ("billing_hour", "billing_date", "product", "plan", "region", "currency")
    return _rollup(charge_rows, keys, distinct=False)


def revenue_daily(charge_rows: list[Row]) -> list[Row]:
    return _rollup(charge_rows, ("billing_date", "product", "plan", "region", "currency"), distinct=True)


def billable_users(charge_rows: list[Row]) -> list[Row]:
    users: dict[tuple[date, str], set[str]] = defaultdict(set)
    billable: dict[tuple[date, str], set[str]] = defaultdict(set)
    for r in charge_rows:
        k = (r["billing_date"], r["product"])
        users[k].add(r["user_id"])
        if r["charge"] > 0:
            billable[k].add(r["user_id"])
    return [
        {"billing_date": d, "product": p, "billable_users": len(billable[(d, p)]), "users": len(u)}
        for (d, p), u in users.items()
    ]


def as_of_hour(charge_rows: list[Row]) -> datetime | None:
    """The latest complete hour: one hour before the newest billing_hour."""
    if not charge_rows:
        return None
    latest: datetime = max(r["billing_hour"] for r in charge_rows)
    return latest - timedelta(hours=1)


def run_rate(charge_rows: list[Row]) -> list[Row]:
    as_of = as_of_hour(charge_rows)
    hourly: dict[tuple[str, str], Decimal] = {}
    for r in charge_rows:
        k = (r["product"], r["currency"])
        hourly.setdefault(k, ZERO)
        if r["billing_hour"] == as_of:
            hourly[k] += r["charge"]
    return [
        {
            "product": p,
            "currency": c,
            "as_of_hour": as_of,
            "hourly_revenue": v,
            "run_rate": v * HOURS_PER_YEAR,
        }
        for (p, c), v in hourly.items()
    ]


def storage_run_rate_by_compute_spend(charge_rows: list[Row]) -> list[Row]:
    as_of = as_of_hour(charge_rows)
    if as_of is None:
        return []
    month = f"{as_of.year:04d}-{as_of.month:02d}"
    compute: dict[str, Decimal] = defaultdict(Decimal)
    storage: dict[str, Decimal] = defaultdict(Decimal)
    for r in charge_rows:
        if r["currency"] != "USD":
            continue
        if r["product"] in COMPUTE_PRODUCTS and r["billing_month"] == month and r["billing_hour"] <= as_of:
            compute[r["user_id"]] += r["charge"]
        if r["product"] == STORAGE_PRODUCT and r["billing_hour"] == as_of:
            storage[r["user_id"]] += r["charge"]
    per_bucket: dict[str, list[Decimal]] = {b: [] for b in BUCKETS}
    for user, amount in storage.items():
        per_bucket[spend_bucket(compute.get(user, ZERO))].append(amount)
    return [
        {
            "bucket_order": i,
            "compute_spend_bucket": b,
            "as_of_hour": as_of,
            "storage_users": len(per_bucket[b]),
            "storage_hourly_revenue": sum(per_bucket[b], ZERO),
            "storage_run_rate": sum(per_bucket[b], ZERO) * HOURS_PER_YEAR,
        }
        for i, b in enumerate(BUCKETS, start=1)
    ]


LINE_KEYS = ("billing_month", "user_id", "team_id", "resource_id", "product", "plan", "region", "currency")


def invoice_lines(charge_rows: list[Row]) -> list[Row]:
    """Month-to-date lines per (month, user, resource, plan): exact sums of charges."""
    lines: dict[tuple[Any, ...], Row] = {}
    for r in charge_rows:
        k = tuple(r[c] for c in LINE_KEYS)
        line = lines.get(k)
        if line is None:
            line = lines[k] = dict(zip(LINE_KEYS, k, strict=True))
            line.update(hours=0, quantity=ZERO, uncapped_amount=ZERO, amount=ZERO)
        line["hours"] += 1
        line["quantity"] += r["quantity"]
        line["uncapped_amount"] += r["uncapped_charge"]
        line["amount"] += r["charge"]
    return list(lines.values())


def invoice_preview(charge_rows: list[Row]) -> list[Row]:
    """Invoice lines rounded half-even to cents; invoice_total = sum of a user's rounded lines."""
    lines = {tuple(line[c] for c in LINE_KEYS): dict(line) for line in invoice_lines(charge_rows)}
    totals: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for line in lines.values():
        line["amount_due"] = line["amount"].quantize(CENT, rounding=ROUND_HALF_EVEN)
        totals[(line["billing_month"], line["user_id"], line["currency"])] += line["amount_due"]
    for line in lines.values():
        line["invoice_total"] = totals[(line["billing_month"], line["user_id"], line["currency"])]
    return list(lines.values())


@dataclass(frozen=True)
class Reference:
    charges_hourly: list[Row]
    invoice_lines: list[Row]
    revenue_hourly: list[Row]
    revenue_daily: list[Row]
    billable_users: list[Row]
    run_rate: list[Row]
    storage_run_rate_by_compute_spend: list[Row]
    invoice_preview: list[Row]


def compute(events: Iterable[BillingEvent]) -> Reference:
    """Every billing output from raw events (delivery order, duplicates allowed)."""
    rows = charges(events)
    return Reference(
        charges_hourly=rows,
        invoice_lines=invoice_lines(rows),
        revenue_hourly=revenue_hourly(rows),
        revenue_daily=revenue_daily(rows),
        billable_users=billable_users(rows),
        run_rate=run_rate(rows),
        storage_run_rate_by_compute_spend=storage_run_rate_by_compute_spend(rows),
        invoice_preview=invoice_preview(rows),
    )

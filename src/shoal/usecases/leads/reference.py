"""The leads models' rules in plain Python (the test oracle): no SQL, no DuckDB.

Inputs are rows as dicts (the simulator's, or any database's); the rules are those documented in
:mod:`.models`. Money is ``Decimal``; rates are floats rounded to 2 decimals.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from shoal.usecases.leads.models import (
    FIT_INDUSTRIES,
    INTENT_PATHS,
    QUALIFIED_SCORE,
    STAGE_PROBABILITY,
    WINDOW_DAYS,
)

Row = dict[str, Any]
Tables = Mapping[str, Sequence[Row]]


def pql(crm: Tables, warehouse: Tables) -> list[Row]:
    sessions = warehouse["sessions"]
    if not sessions:
        return []
    as_of: datetime = max(s["started_at"] for s in sessions)
    since = as_of - timedelta(days=WINDOW_DAYS)

    def inside(ts: datetime | None) -> bool:
        return ts is not None and since < ts <= as_of

    account_of = {u["user_id"]: u["account_id"] for u in crm["users"]}
    n_sessions: dict[str, int] = defaultdict(int)
    active: dict[str, set[str]] = defaultdict(set)
    for s in sessions:
        if inside(s["started_at"]) and s["user_id"] in account_of:
            acc = account_of[s["user_id"]]
            n_sessions[acc] += 1
            active[acc].add(s["user_id"])
    features: dict[str, set[str]] = defaultdict(set)
    for f in warehouse["feature_usage"]:
        if inside(f["used_at"]) and f["user_id"] in account_of:
            features[account_of[f["user_id"]]].add(f["feature"])
    intent: dict[str, int] = defaultdict(int)
    for v in warehouse["page_views"]:
        if v["path"] in INTENT_PATHS and inside(v["viewed_at"]) and v["user_id"] in account_of:
            intent[account_of[v["user_id"]]] += 1
    in_trial = {
        account_of[t["user_id"]]
        for t in warehouse["trial_starts"]
        if t["converted_at"] is None and t["user_id"] in account_of
    }
    open_opp = {
        o["account_id"] for o in crm["opportunities"] if o["stage"] not in ("closed_won", "closed_lost")
    }
    out: list[Row] = []
    for a in crm["accounts"]:
        acc = a["account_id"]
        if acc not in n_sessions:
            continue
        usage = (
            3 * min(n_sessions[acc], 30)
            + 15 * min(len(active[acc]), 5)
            + 10 * len(features[acc])
            + 5 * min(intent[acc], 4)
            + (20 if acc in in_trial else 0)
        )
        employees = a["employees"] or 0
        fit = 30 if employees >= 1000 else 20 if employees >= 200 else 10 if employees >= 50 else 0
        fit += 5 if a["industry"] in FIT_INDUSTRIES else 0
        out.append(
            {
                "account_id": acc,
                "sessions": n_sessions[acc],
                "active_users": len(active[acc]),
                "features": len(features[acc]),
                "pricing_views": intent[acc],
                "in_trial": acc in in_trial,
                "open_opportunity": acc in open_opp,
                "usage_score": usage,
                "fit_score": fit,
                "score": usage + fit,
                "qualified": usage + fit >= QUALIFIED_SCORE,
                "as_of": as_of,
            }
        )
    out.sort(key=lambda r: (-r["score"], r["account_id"]))
    for i, r in enumerate(out, start=1):
        r["rank"] = i
    return out


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None


def funnel(crm: Tables, warehouse: Tables) -> list[Row]:
    trialled: set[str] = set()
    paid: set[str] = set()
    for t in warehouse["trial_starts"]:
        trialled.add(t["user_id"])
        if t["converted_at"] is not None:
            paid.add(t["user_id"])
    groups: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for u in crm["users"]:
        g = groups[(u["signed_up_at"].strftime("%Y-%m"), u["signup_source"])]
        g[0] += 1
        g[1] += u["user_id"] in trialled
        g[2] += u["user_id"] in paid
    return [
        {
            "cohort": cohort, "signup_source": source, "signups": n, "trials": t, "paid": p,
            "trial_pct": _pct(t, n), "paid_pct": _pct(p, n), "trial_to_paid_pct": _pct(p, t),
        }
        for (cohort, source), (n, t, p) in sorted(groups.items())
    ]  # fmt: skip


def pipeline(crm: Tables) -> list[Row]:
    probability = {s: Decimal(p) for s, p in STAGE_PROBABILITY}
    reps = {r["rep_id"]: r for r in crm["sales_reps"]}
    groups: dict[tuple[int, str], list[Any]] = {}
    for o in crm["opportunities"]:
        if o["rep_id"] not in reps:
            continue
        g = groups.setdefault((o["rep_id"], o["stage"]), [0, Decimal(0), Decimal(0)])
        g[0] += 1
        g[1] += o["amount"]
        g[2] += o["amount"] * probability.get(o["stage"], Decimal(0))
    return [
        {
            "rep_id": rep, "rep_name": reps[rep]["name"], "territory": reps[rep]["territory"], "stage": stage,
            "opportunities": n, "amount": amount, "weighted_amount": weighted.quantize(Decimal("0.0001")),
        }
        for (rep, stage), (n, amount, weighted) in sorted(groups.items())
    ]  # fmt: skip


def revenue_by_source(invoice_lines: Iterable[Row], crm_users: Iterable[Row]) -> list[Row]:
    """From billing invoice lines (``billing_month, user_id, currency, amount``: e.g. the billing
    reference calculator's) and the CRM's users."""
    source = {u["user_id"]: u["signup_source"] for u in crm_users}
    per_user: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for line in invoice_lines:
        per_user[(line["billing_month"], line["user_id"], line["currency"])] += line["amount"]
    groups: dict[tuple[str, str, str], list[Any]] = {}
    for (month, user, currency), amount in per_user.items():
        g = groups.setdefault((month, source.get(user, "unknown"), currency), [0, 0, Decimal(0)])
        g[0] += 1
        g[1] += amount > 0
        g[2] += amount
    return [
        {"billing_month": m, "signup_source": s, "currency": c, "users": n, "paying_users": p, "revenue": r}
        for (m, s, c), (n, p, r) in sorted(groups.items())
    ]

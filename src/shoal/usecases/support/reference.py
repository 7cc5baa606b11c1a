"""An independent, pure-Python definition of the support models (no SQL, no DuckDB).

It is the executable specification that the SQL of :mod:`shoal.usecases.support.models` is
tested against, so it spells out every rule instead of sharing code with the SQL.

Input: decoded ``shoal.support.v1.TicketEvent`` messages, in any order.

Rules common to both tables:

- **Duplicates.** Events are identified by ``(ticket_id, event_id)``; a redelivered event (same
  ids) counts once. Duplicates are assumed identical; the copy with the smallest ``occurred_at``
  is kept (then the first seen).
- **Order.** Within a ticket, "earliest" and "latest" order events by ``(occurred_at, event_id)``;
  the event id only breaks exact timestamp ties, so the result never depends on arrival order.
- **Enums** are reported by value name (``"CHANNEL_EMAIL"``), as the Arrow column mapping does.
- **Durations** are exact microsecond differences divided by 1e6 (float seconds).

``tickets`` — one row per ticket that has at least one ``ticket_created`` event:

- ``created_at``: ``occurred_at`` of the earliest ``ticket_created`` event; ``day`` is its UTC date.
- ``customer_id``, ``customer_tier``, ``product``, ``channel``, ``priority``: the envelope
  fields of that earliest ``ticket_created`` event (the ticket as opened).
- ``team``: the envelope ``team`` of the latest event whose ``team`` is not empty (None if none).
- ``status``: ``to_status`` of the latest ``status_changed`` event; ``"TICKET_STATUS_NEW"`` if none.
- ``first_response_at``: the earliest ``agent_replied`` event with ``public = true`` and
  ``occurred_at >= created_at`` (internal notes are not responses); ``first_response_s`` is
  ``first_response_at - created_at``. Both None if there is no such reply.
- ``resolved_at``: ``occurred_at`` of the latest ``resolved`` event, unless a ``reopened`` event
  is later (the ticket is currently not resolved): then None. ``resolution_s`` is
  ``resolved_at - created_at`` (None with it).
- ``reopen_count``, ``escalation_count``, ``csat_count``: numbers of ``reopened``,
  ``escalated`` and ``satisfaction_rated`` events.
- ``latest_csat``: ``rating`` of the latest ``satisfaction_rated`` event (None if none).

``csat_daily`` — one row per ``(day, team, product)`` of the ``tickets`` rows:

- ``tickets_created``: tickets in the group; ``tickets_resolved``: those with ``resolved_at``.
- ``csat_responses``: tickets with a ``latest_csat``; ``csat_pct``: the share of them whose
  ``latest_csat`` is 4 or 5, as ``round(100 * good / rated, 2)`` computed in binary floating
  point and rounded half away from zero (DuckDB's ``round``); None when nothing is rated.
- ``first_response_p50_s`` / ``_p90_s`` and ``resolution_p50_s`` / ``_p90_s``: percentiles of
  the non-null ``first_response_s`` / ``resolution_s`` of the group, by :func:`quantile_cont`
  (None when the group has no value).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from shoal.usecases.support import messages as pb

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NEW_STATUS = "TICKET_STATUS_NEW"


@dataclass(frozen=True)
class TicketRow:
    ticket_id: str
    created_at: datetime
    day: date
    customer_id: str
    customer_tier: str
    team: str | None
    product: str
    channel: str
    priority: str
    status: str
    first_response_at: datetime | None
    first_response_s: float | None
    resolved_at: datetime | None
    resolution_s: float | None
    reopen_count: int
    escalation_count: int
    latest_csat: int | None
    csat_count: int


@dataclass(frozen=True)
class CsatDailyRow:
    day: date
    team: str | None
    product: str
    tickets_created: int
    tickets_resolved: int
    csat_responses: int
    csat_pct: float | None
    first_response_p50_s: float | None
    first_response_p90_s: float | None
    resolution_p50_s: float | None
    resolution_p90_s: float | None


def quantile_cont(values: Sequence[float], q: float) -> float | None:
    """DuckDB 1.5's ``quantile_cont``: linear interpolation between the closest ranks.

    With ``v`` sorted and ``rn = (n - 1) * q``: ``v[rn]`` when ``rn`` is whole, else
    ``lo * (1 - d) + hi * d`` with ``lo = v[floor(rn)]``, ``hi = v[ceil(rn)]``, ``d = rn - floor(rn)``
    (this exact float expression matches DuckDB bit for bit).
    """
    if not values:
        return None
    v = sorted(values)
    rn = (len(v) - 1) * q
    lo_i, hi_i = math.floor(rn), math.ceil(rn)
    if lo_i == hi_i:
        return float(v[lo_i])
    d = rn - lo_i
    return v[lo_i] * (1 - d) + v[hi_i] * d


def round_half_away(x: float, digits: int) -> float:
    """DuckDB's ``round(double, n)``: ``std::round(x * 10^n) / 10^n``."""
    scale = 10.0**digits
    y = x * scale
    r = math.floor(abs(y))
    if abs(y) - r >= 0.5:
        r += 1
    return math.copysign(r, y) / scale


def _us(ts: Any) -> int:
    return int(ts.seconds) * 1_000_000 + int(ts.nanos) // 1000


def _dt(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _enum_namer(field: str) -> dict[int, str]:
    enum = pb.TicketEvent.DESCRIPTOR.fields_by_name[field].enum_type
    return {v.number: v.name for v in enum.values}


def _status_names() -> dict[int, str]:
    enum = pb.StatusChanged.DESCRIPTOR.fields_by_name["to_status"].enum_type
    return {v.number: v.name for v in enum.values}


def tickets(events: Iterable[Any]) -> list[TicketRow]:
    """The ``support.tickets`` rows of ``events`` (see the module docstring), sorted by ticket_id."""
    # (ticket_id, event_id) -> (occurred_at_us, message); keep the earliest copy of a duplicate.
    unique: dict[tuple[str, str], tuple[int, Any]] = {}
    for ev in events:
        key = (ev.ticket_id, ev.event_id)
        t = _us(ev.occurred_at)
        kept = unique.get(key)
        if kept is None or t < kept[0]:
            unique[key] = (t, ev)
    by_ticket: dict[str, list[tuple[int, str, Any]]] = {}
    for (ticket_id, event_id), (t, ev) in unique.items():
        by_ticket.setdefault(ticket_id, []).append((t, event_id, ev))

    tiers, channels, priorities = (
        _enum_namer("customer_tier"),
        _enum_namer("channel"),
        _enum_namer("priority"),
    )
    statuses = _status_names()
    rows: list[TicketRow] = []
    for ticket_id in sorted(by_ticket):
        evs = sorted(by_ticket[ticket_id], key=lambda e: (e[0], e[1]))
        created = next(((t, ev) for t, _, ev in evs if ev.WhichOneof("payload") == "ticket_created"), None)
        if created is None:
            continue
        created_us, first = created
        team: str | None = None
        status = NEW_STATUS
        first_response: int | None = None
        last_resolved: int | None = None
        reopened_after = False
        reopens = escalations = ratings = 0
        latest_csat: int | None = None
        for t, _, ev in evs:  # ascending (occurred_at, event_id): later events overwrite "latest"
            if ev.team:
                team = ev.team
            case = ev.WhichOneof("payload")
            if case == "status_changed":
                status = statuses[ev.status_changed.to_status]
            elif case == "agent_replied":
                if ev.agent_replied.public and t >= created_us and first_response is None:
                    first_response = t
            elif case == "resolved":
                last_resolved = t
                reopened_after = False
            elif case == "reopened":
                reopens += 1
                reopened_after = last_resolved is not None
            elif case == "escalated":
                escalations += 1
            elif case == "satisfaction_rated":
                ratings += 1
                latest_csat = int(ev.satisfaction_rated.rating)
        resolved = last_resolved if (last_resolved is not None and not reopened_after) else None
        created_at = _dt(created_us)
        rows.append(
            TicketRow(
                ticket_id=ticket_id,
                created_at=created_at,
                day=created_at.date(),
                customer_id=first.customer_id,
                customer_tier=tiers[first.customer_tier],
                team=team,
                product=first.product,
                channel=channels[first.channel],
                priority=priorities[first.priority],
                status=status,
                first_response_at=None if first_response is None else _dt(first_response),
                first_response_s=None if first_response is None else (first_response - created_us) / 1e6,
                resolved_at=None if resolved is None else _dt(resolved),
                resolution_s=None if resolved is None else (resolved - created_us) / 1e6,
                reopen_count=reopens,
                escalation_count=escalations,
                latest_csat=latest_csat,
                csat_count=ratings,
            )
        )
    return rows


def csat_daily(ticket_rows: Iterable[TicketRow]) -> list[CsatDailyRow]:
    """The ``support.csat_daily`` rows over ``tickets`` rows, sorted by (day, team, product)."""
    groups: dict[tuple[date, str | None, str], list[TicketRow]] = {}
    for row in ticket_rows:
        groups.setdefault((row.day, row.team, row.product), []).append(row)
    out: list[CsatDailyRow] = []
    for (day, team, product), rows in sorted(
        groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or "", kv[0][2])
    ):
        rated = [r.latest_csat for r in rows if r.latest_csat is not None]
        good = sum(1 for rating in rated if rating >= 4)
        first = [r.first_response_s for r in rows if r.first_response_s is not None]
        resolution = [r.resolution_s for r in rows if r.resolution_s is not None]
        out.append(
            CsatDailyRow(
                day=day,
                team=team,
                product=product,
                tickets_created=len(rows),
                tickets_resolved=sum(1 for r in rows if r.resolved_at is not None),
                csat_responses=len(rated),
                csat_pct=round_half_away(100 * float(good) / len(rated), 2) if rated else None,
                first_response_p50_s=quantile_cont(first, 0.5),
                first_response_p90_s=quantile_cont(first, 0.9),
                resolution_p50_s=quantile_cont(resolution, 0.5),
                resolution_p90_s=quantile_cont(resolution, 0.9),
            )
        )
    return out

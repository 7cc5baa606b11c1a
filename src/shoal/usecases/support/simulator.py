"""A deterministic simulation of a hosting company's support organisation.

It produces the ``shoal.support.v1.TicketEvent`` stream of ``ticket_events.proto``:

- customers in tiers (free .. enterprise), a skewed few filing most tickets;
- teams owning products, each in its own time zone (fixed UTC offsets, no DST) with business
  hours Mon-Fri 09:00-17:00 local, agents taking first responses from a FIFO queue;
- ticket arrivals with weekly (quiet weekends) and daily (EU + US daytime peak) seasonality;
- first response and reply times that depend on priority, on the team's queue (load) and on
  business hours (urgent and enterprise tickets are covered 24/7 by on-call agents);
- misrouted tickets (internal note, then reassignment), conversation rounds, escalations
  (level 2+ goes to an engineering team), customers that stop answering (auto-resolved),
  reopenings, closing after five quiet days, and CSAT surveys answered for a minority of
  resolutions with a rating that falls with first-response and resolution time.

Everything derives from ``seed``: the same arguments give byte-identical events. Events come out
in ``occurred_at`` order, except the redelivered copies that ``duplicate_rate`` adds (same
``event_id``, emitted a little later, as an at-least-once producer would).
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shoal.errors import ConfigError
from shoal.usecases.support import messages as pb

US = 1_000_000
MINUTE = 60 * US
HOUR = 3600 * US
DAY = 86400 * US
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Event kinds: the EventType numbers of the proto.
CREATED, ASSIGNED, CUSTOMER_REPLIED, AGENT_REPLIED, STATUS_CHANGED = 1, 2, 3, 4, 5
ESCALATED, RESOLVED, REOPENED, RATED = 6, 7, 8, 9

# TicketStatus numbers.
S_NEW, S_OPEN, S_PENDING, S_ON_HOLD, S_RESOLVED, S_CLOSED = 1, 2, 3, 4, 5, 6
# Priority numbers.
P_LOW, P_NORMAL, P_HIGH, P_URGENT = 1, 2, 3, 4
# CustomerTier numbers.
T_FREE, T_STANDARD, T_BUSINESS, T_ENTERPRISE = 1, 2, 3, 4


@dataclass(frozen=True)
class Team:
    name: str
    utc_offset_h: float
    products: tuple[str, ...]
    open_hour: int = 9
    close_hour: int = 17


TEAMS: tuple[Team, ...] = (
    Team("billing", 0.0, ("billing",)),
    Team("compute", -5.0, ("compute", "kubernetes")),
    Team("storage", 1.0, ("block-storage", "object-storage")),
    Team("network", -8.0, ("dns", "load-balancer")),
    Team("databases", 5.5, ("managed-databases",)),
)
ESCALATION_TEAM = Team("engineering", 1.0, ())

# Share of tickets per product.
PRODUCT_WEIGHTS: dict[str, float] = {
    "compute": 0.24,
    "kubernetes": 0.11,
    "block-storage": 0.13,
    "object-storage": 0.10,
    "dns": 0.06,
    "load-balancer": 0.08,
    "managed-databases": 0.12,
    "billing": 0.16,
}
CHANNEL_WEIGHTS = (0.35, 0.25, 0.10, 0.22, 0.08)  # email, chat, phone, web, api (enum 1..5)
TIER_WEIGHTS = (0.45, 0.30, 0.18, 0.07)  # free, standard, business, enterprise
# UTC hour-of-day profile: customers mostly in Europe and the Americas.
# fmt: off
HOUR_PROFILE = (2, 1.5, 1.2, 1.2, 1.5, 2.5, 4, 5.5, 6.5, 7, 7, 6.8,
                6.8, 7.2, 7.8, 8, 7.5, 6.5, 5.5, 4.5, 4, 3.5, 3, 2.5)
# fmt: on
WEEKDAY_FACTOR = (1.18, 1.12, 1.08, 1.04, 0.98, 0.55, 0.50)  # Monday .. Sunday
_WEEKDAY_MEAN = sum(WEEKDAY_FACTOR) / 7

# Mean extra business-time wait before the first response (triage), by priority.
_TRIAGE_MEAN = {P_LOW: 3 * HOUR, P_NORMAL: 80 * MINUTE, P_HIGH: 25 * MINUTE, P_URGENT: 4 * MINUTE}
# Mean business-time wait for a later agent reply, by priority.
_REPLY_MEAN = {P_LOW: 5 * HOUR, P_NORMAL: 2 * HOUR, P_HIGH: 50 * MINUTE, P_URGENT: 15 * MINUTE}
_ESCALATE_P = {P_LOW: 0.01, P_NORMAL: 0.03, P_HIGH: 0.08, P_URGENT: 0.18}
_RATE_P = {T_FREE: 0.28, T_STANDARD: 0.35, T_BUSINESS: 0.42, T_ENTERPRISE: 0.5}
_TIER_MOOD = {T_FREE: -0.2, T_STANDARD: 0.0, T_BUSINESS: 0.1, T_ENTERPRISE: 0.15}
_WORK_MEAN = 18 * MINUTE  # agent time spent on a first response
_CLOSE_AFTER = 5 * DAY  # resolved tickets close (and can no longer reopen) after this

_ISSUES = (
    "cannot connect",
    "slow performance",
    "unexpected charge",
    "error when creating resource",
    "quota increase request",
    "intermittent timeouts",
    "how do I configure",
    "data missing",
    "API returns 500",
    "access denied",
)
_COMMENTS_GOOD = ("quick and helpful", "thanks!", "solved my problem", "great support", "")
_COMMENTS_BAD = ("took far too long", "still not fixed", "had to repeat myself", "no real answer", "")


def _timestamp_us(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - _EPOCH
    return (delta.days * 86400 + delta.seconds) * US + delta.microseconds


class _Hours:
    """Business-hours arithmetic for one team, on integer microseconds since the epoch."""

    __slots__ = ("close", "off", "open")

    def __init__(self, team: Team) -> None:
        self.off = int(team.utc_offset_h * HOUR)
        self.open = team.open_hour * HOUR
        self.close = team.close_hour * HOUR

    def next_open(self, t: int) -> int:
        """``t`` if it is within business hours, else the next opening time."""
        local = t + self.off
        day, sod = divmod(local, DAY)
        weekday = (day + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
        if weekday < 5:
            if self.open <= sod < self.close:
                return t
            if sod < self.open:
                return t + self.open - sod
        day += 1
        while (day + 3) % 7 >= 5:
            day += 1
        return day * DAY + self.open - self.off

    def add(self, t: int, duration: int) -> int:
        """The time ``duration`` of business time after ``t``."""
        t = self.next_open(t)
        while True:
            sod = (t + self.off) % DAY
            left_today = self.close - sod
            if duration <= left_today:
                return t + duration
            duration -= left_today
            t = self.next_open(t + left_today)


class _Ticket:
    __slots__ = ("channel", "customer_id", "events", "priority", "product", "ticket_id", "tier")

    def __init__(
        self, ticket_id: str, *, customer_id: str, tier: int, product: str, channel: int, priority: int
    ) -> None:
        self.ticket_id = ticket_id
        self.customer_id = customer_id
        self.tier = tier
        self.product = product
        self.channel = channel
        self.priority = priority
        # (t_us, kind, agent_id, team, payload tuple), sorted by t before emission
        self.events: list[tuple[int, int, str, str, tuple[Any, ...]]] = []


class SupportSimulator:
    """Simulated support ticket events.

    ``start``: first day of arrivals (naive datetimes are taken as UTC); tickets arrive during
    ``days`` days at ``tickets_per_day`` on average (weekday-weighted). Lifecycle events are
    emitted up to ``start + days + tail_days``: later events have "not happened yet", so the
    stream ends with open tickets, as a live topic does. ``duplicate_rate`` is the share of
    events delivered twice.
    """

    def __init__(
        self,
        seed: int,
        start: datetime,
        days: int,
        tickets_per_day: int,
        *,
        customers: int = 5000,
        tail_days: float = 0.0,
        duplicate_rate: float = 0.0,
        misroute_rate: float = 0.06,
    ) -> None:
        if days < 0 or tickets_per_day < 0 or customers < 1:
            raise ConfigError("SupportSimulator needs days >= 0, tickets_per_day >= 0 and customers >= 1")
        if not 0.0 <= duplicate_rate < 1.0:
            raise ConfigError(f"duplicate_rate must be in [0, 1), got {duplicate_rate}")
        self.seed = seed
        self.start_us = _timestamp_us(start)
        self.days = days
        self.tickets_per_day = tickets_per_day
        self.customers = customers
        self.end_us = self.start_us + days * DAY + int(tail_days * DAY)
        self.duplicate_rate = duplicate_rate
        self.misroute_rate = misroute_rate

    # -- public API -------------------------------------------------------------------------

    def events(self) -> Iterator[Any]:
        """TicketEvent messages in ``occurred_at`` order (redelivered copies come a bit late)."""
        for _key, msg in self._emit(encode=False):
            yield msg

    def encoded(self) -> Iterator[tuple[bytes, bytes]]:
        """``(ticket_id as UTF-8 key, serialized TicketEvent)`` pairs, in the order of :meth:`events`."""
        yield from self._emit(encode=True)

    # -- simulation -------------------------------------------------------------------------

    def _setup(self, rng: random.Random) -> None:
        self._tiers = rng.choices(
            (T_FREE, T_STANDARD, T_BUSINESS, T_ENTERPRISE), TIER_WEIGHTS, k=self.customers
        )
        self._hours = {t.name: _Hours(t) for t in (*TEAMS, ESCALATION_TEAM)}
        self._product_team = {p: t.name for t in TEAMS for p in t.products}
        self._products = list(PRODUCT_WEIGHTS)
        self._product_cum = list(itertools.accumulate(PRODUCT_WEIGHTS.values()))
        self._channel_cum = list(itertools.accumulate(CHANNEL_WEIGHTS))
        self._hour_cum = list(itertools.accumulate(HOUR_PROFILE))
        # Staff each team for ~65% utilisation of business hours by first responses.
        weekly_tickets = self.tickets_per_day * 7
        self._agents: dict[str, list[str]] = {}
        self._free_at: dict[str, list[int]] = {}
        n = 0
        for team in (*TEAMS, ESCALATION_TEAM):
            share = sum(PRODUCT_WEIGHTS[p] for p in team.products) if team.products else 0.05
            need = weekly_tickets * share * _WORK_MEAN / (5 * 8 * HOUR * 0.65)
            count = max(2, math.ceil(need))
            self._agents[team.name] = [f"agt-{n + i:04d}" for i in range(count)]
            self._free_at[team.name] = [0] * count
            n += count

    def _arrivals(self, rng: random.Random) -> Iterator[int]:
        for d in range(self.days):
            day_start = self.start_us + d * DAY
            weekday = ((day_start // DAY) + 3) % 7
            lam = self.tickets_per_day * WEEKDAY_FACTOR[weekday] / _WEEKDAY_MEAN
            count = max(0, round(rng.gauss(lam, math.sqrt(lam)))) if lam > 0 else 0
            total = self._hour_cum[-1]
            times = sorted(
                day_start
                + bisect.bisect_right(self._hour_cum, rng.random() * total) * HOUR
                + int(rng.random() * HOUR)
                for _ in range(count)
            )
            yield from times

    def _emit(self, *, encode: bool) -> Iterator[tuple[bytes, Any]]:
        rng = random.Random(self.seed)
        id_rng = random.Random(self.seed ^ 0x5EED)
        dup_rng = random.Random(self.seed ^ 0xD0B)
        self._setup(rng)
        timestamp = pb.message_class("google.protobuf.Timestamp")
        end = self.end_us
        # heap entries: (t, seq, ticket, index into ticket.events) or (t, seq, None, (key, value))
        heap: list[tuple[int, int, Any, Any]] = []
        seq = itertools.count()
        dup_rate = self.duplicate_rate

        def build(ticket: _Ticket, ev: tuple[int, int, str, str, tuple[Any, ...]]) -> Any:
            t, kind, agent, team, p = ev
            seconds, micros = divmod(t, US)
            msg = pb.TicketEvent(
                event_id=str(uuid.UUID(int=id_rng.getrandbits(128), version=4)),
                ticket_id=ticket.ticket_id,
                occurred_at=timestamp(seconds=seconds, nanos=micros * 1000),
                event_type=kind,
                customer_id=ticket.customer_id,
                customer_tier=ticket.tier,
                agent_id=agent,
                team=team,
                product=ticket.product,
                channel=ticket.channel,
                priority=ticket.priority,
            )
            if kind == CREATED:
                msg.ticket_created.subject = p[0]
                msg.ticket_created.description_length = p[1]
                msg.ticket_created.tags.extend(p[2])
            elif kind == ASSIGNED:
                msg.ticket_assigned.agent_id = p[0]
                msg.ticket_assigned.team = p[1]
            elif kind == CUSTOMER_REPLIED:
                msg.customer_replied.body_length = p[0]
                msg.customer_replied.attachment_count = p[1]
            elif kind == AGENT_REPLIED:
                msg.agent_replied.body_length = p[0]
                msg.agent_replied.public = p[1]
            elif kind == STATUS_CHANGED:
                msg.status_changed.from_status = p[0]
                msg.status_changed.to_status = p[1]
            elif kind == ESCALATED:
                msg.escalated.level = p[0]
                msg.escalated.reason = p[1]
            elif kind == RESOLVED:
                msg.resolved.resolution_code = p[0]
            elif kind == REOPENED:
                msg.reopened.reason = p[0]
            else:
                msg.satisfaction_rated.rating = p[0]
                msg.satisfaction_rated.comment = p[1]
            return msg

        def pop() -> tuple[bytes, Any]:
            t, _, ticket, idx = heapq.heappop(heap)
            if ticket is None:  # a redelivered copy
                return idx  # type: ignore[no-any-return]
            events = ticket.events
            if idx + 1 < len(events):
                heapq.heappush(heap, (events[idx + 1][0], next(seq), ticket, idx + 1))
            msg = build(ticket, events[idx])
            out = (ticket.ticket_id.encode(), msg.SerializeToString() if encode else msg)
            if dup_rate and dup_rng.random() < dup_rate:
                late = t + int(dup_rng.expovariate(1.0) * 30 * US) + 1
                heapq.heappush(heap, (late, next(seq), None, out))
            return out

        for number, t0 in enumerate(self._arrivals(rng), start=1):
            while heap and heap[0][0] <= t0:
                yield pop()
            ticket = self._simulate(rng, number, t0)
            if ticket.events:
                heapq.heappush(heap, (ticket.events[0][0], next(seq), ticket, 0))
        while heap and heap[0][0] <= end:
            yield pop()

    def _simulate(self, rng: random.Random, number: int, t0: int) -> _Ticket:
        rand = rng.random
        expo = rng.expovariate
        cust = int(self.customers * rand() ** 2)  # skewed: low ids file more tickets
        tier = self._tiers[cust]
        product = self._products[bisect.bisect_right(self._product_cum, rand() * self._product_cum[-1])]
        channel = 1 + bisect.bisect_right(self._channel_cum, rand() * self._channel_cum[-1])
        channel = min(channel, 5)
        r = rand() - (0.12 if tier == T_ENTERPRISE else 0.0) - (0.08 if channel == 3 else 0.0)
        priority = P_URGENT if r < 0.06 else P_HIGH if r < 0.24 else P_NORMAL if r < 0.74 else P_LOW
        ticket_id = f"T-{self.seed % 1000:03d}-{number:07d}"
        customer_id = f"cus-{cust:06d}"
        ticket = _Ticket(
            ticket_id, customer_id=customer_id, tier=tier, product=product, channel=channel, priority=priority
        )
        events = ticket.events
        round_the_clock = priority == P_URGENT or tier == T_ENTERPRISE

        def later(mean_us: float) -> int:
            return int(expo(1.0) * mean_us) + US

        def within(team: str, t: int, mean_us: float) -> int:
            """t plus an exponential wait, counted in the team's business hours unless 24/7."""
            if round_the_clock:
                return t + later(mean_us)
            return self._hours[team].add(t, later(mean_us))

        def pick_agent(team: str) -> int:
            free = self._free_at[team]
            return min(range(len(free)), key=free.__getitem__)

        home = self._product_team[product]
        team = home
        if rand() < self.misroute_rate:
            team = rng.choice([t.name for t in TEAMS if t.name != home])
        issue = rng.choice(_ISSUES)
        tags = (
            [product]
            + (["billing"] if "charge" in issue else [])
            + (["urgent"] if priority == P_URGENT else [])
        )
        desc = int(math.exp(rng.gauss(6.0, 0.8)))
        events.append((t0, CREATED, "", team, (f"{product}: {issue}", desc, tuple(tags))))

        # Routing and assignment.
        t = t0 + later(90 * US)
        a = pick_agent(team)
        agent = self._agents[team][a]
        events.append((t, ASSIGNED, agent, team, (agent, team)))
        events.append((t + US, STATUS_CHANGED, agent, team, (S_NEW, S_OPEN)))
        if team != home:
            t = within(team, t, 45 * MINUTE)
            events.append((t, AGENT_REPLIED, agent, team, (int(expo(1 / 120)) + 20, False)))
            team = home
            a = pick_agent(team)
            agent = self._agents[team][a]
            t += MINUTE
            events.append((t, ASSIGNED, agent, team, (agent, team)))

        # First response: FIFO per agent in business hours; 24/7 tickets skip the queue.
        work = later(_WORK_MEAN)
        hours = self._hours[team]
        free = self._free_at[team]
        if round_the_clock:
            t_first = t + later(_TRIAGE_MEAN[priority]) + work
        else:
            # The agent works the queue in order; triage delay (by priority) runs meanwhile.
            done = hours.add(max(t, free[a]), work)
            free[a] = done
            t_first = max(done, hours.add(t, later(_TRIAGE_MEAN[priority])))
        events.append((t_first, AGENT_REPLIED, agent, team, (int(expo(1 / 600)) + 40, True)))
        events.append((t_first + US, STATUS_CHANGED, agent, team, (S_OPEN, S_PENDING)))
        t = t_first + US

        reopens = escalations = 0
        status = S_PENDING
        more_rounds = 0.5 if priority >= P_HIGH else 0.38
        while True:
            # Conversation rounds until the agent resolves, or the customer goes quiet.
            abandoned = False
            rounds = 0
            while rounds < 6 and rand() < more_rounds:
                rounds += 1
                if rand() < 0.05:
                    abandoned = True
                    break
                t += later(5 * HOUR)
                events.append(
                    (t, CUSTOMER_REPLIED, agent, team, (int(expo(1 / 300)) + 10, int(rand() < 0.2)))
                )
                t += US
                events.append((t, STATUS_CHANGED, agent, team, (status, S_OPEN)))
                status = S_OPEN
                if rand() < _ESCALATE_P[priority] * (1 + rounds):
                    escalations += 1
                    level = 1 if rand() < 0.55 else 2 if rand() < 0.85 else 3
                    reason = 1 if rounds > 3 else rng.choice((2, 3, 3, 4))
                    t = within(team, t, 30 * MINUTE)
                    events.append((t, ESCALATED, agent, team, (level, reason)))
                    if level >= 2:
                        team = ESCALATION_TEAM.name
                        a = pick_agent(team)
                        agent = self._agents[team][a]
                        t += US
                        events.append((t, ASSIGNED, agent, team, (agent, team)))
                        t += US
                        events.append((t, STATUS_CHANGED, agent, team, (status, S_ON_HOLD)))
                        status = S_ON_HOLD
                        t += later(20 * HOUR if level == 2 else 3 * HOUR)
                    else:
                        t = within(team, t, _REPLY_MEAN[priority] / 2)
                else:
                    t = within(team, t, _REPLY_MEAN[priority])
                events.append((t, AGENT_REPLIED, agent, team, (int(expo(1 / 500)) + 30, True)))
                t += US
                events.append((t, STATUS_CHANGED, agent, team, (status, S_PENDING)))
                status = S_PENDING

            if abandoned:
                t += 4 * DAY
                code = 6
            else:
                t += later(2 * HOUR)
                code = rng.choices((1, 2, 3, 4, 5), (0.45, 0.3, 0.12, 0.05, 0.08))[0]
            events.append((t, RESOLVED, agent, team, (code,)))
            t += US
            events.append((t, STATUS_CHANGED, agent, team, (status, S_RESOLVED)))
            status = S_RESOLVED
            t_resolved = t

            rating = 0
            if rand() < _RATE_P[tier]:
                fr_h = (t_first - t0) / HOUR
                res_h = (t_resolved - t0) / HOUR
                score = (
                    5.0
                    - 0.35 * math.log1p(fr_h)
                    - 0.45 * math.log1p(res_h / 24)
                    - 0.7 * reopens
                    - 0.3 * escalations
                    - (1.0 if code == 6 else 0.0)
                    + _TIER_MOOD[tier]
                    + rng.gauss(0.0, 0.75)
                )
                rating = min(5, max(1, round(score)))
                comments = _COMMENTS_GOOD if rating >= 4 else _COMMENTS_BAD
                comment = rng.choice(comments) if rand() < 0.4 else ""
                t_rate = t_resolved + min(later(6 * HOUR), 4 * DAY)
                events.append((t_rate, RATED, agent, team, (rating, comment)))

            p_reopen = 0.06 + (0.2 if 0 < rating <= 2 else 0.0) + (0.1 if code == 3 else 0.0)
            if reopens < 2 and rand() < p_reopen:
                delay = later(36 * HOUR)
                if delay < _CLOSE_AFTER:
                    reopens += 1
                    t = t_resolved + delay
                    reason = 1 if code in (3, 5) else rng.choice((1, 2, 3))
                    events.append((t, REOPENED, agent, team, (reason,)))
                    t += US
                    events.append((t, STATUS_CHANGED, agent, team, (S_RESOLVED, S_OPEN)))
                    status = S_OPEN
                    t = within(team, t, _REPLY_MEAN[priority])
                    events.append((t, AGENT_REPLIED, agent, team, (int(expo(1 / 500)) + 30, True)))
                    t += US
                    events.append((t, STATUS_CHANGED, agent, team, (S_OPEN, S_PENDING)))
                    status = S_PENDING
                    continue
            events.append((t_resolved + _CLOSE_AFTER, STATUS_CHANGED, agent, team, (S_RESOLVED, S_CLOSED)))
            break

        events.sort(key=lambda e: e[0])
        return ticket


def utc(ts_us: int) -> datetime:
    """Microseconds since the epoch as an aware UTC datetime."""
    return _EPOCH + timedelta(microseconds=ts_us)

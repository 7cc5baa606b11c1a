"""Seeded simulator of a hosting company's billable events, in delivery order.

Every simulated hour: users sign up (and create their fleet), act (add, resize
or destroy VMs, take snapshots, create and grow block-storage volumes), churn
(destroy everything), and the metering service emits one ``usage`` event per
live resource for that hour (plus bandwidth-overage usage for heavy users).
Block-storage volumes start in a free beta (plan ``volume-gb-beta``, price 0,
only beta testers) and go GA at ``volume_ga_day``: beta volumes switch to the
paid plan (a ``resized`` event) and adoption follows a logistic curve.

Delivery: a ``late_share`` of events is delivered 1-72 hours after the hour it
belongs to (most within 3 h) and a ``dup_share`` is re-sent (same event_id,
same content) up to 6 hours later. Events still pending at the end are flushed,
so the stream is complete. ``events()``/``encoded()`` yield in delivery order.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from shoal.usecases.billing import catalog as cat
from shoal.usecases.billing.customers import EXISTING_SHARE, Customer, generate_customers
from shoal.usecases.billing.events import (
    CREATED,
    DESTROYED,
    RESIZED,
    USAGE,
    BillingEvent,
    encode_events,
)

MICROS = cat.MICROS
VOLUME_SIZES_GB = (10, 25, 50, 100, 250, 500, 1000)
VOLUME_SIZE_WEIGHTS = (10, 20, 25, 25, 10, 7, 3)
# RFC 4122 version-4 layout: version nibble = 4, variant bits = 10
_UUID_KEEP = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)
_UUID_SET = (0x4 << 76) | (0x2 << 62)


class _Resource:
    __slots__ = ("cap", "customer", "plan", "price", "quantity", "resource_id", "vm_index")

    def __init__(self, resource_id: str, customer: Customer, plan: cat.Plan, quantity: int) -> None:
        self.resource_id = resource_id
        self.customer = customer
        self.vm_index = -1
        self.set_plan(plan, quantity)

    def set_plan(self, plan: cat.Plan, quantity: int) -> None:
        self.plan = plan
        self.quantity = quantity
        self.price = plan.hourly_price_micros
        self.cap = cat.cap_for(plan, quantity)


@dataclass
class _UserState:
    customer: Customer
    vms: list[_Resource] = field(default_factory=list)
    others: list[_Resource] = field(default_factory=list)  # volumes, backups, LBs, spaces, snapshots
    backups: dict[str, _Resource] = field(default_factory=dict)  # vm resource_id -> backup
    volumes: list[_Resource] = field(default_factory=list)
    snapshots: dict[str, _Resource] = field(default_factory=dict)


class BillingSimulator:
    """Simulated billing events.

    ``start`` is truncated to the hour (UTC). ``users`` counts every customer
    over the period (existing at start + sign-ups). Same arguments, same events.
    """

    def __init__(  # noqa: PLR0917 - the documented positional signature
        self,
        seed: int,
        start: datetime,
        days: int,
        users: int,
        late_share: float = 0.05,
        dup_share: float = 0.01,
        *,
        volume_ga_day: int | None = None,
        currency: str = "USD",
        existing_share: float = EXISTING_SHARE,
        hours: int | None = None,
    ) -> None:
        if not 0.0 <= late_share <= 1.0 or not 0.0 <= dup_share <= 1.0:
            raise ValueError("late_share and dup_share must be within [0, 1]")
        if not 0.0 <= existing_share <= 1.0:
            raise ValueError("existing_share must be within [0, 1]")
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        self.seed = seed
        self.start = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        self.days = days
        self.users = users
        self.late_share = late_share
        self.dup_share = dup_share
        self.volume_ga_day = days // 3 if volume_ga_day is None else volume_ga_day
        self.currency = currency
        self.existing_share = existing_share
        self.hours = days * 24 if hours is None else hours  # the simulated window (default: days)

    def encoded(self) -> Iterator[tuple[bytes, bytes]]:
        """(key = resource_id, value = serialized UsageEvent) in delivery order."""
        return encode_events(self.events())

    def events(self) -> Iterator[BillingEvent]:
        rng = random.Random(self.seed)
        rand = rng.random
        bits = rng.getrandbits
        customers = generate_customers(
            self.seed, self.days, self.users, self.existing_share, hours=self.hours
        )
        hours = self.hours
        ga_hour = self.volume_ga_day * 24
        cur = self.currency
        late, dup = self.late_share, self.dup_share
        pending: list[tuple[int, int, BillingEvent]] = []  # (delivery hour, seq, event)
        seq = 0
        counter = 0
        users: dict[str, _UserState] = {}
        active: list[str] = []  # for O(1) random picks
        where: dict[str, int] = {}
        live: dict[str, _Resource] = {}
        ending: list[_Resource] = []  # destroyed this hour, still metered for it
        churn_at: dict[int, list[str]] = {}
        by_signup: dict[int, list[Customer]] = {}
        for c in customers:
            by_signup.setdefault(max(c.signup_hour, 0), []).append(c)
            churn_at.setdefault(c.churn_hour, []).append(c.user_id)

        def new_id() -> str:
            # a version-4 UUID from the seeded generator (uuid.UUID() is ~3x slower)
            x = (bits(128) & _UUID_KEEP) | _UUID_SET
            h = f"{x:032x}"
            return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

        # the hour being simulated; the helpers below read these (late binding is intended)
        h = 0
        hour = self.start
        month = ""

        def lifecycle(kind: str, res: _Resource, at: datetime) -> BillingEvent:
            c = res.customer
            p = res.plan
            return BillingEvent(
                new_id(), kind, c.user_id, c.team_id, c.region, res.resource_id, p.product, p.slug,
                p.unit, res.quantity, res.price, res.cap, cur, at, hour, month,
            )  # fmt: skip

        out: list[BillingEvent] = []

        def emit(ev: BillingEvent) -> None:
            nonlocal seq
            r = rand()
            if r < late:
                # lateness in hours: mostly 1-3, a tail up to 72 (crosses days and months)
                r2 = rand()
                delay = (
                    1 + int(r2 * 3)
                    if r2 < 0.7
                    else (4 + int(rand() * 21) if r2 < 0.95 else 25 + int(rand() * 48))
                )
                seq += 1
                heapq.heappush(pending, (h + delay, seq, ev))
            else:
                out.append(ev)
            if rand() < dup:
                seq += 1
                heapq.heappush(pending, (h + int(rand() * 7), seq, ev))

        def create(st: _UserState, plan: cat.Plan, qty: int, prefix: str, at: datetime) -> _Resource:
            nonlocal counter
            counter += 1
            res = _Resource(f"{prefix}-{counter:09d}", st.customer, plan, qty)
            live[res.resource_id] = res
            emit(lifecycle(CREATED, res, at))
            return res

        def destroy(res: _Resource, at: datetime) -> None:
            if live.pop(res.resource_id, None) is not None:
                ending.append(res)
                emit(lifecycle(DESTROYED, res, at))

        def add_vm(st: _UserState, at: datetime) -> None:
            c = st.customer
            idx = rng.randint(c.vm_plan_lo, c.vm_plan_hi)
            vm = create(st, cat.VM_PLANS[idx], MICROS, "vm", at)
            vm.vm_index = idx
            st.vms.append(vm)
            if c.backups:
                gb = max(1, cat.VM_DISK_GB[idx] * rng.randint(30, 90) // 100)
                st.backups[vm.resource_id] = create(st, cat.BACKUP, gb * MICROS, "bak", at)

        def drop_vm(st: _UserState, vm: _Resource, at: datetime) -> None:
            st.vms.remove(vm)
            destroy(vm, at)
            bak = st.backups.pop(vm.resource_id, None)
            if bak is not None:
                destroy(bak, at)

        def add_volume(st: _UserState, at: datetime, *, beta: bool) -> None:
            gb = rng.choices(VOLUME_SIZES_GB, VOLUME_SIZE_WEIGHTS)[0]
            plan = cat.VOLUME_BETA if beta else cat.VOLUME
            st.volumes.append(create(st, plan, gb * MICROS, "vol", at))

        def pick(n: int) -> list[_UserState]:
            if not active:
                return []
            return [users[active[int(rand() * len(active))]] for _ in range(n)]

        def poisson(lam: float) -> int:
            if lam <= 0:
                return 0
            if lam > 30:  # normal approximation is plenty for action counts
                return max(0, round(rng.gauss(lam, math.sqrt(lam))))
            k, p, limit = 0, rand(), math.exp(-lam)
            while p > limit:
                k += 1
                p *= rand()
            return k

        jitter = [timedelta(seconds=s) for s in range(0, 300, 7)]
        minutes: list[datetime] = []

        def at() -> datetime:
            """A random instant (on a 30 s grid) within the simulated hour."""
            return minutes[int(rand() * 120)]

        for h in range(hours):
            hour = self.start + timedelta(hours=h)
            month = f"{hour.year:04d}-{hour.month:02d}"
            end = hour + timedelta(hours=1)
            minutes = [hour + timedelta(minutes=m, seconds=s) for m in range(60) for s in (0, 31)]
            # sign-ups build their fleet
            for c in by_signup.get(h, ()):
                st = _UserState(c)
                users[c.user_id] = st
                where[c.user_id] = len(active)
                active.append(c.user_id)
                t = at()
                for _ in range(c.initial_vms):
                    add_vm(st, t)
                if c.object_storage:
                    st.others.append(create(st, cat.OBJECT_STORAGE, MICROS, "spaces", t))
                if c.load_balancer:
                    lb = cat.LB_PLANS[1 if c.segment == "enterprise" else 0]
                    st.others.append(create(st, lb, MICROS, "lb", t))
                if c.beta_tester and h < ga_hour and rand() < 0.3:
                    add_volume(st, t, beta=True)
            # volumes go GA: beta volumes move to the paid plan
            if h == ga_hour:
                for res in list(live.values()):
                    if res.plan is cat.VOLUME_BETA:
                        res.set_plan(cat.VOLUME, res.quantity)
                        emit(lifecycle(RESIZED, res, hour))
            n = len(active)
            day = h / 24
            for st in pick(poisson(n * 0.006 / 24)):  # upgrade a VM one size
                vms = [v for v in st.vms if v.vm_index + 1 < len(cat.VM_PLANS)]
                if vms:
                    vm = vms[int(rand() * len(vms))]
                    vm.vm_index += 1
                    vm.set_plan(cat.VM_PLANS[vm.vm_index], MICROS)
                    emit(lifecycle(RESIZED, vm, at()))
            for st in pick(poisson(n * 0.012 / 24)):  # grow the fleet
                add_vm(st, at())
            for st in pick(poisson(n * 0.010 / 24)):  # shrink the fleet (never the last VM)
                if len(st.vms) > 1:
                    drop_vm(st, st.vms[int(rand() * len(st.vms))], at())
            for st in pick(poisson(n * 0.015 / 24)):  # snapshot a VM, kept 1-30 days
                if st.vms:
                    vm = st.vms[int(rand() * len(st.vms))]
                    gb = max(1, cat.VM_DISK_GB[vm.vm_index] * rng.randint(20, 80) // 100)
                    snap = create(st, cat.SNAPSHOT, gb * MICROS, "snap", at())
                    st.snapshots[snap.resource_id] = snap
                    churn_at.setdefault(h + rng.randint(24, 720), []).append(snap.resource_id)
            if h < ga_hour:
                for st in pick(poisson(n * 0.002 / 24)):
                    if st.customer.beta_tester:
                        add_volume(st, at(), beta=True)
            else:
                # logistic adoption after GA: daily hazard ramps up over ~3 weeks
                rate = 0.02 / (1.0 + math.exp(-(day - self.volume_ga_day - 10.0) / 4.0))
                for st in pick(poisson(n * rate / 24)):
                    add_volume(st, at(), beta=False)
                for st in pick(poisson(n * 0.003 / 24)):  # grow a volume
                    if st.volumes:
                        vol = st.volumes[int(rand() * len(st.volumes))]
                        vol.set_plan(vol.plan, vol.quantity + 10 * MICROS * rng.randint(1, 10))
                        emit(lifecycle(RESIZED, vol, at()))
            # churn (users) and expiring snapshots
            for key in churn_at.pop(h, ()):
                if key in live:  # a snapshot
                    snap = live[key]
                    users[snap.customer.user_id].snapshots.pop(key, None)
                    destroy(snap, at())
                    continue
                st_or_none = users.get(key)
                if st_or_none is None or key not in where:
                    continue
                st = st_or_none
                t = at()
                for vm in list(st.vms):
                    drop_vm(st, vm, t)
                for res in st.others + st.volumes:
                    destroy(res, t)
                for res in st.snapshots.values():
                    destroy(res, t)
                st.snapshots.clear()
                i = where.pop(key)
                last = active.pop()
                if last != key:
                    active[i] = last
                    where[last] = i
            # late and re-sent events due now arrive among this hour's traffic
            while pending and pending[0][0] <= h:
                out.append(heapq.heappop(pending)[2])
            # hourly metering, emitted just after the hour closes
            ends = [end + j for j in jitter]
            nj = len(ends)
            for res in list(live.values()) + ending:
                c = res.customer
                p = res.plan
                emit(
                    BillingEvent(
                        new_id(), USAGE, c.user_id, c.team_id, c.region, res.resource_id, p.product,
                        p.slug, p.unit, res.quantity, res.price, res.cap, cur, ends[int(rand() * nj)],
                        hour, month,
                    )
                )  # fmt: skip
            ending.clear()
            for uid in active:
                c = users[uid].customer
                if c.bandwidth_heavy and rand() < 0.08:
                    qty = 50 * rng.randint(1, 2_000_000)  # up to 100 GB, in 50-micro-GB steps
                    b = cat.BANDWIDTH
                    emit(
                        BillingEvent(
                            new_id(), USAGE, c.user_id, c.team_id, c.region, f"bw-{c.user_id}", b.product,
                            b.slug, b.unit, qty, b.hourly_price_micros, None, cur, ends[int(rand() * nj)],
                            hour, month,
                        )
                    )  # fmt: skip
            yield from out
            out.clear()
        while pending:
            yield heapq.heappop(pending)[2]

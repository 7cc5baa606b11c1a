"""A seeded simulated customer base for the billing demo.

Users sign up over the simulated period with exponential growth (the sign-up
rate triples from the first to the last day, with a daily cycle); a share of
them already exists when the simulation starts. Each user has a segment
(hobby, startup, business, enterprise) that drives fleet size, VM sizes,
upgrade and churn rates, a home region (weighted regional mix), a team (most
users are alone in their team, some share one), and flags for optional
products. Churn is a per-segment monthly hazard (exponential lifetimes).
Everything is drawn from ``numpy.random.Generator(seed)``: same seed, same base.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from shoal.usecases.billing.catalog import REGION_WEIGHTS, REGIONS

SEGMENTS = ("hobby", "startup", "business", "enterprise")
SEGMENT_WEIGHTS = (0.637, 0.30, 0.06, 0.003)
# Monthly churn probability per segment (converted to an hourly hazard).
MONTHLY_CHURN = (0.07, 0.035, 0.015, 0.005)
# VM plan index range [lo, hi] per segment into catalog.VM_PLANS.
VM_PLAN_RANGE = ((0, 2), (1, 5), (3, 8), (5, 10))
EXISTING_SHARE = 0.45  # default share of users signed up before the simulated period


class Customer(NamedTuple):
    user_id: str
    team_id: str
    region: str
    segment: str
    signup_hour: int  # hours since the simulation start; < 0 = existed before it
    churn_hour: int  # hour the user leaves (may be past the end)
    initial_vms: int
    vm_plan_lo: int
    vm_plan_hi: int
    beta_tester: bool  # may use block-storage volumes before GA
    backups: bool  # enables backups on its VMs
    object_storage: bool
    load_balancer: bool
    bandwidth_heavy: bool  # regularly exceeds its transfer allowance


def generate_customers(
    seed: int, days: int, users: int, existing_share: float = EXISTING_SHARE, *, hours: int | None = None
) -> list[Customer]:
    """`users` customers over a `days`-long history (or ``hours``), ordered by sign-up hour;
    ``existing_share`` of them signed up before it (a short window of an established company:
    close to 1)."""
    hours = days * 24 if hours is None else hours
    if users <= 0 or hours <= 0:
        return []
    rng = np.random.default_rng(seed)
    existing = rng.random(users) < existing_share
    # inverse CDF of a density ∝ exp(g t) on [0, hours): sign-ups triple over the period
    g = math.log(3.0) / hours
    u = rng.random(users)
    t = np.log1p(u * math.expm1(g * hours)) / g
    # daily cycle: shift a share of sign-ups into the (UTC) afternoon
    t = np.where(rng.random(users) < 0.3, np.floor(t / 24) * 24 + rng.integers(12, 20, users), t)
    signup = np.where(existing, -rng.integers(1, 24 * 700, users), np.minimum(t, hours - 1).astype(np.int64))
    segment = rng.choice(len(SEGMENTS), size=users, p=np.array(SEGMENT_WEIGHTS) / sum(SEGMENT_WEIGHTS))
    hazard = -np.log1p(-np.array(MONTHLY_CHURN)) / (30 * 24)
    lifetime = rng.exponential(1.0 / hazard[segment])
    churn = np.maximum(signup, 0) + np.ceil(lifetime).astype(np.int64)
    region = rng.choice(len(REGIONS), size=users, p=np.array(REGION_WEIGHTS) / sum(REGION_WEIGHTS))
    hobby_vms = 1 + (rng.random(users) < 0.12)
    startup_vms = rng.integers(1, 5, users)
    business_vms = 1 + rng.geometric(0.2, users)
    enterprise_vms = np.minimum(20 + (rng.pareto(1.5, users) * 20).astype(np.int64), 300)
    vms = np.choose(segment, [hobby_vms, startup_vms, business_vms, enterprise_vms])
    r = rng.random((5, users))
    beta = r[0] < 0.03
    backups = r[1] < np.choose(segment, [0.15, 0.35, 0.6, 0.8])
    spaces = r[2] < np.choose(segment, [0.05, 0.15, 0.4, 0.9])
    lbs = r[3] < np.choose(segment, [0.0, 0.1, 0.5, 0.95])
    heavy = r[4] < np.choose(segment, [0.0, 0.05, 0.3, 0.8])
    # shared teams: 15% of users join the team of an earlier-numbered user
    team_of = np.arange(users)
    joins = (rng.random(users) < 0.15) & (team_of > 0)
    team_of[joins] = (rng.random(int(joins.sum())) * team_of[joins]).astype(np.int64)

    order = np.argsort(signup, kind="stable")
    out: list[Customer] = []
    for i in order.tolist():
        seg = int(segment[i])
        lo, hi = VM_PLAN_RANGE[seg]
        out.append(
            Customer(
                user_id=f"u{i:07d}",
                team_id=f"t{int(team_of[i]):07d}",
                region=REGIONS[int(region[i])],
                segment=SEGMENTS[seg],
                signup_hour=int(signup[i]),
                churn_hour=int(churn[i]),
                initial_vms=int(vms[i]),
                vm_plan_lo=lo,
                vm_plan_hi=hi,
                beta_tester=bool(beta[i]),
                backups=bool(backups[i]),
                object_storage=bool(spaces[i]),
                load_balancer=bool(lbs[i]),
                bandwidth_heavy=bool(heavy[i]),
            )
        )
    return out

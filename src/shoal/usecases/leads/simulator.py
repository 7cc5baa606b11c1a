"""A seeded CRM and behavioural warehouse for the company the demo simulates.

The people are the billing use case's customers (:func:`shoal.usecases.billing.customers.
generate_customers` with the billing simulation's own seed and arguments): the same ``user_id``,
``team_id``, segment, region and sign-up hour, so CRM sources join billing revenue by ``user_id``.
On top of them, from a generator seeded by the same seed:

- **CRM**: one account per team (firmographics: industry, employees by segment), the team, each
  user's sign-up source (by segment) and plan, twelve sales reps in three territories, and
  opportunities for the accounts a rep owns (stages, amounts in cents, close dates);
- **warehouse**: the last ``window_days`` of product sessions (more for bigger segments), their
  page views, feature usage, and trial starts (and conversions to paid) after sign-up.

All times are naive UTC; ``as_of`` (the end of the billing window) is "now" for both databases.
Same arguments, same rows.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import accumulate
from typing import Any

from shoal.usecases.billing.customers import Customer, generate_customers

Row = tuple[Any, ...]

SOURCES = ("organic", "paid_search", "content", "referral", "partner", "outbound")
# sign-up source weights by billing segment (hobby, startup, business, enterprise)
SOURCE_WEIGHTS = {
    "hobby": (0.45, 0.25, 0.20, 0.08, 0.02, 0.00),
    "startup": (0.30, 0.25, 0.15, 0.15, 0.10, 0.05),
    "business": (0.15, 0.15, 0.10, 0.20, 0.20, 0.20),
    "enterprise": (0.05, 0.05, 0.05, 0.15, 0.30, 0.40),
}
INDUSTRIES = ("saas", "ecommerce", "fintech", "media", "gaming", "education", "agency", "healthcare")
EMPLOYEES = {"hobby": (1, 3), "startup": (2, 60), "business": (40, 900), "enterprise": (500, 30_000)}
TRIAL_P = {"hobby": 0.35, "startup": 0.55, "business": 0.7, "enterprise": 0.8}
CONVERT_P = {"hobby": 0.15, "startup": 0.35, "business": 0.5, "enterprise": 0.6}
TRIAL_PLAN = {"hobby": "developer", "startup": "team", "business": "business", "enterprise": "enterprise"}
SESSIONS_PER_WEEK = {"hobby": 0.4, "startup": 1.0, "business": 2.0, "enterprise": 3.0}
OWNED_P = {"hobby": 0.0, "startup": 0.1, "business": 0.7, "enterprise": 1.0}
AMOUNT_CENTS = {"hobby": (100_00, 500_00), "startup": (500_00, 5_000_00),
                "business": (2_000_00, 40_000_00), "enterprise": (20_000_00, 250_000_00)}  # fmt: skip
STAGES = ("prospecting", "qualification", "proposal", "negotiation", "closed_won", "closed_lost")
STAGE_WEIGHTS = (0.2, 0.2, 0.15, 0.1, 0.2, 0.15)
TERRITORY = {"nyc1": "amer", "nyc3": "amer", "sfo3": "amer", "tor1": "amer", "ams3": "emea",
             "fra1": "emea", "lon1": "emea", "sgp1": "apac", "blr1": "apac", "syd1": "apac"}  # fmt: skip
PATHS = ("/", "/dashboard", "/docs", "/droplets", "/kubernetes", "/databases", "/billing", "/pricing",
         "/contact-sales")  # fmt: skip
PATH_WEIGHTS = (0.12, 0.3, 0.15, 0.15, 0.07, 0.07, 0.05, 0.06, 0.03)
FEATURES = ("droplets", "kubernetes", "databases", "spaces", "load_balancers", "monitoring", "api",
            "functions")  # fmt: skip
DEVICES = ("desktop", "mobile", "api")
# cumulative weights, computed once (random.choices would redo it on every call; same draws)
_CUM_STAGES = list(accumulate(STAGE_WEIGHTS))
_CUM_SOURCES = {segment: list(accumulate(w)) for segment, w in SOURCE_WEIGHTS.items()}
_CUM_DEVICES = list(accumulate((0.7, 0.2, 0.1)))
_CUM_PATHS = list(accumulate(PATH_WEIGHTS))
_FIRST = ("Ana", "Ben", "Chloe", "Dev", "Eva", "Femi", "Gus", "Hana", "Ivan", "Jia", "Kofi", "Lena")
_LAST = ("Silva", "Okafor", "Meyer", "Rao", "Kowalski", "Tanaka", "Haddad", "Novak", "Berg", "Lopez",
         "Chen", "Moreau")  # fmt: skip


@dataclass(frozen=True)
class LeadsData:
    """Rows per table (in :mod:`.schema` column order) and the moment they describe."""

    as_of: datetime
    crm: dict[str, list[Row]]
    warehouse: dict[str, list[Row]]

    def database(self, name: str) -> dict[str, list[Row]]:
        return self.crm if name == "crm" else self.warehouse

    def counts(self) -> dict[str, int]:
        return {
            f"{db}.{t}": len(rows) for db in ("crm", "warehouse") for t, rows in self.database(db).items()
        }


def _poisson(rng: random.Random, lam: float) -> int:
    # Knuth's method: fine for the small rates here
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


class LeadsSimulator:
    """The CRM and warehouse of the billing simulation ``billing`` (its seed, users and window)."""

    def __init__(self, billing: Any, *, window_days: int = 14) -> None:
        # ``billing``: a BillingSimulator (typed loosely: only its arguments are read)
        self.seed: int = billing.seed
        self.start: datetime = billing.start
        self.days: int = billing.days
        self.users: int = billing.users
        self.existing_share: float = billing.existing_share
        self.hours: int = billing.hours
        self.window_days = window_days

    @property
    def as_of(self) -> datetime:
        """The end of the billing window, naive UTC."""
        start = self.start.astimezone(UTC).replace(tzinfo=None) if self.start.tzinfo else self.start
        return start + timedelta(hours=self.hours)

    def customers(self) -> list[Customer]:
        return generate_customers(self.seed, self.days, self.users, self.existing_share, hours=self.hours)

    def generate(self) -> LeadsData:
        rng = random.Random(self.seed * 7919 + 13)
        as_of = self.as_of
        begin = as_of - timedelta(hours=self.hours)
        loaded = as_of  # the warehouse's load time of every row (its cursor column)
        customers = sorted(self.customers(), key=lambda c: c.user_id)

        def signup_time(c: Customer) -> datetime:
            return begin + timedelta(hours=c.signup_hour, seconds=rng.randrange(3600))

        reps: list[Row] = []
        by_territory: dict[str, list[int]] = {}
        for i in range(12):
            territory = ("amer", "emea", "apac")[i % 3]
            rep_id = 101 + i
            hired = (as_of - timedelta(days=rng.randrange(60, 2000))).date()
            reps.append((rep_id, f"{_FIRST[i]} {_LAST[i]}", territory, hired, as_of))
            by_territory.setdefault(territory, []).append(rep_id)

        signed: dict[str, datetime] = {}
        members: dict[str, list[Customer]] = {}
        for c in customers:
            signed[c.user_id] = signup_time(c)
            members.setdefault(c.team_id, []).append(c)

        accounts: list[Row] = []
        teams: list[Row] = []
        opportunities: list[Row] = []
        account_of: dict[str, str] = {}
        opp_id = 1
        for team_id in sorted(members):
            group = members[team_id]
            lead = group[0]  # the lowest user id: the team's founder
            account_id = "a" + team_id[1:]
            created = min(signed[c.user_id] for c in group)
            lo, hi = EMPLOYEES[lead.segment]
            employees = int(math.exp(rng.uniform(math.log(lo), math.log(hi + 1))))
            industry = rng.choice(INDUSTRIES)
            owner: int | None = None
            if rng.random() < OWNED_P[lead.segment]:
                owner = rng.choice(by_territory[TERRITORY.get(lead.region, "amer")])
            accounts.append((account_id, f"{industry.title()} Co {team_id[1:]}", industry, employees,
                             lead.segment, lead.region, owner, created, created))  # fmt: skip
            teams.append((team_id, account_id, f"team {team_id}", created, created))
            for c in group:
                account_of[c.user_id] = account_id
            if owner is None:
                continue
            for _ in range(1 + _poisson(rng, 0.6)):
                stage = rng.choices(STAGES, cum_weights=_CUM_STAGES)[0]
                cents = rng.randrange(*AMOUNT_CENTS[lead.segment])
                age = max((as_of - created).total_seconds(), 3600.0)
                opened = created + timedelta(seconds=rng.uniform(0, age))
                close: date | None = None
                updated = opened
                if stage.startswith("closed"):
                    closed_at = min(opened + timedelta(days=rng.randrange(5, 90)), as_of)
                    close, updated = closed_at.date(), closed_at
                opportunities.append((opp_id, account_id, owner, stage, Decimal(cents).scaleb(-2),
                                      opened, close, updated))  # fmt: skip
                opp_id += 1

        users: list[Row] = []
        trials: list[Row] = []
        source_of: dict[str, str] = {}
        trial_id = 1
        for c in customers:
            source = rng.choices(SOURCES, cum_weights=_CUM_SOURCES[c.segment])[0]
            source_of[c.user_id] = source
            plan = "free"
            at = signed[c.user_id]
            if rng.random() < TRIAL_P[c.segment]:
                started = at + timedelta(hours=rng.expovariate(1 / 72))
                if started < as_of:
                    converted: datetime | None = None
                    if rng.random() < CONVERT_P[c.segment]:
                        paid = started + timedelta(days=rng.uniform(1, 14))
                        if paid < as_of:
                            converted, plan = paid, TRIAL_PLAN[c.segment]
                    trials.append((trial_id, c.user_id, TRIAL_PLAN[c.segment], started, converted, loaded))
                    trial_id += 1
            domain = f"example{int(c.team_id[1:]) % 997}.com"
            users.append(
                (c.user_id, account_of[c.user_id], c.team_id, domain, source, plan, c.region, at, at)
            )

        sessions: list[Row] = []
        views: list[Row] = []
        usage: list[Row] = []
        window_start = as_of - timedelta(days=self.window_days)
        session_id = view_id = usage_id = 1
        for c in customers:
            first = max(signed[c.user_id], window_start)
            churned = begin + timedelta(hours=c.churn_hour)
            last = min(as_of, churned)
            span = (last - first).total_seconds()
            if span <= 0:
                continue
            lam = SESSIONS_PER_WEEK[c.segment] * span / (7 * 86400)
            for _ in range(_poisson(rng, lam)):
                started = first + timedelta(seconds=int(rng.uniform(0, span)))
                duration = 30 + int(rng.expovariate(1 / 600))
                utm = source_of[c.user_id] if rng.random() < 0.3 else "direct"
                device = rng.choices(DEVICES, cum_weights=_CUM_DEVICES)[0]
                sessions.append((session_id, c.user_id, started, duration, utm, device, loaded))
                for _ in range(1 + _poisson(rng, 1.5)):
                    path = rng.choices(PATHS, cum_weights=_CUM_PATHS)[0]
                    seen = started + timedelta(seconds=rng.randrange(duration))
                    views.append((view_id, session_id, c.user_id, path, seen, loaded))
                    view_id += 1
                for feature in rng.sample(FEATURES, _poisson(rng, 0.9) % len(FEATURES)):
                    used = started + timedelta(seconds=rng.randrange(duration))
                    usage.append((usage_id, c.user_id, feature, used, 1 + _poisson(rng, 6.0), loaded))
                    usage_id += 1
                session_id += 1

        return LeadsData(
            as_of=as_of,
            crm={"sales_reps": reps, "accounts": accounts, "teams": teams, "users": users,
                 "opportunities": opportunities},
            warehouse={"sessions": sessions, "page_views": views, "trial_starts": trials,
                       "feature_usage": usage},
        )  # fmt: skip


def rows_as_dicts(columns: Sequence[str], rows: Sequence[Row]) -> list[dict[str, Any]]:
    return [dict(zip(columns, r, strict=True)) for r in rows]

"""A simulated cloud hosting company: regions, products, teams and users (seeded, deterministic)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

REGIONS = [
    ("nyc1", "New York 1", "us-east", "America/New_York"),
    ("nyc3", "New York 3", "us-east", "America/New_York"),
    ("sfo3", "San Francisco 3", "us-west", "America/Los_Angeles"),
    ("tor1", "Toronto 1", "ca-central", "America/Toronto"),
    ("ams3", "Amsterdam 3", "eu-west", "Europe/Amsterdam"),
    ("fra1", "Frankfurt 1", "eu-central", "Europe/Berlin"),
    ("lon1", "London 1", "eu-west", "Europe/London"),
    ("blr1", "Bangalore 1", "ap-south", "Asia/Kolkata"),
    ("sgp1", "Singapore 1", "ap-southeast", "Asia/Singapore"),
    ("syd1", "Sydney 1", "ap-southeast", "Australia/Sydney"),
]
REGION_WEIGHTS = [0.16, 0.14, 0.13, 0.05, 0.12, 0.12, 0.09, 0.07, 0.08, 0.04]

PRODUCTS = [
    ("droplet", "Virtual machines", "compute", "ga"),
    ("volume", "Block storage volumes", "storage", "beta"),
    ("spaces", "Object storage", "storage", "ga"),
    ("load_balancer", "Load balancers", "networking", "ga"),
    ("snapshot", "Snapshots", "storage", "ga"),
    ("backup", "Backups", "storage", "ga"),
    ("bandwidth", "Bandwidth overage", "networking", "ga"),
]

SEGMENTS = ["hobbyist", "startup", "smb", "enterprise"]
SEGMENT_WEIGHTS = [0.55, 0.25, 0.15, 0.05]


@dataclass(frozen=True)
class Company:
    regions: pa.Table
    products: pa.Table
    teams: pa.Table
    users: pa.Table


def simulate_company(
    users: int = 20_000, seed: int = 7, start: datetime | None = None, days: int = 365
) -> Company:
    """Users sign up over ``days`` with growth; each belongs to a team (an account) in a home region."""
    rng = np.random.default_rng(seed)
    start = start or datetime(2026, 1, 1, tzinfo=UTC)
    regions = pa.table(
        {
            "region": [r[0] for r in REGIONS],
            "name": [r[1] for r in REGIONS],
            "geo": [r[2] for r in REGIONS],
            "timezone": [r[3] for r in REGIONS],
        }
    )
    products = pa.table(
        {
            "product": [p[0] for p in PRODUCTS],
            "name": [p[1] for p in PRODUCTS],
            "category": [p[2] for p in PRODUCTS],
            "launch_stage": [p[3] for p in PRODUCTS],
        }
    )
    n_teams = max(1, users // 3)
    team_segment = rng.choice(len(SEGMENTS), size=n_teams, p=SEGMENT_WEIGHTS)
    team_region = rng.choice(len(REGIONS), size=n_teams, p=REGION_WEIGHTS)
    # Sign-ups grow over the year: sample days from an increasing density.
    signup_day = np.floor(days * np.sqrt(rng.random(n_teams))).astype(np.int64)
    team_created = [
        start + timedelta(days=int(d), seconds=int(s))
        for d, s in zip(signup_day, rng.integers(0, 86400, n_teams), strict=True)
    ]
    teams = pa.table(
        {
            "team_id": [f"t{i:07d}" for i in range(n_teams)],
            "segment": [SEGMENTS[i] for i in team_segment],
            "home_region": [REGIONS[i][0] for i in team_region],
            "created_at": pa.array(team_created, pa.timestamp("us", tz="UTC")),
        }
    )
    user_team = np.sort(rng.integers(0, n_teams, users))
    churn = rng.random(users) < 0.12
    user_created = [
        team_created[t] + timedelta(days=int(x))
        for t, x in zip(user_team, rng.exponential(10, users), strict=True)
    ]
    churned_at = [
        (c + timedelta(days=int(rng.integers(5, 120)))) if ch else None
        for c, ch in zip(user_created, churn, strict=True)
    ]
    users_tbl = pa.table(
        {
            "user_id": [f"u{i:07d}" for i in range(users)],
            "team_id": [f"t{t:07d}" for t in user_team],
            "email_domain": [f"example{int(t) % 997}.com" for t in user_team],
            "region": [REGIONS[team_region[t]][0] for t in user_team],
            "segment": [SEGMENTS[team_segment[t]] for t in user_team],
            "created_at": pa.array(user_created, pa.timestamp("us", tz="UTC")),
            "churned_at": pa.array(churned_at, pa.timestamp("us", tz="UTC")),
        }
    )
    return Company(regions=regions, products=products, teams=teams, users=users_tbl)

"""A small served project for tests and benchmarks: tables in two namespaces, personal data,
a pipeline's offsets and a model's inputs (as the real writers record them), and tokens."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
from httpx import Client

from shoal.config import init_project
from shoal.lake import progress
from shoal.project import Project
from shoal.serve.server import serving_in_thread
from shoal.serve.state import tokens_path
from shoal.serve.tokens import Role, TokenStore


@dataclass(frozen=True)
class SampleProject:
    project: Project
    admin: str
    support_reader: str
    support_pii: str
    billing_reader: str
    revoked: str


def sample_project(directory: Path, *, customers: int = 50, tickets: int = 200) -> SampleProject:
    """Create a project at ``directory`` with ``support.customers`` (email, name, ip marked as
    personal data), ``support.tickets`` (a pipeline table), ``billing.invoices`` and
    ``billing.daily_revenue`` (a model of invoices), plus one token per role."""
    init_project(directory, "served", exist_ok=True)
    project = Project.load(directory)
    lake = project.lake
    start = datetime(2026, 1, 1, tzinfo=UTC)

    cust = lake.create_table(
        "support.customers",
        pa.schema([("id", pa.int64()), ("email", pa.string()), ("name", pa.string()), ("ip", pa.string())]),
        owner="support-team",
        source="mariadb crm.customers",
        description="customers of the support desk",
        pii=["email", "name", "ip"],
    )
    cust.append(
        pa.table(
            {
                "id": list(range(customers)),
                "email": [f"user{i}@example.com" for i in range(customers)],
                "name": [f"User {i}" for i in range(customers)],
                "ip": [f"10.0.{i // 256}.{i % 256}" for i in range(customers)],
            }
        )
    )
    tick = lake.create_table(
        "support.tickets",
        pa.schema(
            [
                ("id", pa.int64()),
                ("customer_id", pa.int64()),
                ("event_time", pa.timestamp("us", tz="UTC")),
                ("csat", pa.float64()),
                ("team", pa.string()),
            ]
        ),
        owner="support-team",
        source="kafka support.ticket_events",
    )
    tick.append(
        pa.table(
            {
                "id": list(range(tickets)),
                "customer_id": [i % customers for i in range(tickets)],
                "event_time": [start + timedelta(minutes=i) for i in range(tickets)],
                "csat": [float("nan") if i == 0 else (i % 5) / 4 for i in range(tickets)],
                "team": ["emea" if i % 2 else "amer" for i in range(tickets)],
            }
        ),
        app_transactions={
            progress.kafka_offset("tickets", "support.ticket_events", 0): tickets // 2,
            progress.kafka_offset("tickets", "support.ticket_events", 1): tickets - tickets // 2,
        },
    )
    inv = lake.create_table(
        "billing.invoices",
        pa.schema(
            [
                ("id", pa.int64()),
                ("customer_id", pa.int64()),
                ("amount", pa.decimal128(18, 6)),
                ("day", pa.date32()),
                ("tags", pa.list_(pa.string())),
                ("meta", pa.struct([("plan", pa.string()), ("seats", pa.int32())])),
                ("raw", pa.binary()),
            ]
        ),
        partition_by=["day"],
        owner="billing-team",
        source="postgres billing.invoices",
    )
    inv.append(
        pa.table(
            {
                "id": [1, 2, 3],
                "customer_id": [0, 1, 1],
                "amount": pa.array(
                    [Decimal("10.50"), Decimal("0.000001"), Decimal("99.99")], pa.decimal128(18, 6)
                ),
                "day": [start.date(), start.date(), (start + timedelta(days=1)).date()],
                "tags": [["a", "b"], [], None],
                "meta": [{"plan": "pro", "seats": 3}, None, {"plan": "free", "seats": 1}],
                "raw": [b"\x00\xff", None, b"hi"],
            },
            schema=pa.schema(
                [
                    ("id", pa.int64()),
                    ("customer_id", pa.int64()),
                    ("amount", pa.decimal128(18, 6)),
                    ("day", pa.date32()),
                    ("tags", pa.list_(pa.string())),
                    ("meta", pa.struct([("plan", pa.string()), ("seats", pa.int32())])),
                    ("raw", pa.binary()),
                ]
            ),
        )
    )
    daily = lake.create_table(
        "billing.daily_revenue",
        pa.schema([("day", pa.date32()), ("revenue", pa.decimal128(38, 6))]),
        owner="billing-team",
        source="model billing.daily_revenue",
    )
    daily.append(
        pa.table({"day": [start.date()], "revenue": pa.array([Decimal("10.500001")], pa.decimal128(38, 6))}),
        app_transactions={
            progress.model_input("billing.invoices"): inv.version,
            progress.MODEL_DEFINITION: 7,
        },
    )

    store = TokenStore(tokens_path(project))
    _, admin = store.create("root", Role.admin)
    _, support_reader = store.create("ana", Role.reader, ["support"])
    _, support_pii = store.create("lead", Role.reader, ["support"], pii=True)
    _, billing_reader = store.create("bob", Role.reader, ["billing"])
    gone, revoked = store.create("old", Role.reader, ["support", "billing"])
    store.revoke(gone.id)
    return SampleProject(project, admin, support_reader, support_pii, billing_reader, revoked)


@contextmanager
def http_client(project: Project) -> Iterator[Client]:
    """``shoal serve``'s HTTP API on a free port in this process (no wire listener), and a client."""
    from harness.ports import free_port

    settings = project.settings.serve.model_copy(update={"port": free_port(), "pg_port": None})
    with (
        serving_in_thread(project, settings),
        Client(base_url=f"http://127.0.0.1:{settings.port}", timeout=60) as c,
    ):
        yield c


def auth(token: str) -> dict[str, str]:
    """The bearer header of ``token``."""
    return {"Authorization": f"Bearer {token}"}

"""Leads models (DuckDB SQL) against the independent Python reference, on simulated CRM and
warehouse rows in their lake types, and billing revenue from the billing reference calculator."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from test_billing_models import to_arrow  # the billing tests build usage_events the same way

from shoal.usecases.billing import BillingSimulator
from shoal.usecases.billing import reference as billing_reference
from shoal.usecases.billing.demo_step import simulator as billing_demo
from shoal.usecases.billing.models import MODEL_SPECS as BILLING_SPECS
from shoal.usecases.leads import reference
from shoal.usecases.leads.models import FUNNEL, MODEL_SPECS, PIPELINE, PQL, REVENUE_BY_SOURCE
from shoal.usecases.leads.schema import DATABASES, SPECS
from shoal.usecases.leads.simulator import LeadsData, LeadsSimulator, rows_as_dicts

SQL = {m.name: m.sql for m in MODEL_SPECS}


def _dicts(data: LeadsData, database: str) -> dict[str, list[dict[str, Any]]]:
    return {t: rows_as_dicts(SPECS[t].column_names, rows) for t, rows in data.database(database).items()}


def _register(con: duckdb.DuckDBPyConnection, data: LeadsData) -> None:
    for database in DATABASES:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {database}_replica")
        for table, rows in data.database(database).items():
            spec = SPECS[table]
            arrow = pa.Table.from_pylist(rows_as_dicts(spec.column_names, rows), schema=spec.arrow_schema)
            con.register(f"_{table}", arrow)
            con.execute(f"CREATE TABLE {database}_replica.{table} AS SELECT * FROM _{table}")


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = con.execute(sql).to_arrow_table().to_pylist()
    return result


def _same(got: Sequence[dict[str, Any]], want: Sequence[dict[str, Any]], key: Sequence[str]) -> None:
    by_key = {tuple(r[k] for k in key): r for r in got}
    assert len(by_key) == len(got) == len(want)
    for w in want:
        g = by_key[tuple(w[k] for k in key)]
        for column, value in w.items():
            if isinstance(value, float):
                assert g[column] == pytest.approx(value, abs=1e-9), (w, g)
            else:
                assert g[column] == value, (column, w, g)


@pytest.fixture(scope="module")
def data() -> LeadsData:
    # 3,000 customers of a 2-day billing window: hundreds of accounts with usage, every stage
    sim = BillingSimulator(seed=5, start=datetime(2026, 9, 1, tzinfo=UTC), days=2, users=3000)
    return LeadsSimulator(sim, window_days=21).generate()


@pytest.fixture(scope="module")
def con(data: LeadsData) -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    _register(c, data)
    return c


def test_pql_matches_reference(con: duckdb.DuckDBPyConnection, data: LeadsData) -> None:
    want = reference.pql(_dicts(data, "crm"), _dicts(data, "warehouse"))
    got = _rows(con, SQL[PQL])
    assert len(want) > 100
    assert any(r["qualified"] for r in want)
    assert not all(r["qualified"] for r in want)
    _same(got, want, ["account_id"])
    assert sorted(r["rank"] for r in got) == list(range(1, len(got) + 1))


def test_funnel_matches_reference(con: duckdb.DuckDBPyConnection, data: LeadsData) -> None:
    want = reference.funnel(_dicts(data, "crm"), _dicts(data, "warehouse"))
    got = _rows(con, SQL[FUNNEL])
    assert sum(r["signups"] for r in want) == 3000
    assert sum(r["paid"] for r in want) > 0
    _same(got, want, ["cohort", "signup_source"])


def test_pipeline_matches_reference(con: duckdb.DuckDBPyConnection, data: LeadsData) -> None:
    want = reference.pipeline(_dicts(data, "crm"))
    got = _rows(con, SQL[PIPELINE])
    assert {r["stage"] for r in want} >= {"prospecting", "closed_won", "closed_lost"}
    _same(got, want, ["rep_id", "stage"])


def test_revenue_by_source_matches_billing_reference() -> None:
    """The demo's own (small) billing simulation: revenue by source from the billing models' invoice
    lines equals the billing reference calculator's lines joined in Python with the CRM's sources."""
    sim = billing_demo(small=True)
    events = list(sim.events())
    leads = LeadsSimulator(sim).generate()
    c = duckdb.connect()
    c.register("arrow_tbl", to_arrow(events))
    c.execute("CREATE SCHEMA billing")
    c.execute("CREATE VIEW billing.usage_events AS SELECT * FROM arrow_tbl")
    for spec in BILLING_SPECS:
        c.execute(f"CREATE TABLE {spec.name} AS {spec.sql}")
    _register(c, leads)
    got = _rows(c, SQL[REVENUE_BY_SOURCE])
    lines = billing_reference.compute(events).invoice_lines
    want = reference.revenue_by_source(lines, _dicts(leads, "crm")["users"])
    assert len({r["signup_source"] for r in want}) >= 4
    assert "unknown" not in {r["signup_source"] for r in want}
    _same(got, want, ["billing_month", "signup_source", "currency"])


def test_crm_users_are_the_billing_customers() -> None:
    sim = billing_demo(small=True)
    leads = LeadsSimulator(sim).generate()
    billed = {(e.user_id, e.team_id) for e in sim.events()}
    crm = {(u[0], u[2]) for u in leads.crm["users"]}
    assert billed <= crm
    assert len(crm) == 300
    # same seed, same rows
    assert LeadsSimulator(sim).generate() == leads

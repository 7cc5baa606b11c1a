"""Locked-down served SQL: escape attempts are refused by the parser check, the engine is closed
off on its own (external access, configuration), grants and personal-data masking hold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from shoal.query.guard import DeniedTable, RefusedQuery, UnknownTable, check_query
from shoal.serve.executor import QueryTimeout, ResultTooLarge, ServerBusy
from shoal.serve.state import ServeState
from shoal.serve.testing import SampleProject, sample_project
from shoal.serve.tokens import Token

SECRET_FILE = "/etc/hostname"

#: (attempt, what the refusal names) — kinds from the issue, in upper/lower case, inside CTEs,
#: subqueries, comments, multiple statements and prepared-statement form.
ESCAPES = [
    (f"select * from read_csv('{SECRET_FILE}')", "read_csv"),
    (f"SELECT * FROM READ_CSV_AUTO('{SECRET_FILE}')", "read_csv_auto"),
    (f"select * from read_parquet('{SECRET_FILE}')", "read_parquet"),
    (f"select * from read_text('{SECRET_FILE}')", "read_text"),
    (f"select content from read_blob('{SECRET_FILE}')", "read_blob"),
    (f"select read_text('{SECRET_FILE}')", "read_text"),
    ("select * from glob('/etc/*')", "glob"),
    ("select * from delta_scan('/tmp/lake/support/customers')", "delta_scan"),
    ("select * from parquet_scan('x.parquet')", "parquet_scan"),
    ("select getenv('HOME')", "getenv"),
    ("SELECT GETENV('AWS_SECRET_ACCESS_KEY')", "getenv"),
    (f"select * from '{SECRET_FILE}'", "not allowed"),
    ('select * from "/etc/passwd"', "not allowed"),
    ("select * from 'https://example.com/x.parquet'", "not allowed"),
    (f"with x as (select * from read_csv('{SECRET_FILE}')) select * from x", "read_csv"),
    (f"select * from (select * from (select * from read_csv('{SECRET_FILE}')))", "read_csv"),
    (f"select (select count(*) from read_text('{SECRET_FILE}'))", "read_text"),
    (f"select 1 where exists (select * from read_csv('{SECRET_FILE}'))", "read_csv"),
    (f"select * from support.customers, lateral (select * from read_csv('{SECRET_FILE}'))", "read_csv"),
    (f"select 1 /* harmless */ union all select count(*) from read_csv('{SECRET_FILE}')", "read_csv"),
    ("select 1; copy support.customers to '/tmp/out.csv'", "one statement"),
    ("select 1; drop view support.customers", "one statement"),
    ("copy support.customers to '/tmp/out.csv'", "COPY"),
    ("COPY (select 1) TO '/tmp/out.parquet' (FORMAT parquet)", "COPY"),
    ("attach '/tmp/other.duckdb' as other", "ATTACH"),
    ("ATTACH 'dbname=postgres' AS pg (TYPE postgres)", "ATTACH"),
    ("install httpfs", "INSTALL"),
    ("LOAD httpfs", "COMMAND"),
    ("set enable_external_access = true", "SET"),
    ("SET memory_limit = '100GB'", "SET"),
    ("reset lock_configuration", "served, not"),
    ("pragma enable_profiling", "PRAGMA"),
    ("call pragma_version()", "served, not"),
    ("insert into support.customers values (1, 'a', 'b', 'c')", "INSERT"),
    ("update support.customers set email = 'x'", "UPDATE"),
    ("delete from support.customers", "DELETE"),
    ("create table support.evil as select 1", "CREATE"),
    ("create or replace view support.customers as select 1", "CREATE"),
    ("drop view support.customers", "DROP"),
    ("export database '/tmp/dump'", "could not parse"),
    ("select * from query('select 1')", "query"),
    ("select * from duckdb_settings()", "duckdb_settings"),
    ("select * from information_schema.views", "unknown table"),
    ("select sql from duckdb_views()", "duckdb_views"),
    ("select * from memory.support.customers", "three-part"),
    ("select * from support.customers version as of 0", "time travel"),
    ("select * from billing.invoices", "billing.invoices"),
    ("with b as (select * from billing.invoices) select count(*) from b", "billing.invoices"),
    (
        "select * from support.customers where id in (select customer_id from billing.invoices)",
        "billing.invoices",
    ),
    ("select * from support.customers where id = ? union select 1, * from read_csv(?)", "read_csv"),
    ("select current_setting('allowed_directories')", "current_setting"),
    ("", "empty"),
]


def rows(
    state: ServeState, token: Token, sql: str, params: list[object] | None = None
) -> list[dict[str, Any]]:
    with state.executor.query(token, sql, params) as result:
        return [r for b in result.batches() for r in b.to_pylist()]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> SampleProject:
    return sample_project(tmp_path_factory.mktemp("served"))


@pytest.fixture(scope="module")
def state(served: SampleProject) -> ServeState:
    with ServeState(served.project) as st:
        yield st


def test_at_least_thirty_escapes_listed() -> None:
    assert len(ESCAPES) >= 30


@pytest.mark.parametrize(("sql", "named"), ESCAPES)
def test_escape_attempt_is_refused_and_the_engine_keeps_serving(
    state: ServeState, served: SampleProject, sql: str, named: str
) -> None:
    token = state.tokens.authenticate(served.support_reader)
    with pytest.raises((RefusedQuery, DeniedTable, UnknownTable)) as err:
        rows(state, token, sql, [1, SECRET_FILE] if "?" in sql else None)
    assert named.lower() in str(err.value).lower()
    assert rows(state, token, "select count(*) as n from support.customers") == [{"n": 50}]


def test_the_engine_refuses_on_its_own_without_the_parser_check(
    state: ServeState, served: SampleProject
) -> None:
    """Defence in depth: SQL straight to a reader's engine (no guard) still cannot escape."""
    box = state.executor.sandbox(state.tokens.authenticate(served.support_reader).access)
    cur = box.cursor()
    try:
        with pytest.raises(duckdb.PermissionException):
            cur.execute(f"select * from read_csv('{SECRET_FILE}')").fetchall()
        with pytest.raises(duckdb.PermissionException):
            cur.execute("attach '/tmp/x.duckdb' as x")
        with pytest.raises(duckdb.Error, match="locked"):
            cur.execute("set enable_external_access = true")
        with pytest.raises(duckdb.Error, match="locked"):
            cur.execute("set memory_limit = '100GB'")
        with pytest.raises(duckdb.CatalogException):
            cur.execute("select * from billing.invoices").fetchall()
        # the lake itself stays readable through the views
        assert cur.execute("select count(*) from support.tickets").fetchone() == (200,)
    finally:
        cur.close()


def test_personal_data_is_masked_with_a_stable_hash(state: ServeState, served: SampleProject) -> None:
    def as_(secret: str, sql: str) -> list[dict[str, Any]]:
        return rows(state, state.tokens.authenticate(secret), sql)

    sql = "select id, email, name, ip from support.customers where id < 2 order by id"
    masked = as_(served.support_reader, sql)
    clear = as_(served.support_pii, sql)
    admin = as_(served.admin, sql)
    assert clear == admin
    assert clear[0]["email"] == "user0@example.com"
    assert all(str(r["email"]).startswith("pii_") for r in masked)
    assert "user0" not in str(masked)
    assert masked[0]["email"] != masked[1]["email"]
    # stable: the same value hashes the same in every query, so joins and distinct counts work
    again = as_(served.support_reader, "select email from support.customers where id = 0")
    assert again[0]["email"] == masked[0]["email"]
    joined = as_(
        served.support_reader,
        "select count(*) as n from support.customers a join support.customers b on a.email = b.email",
    )
    assert joined == [{"n": 50}]


def test_catalog_views_list_only_granted_tables(state: ServeState, served: SampleProject) -> None:
    def names(secret: str) -> set[str]:
        sql = "select table_schema || '.' || table_name as t from information_schema.tables"
        return {r["t"] for r in rows(state, state.tokens.authenticate(secret), sql)}

    assert names(served.support_reader) == {"support.customers", "support.tickets"}
    assert names(served.billing_reader) == {"billing.invoices", "billing.daily_revenue"}
    assert names(served.admin) >= {"support.customers", "billing.invoices"}
    assert not any(n.startswith("_shoal") for n in names(served.admin))


def test_limits_timeout_rows_and_queue(tmp_path: Path, served: SampleProject) -> None:
    settings = served.project.settings.serve.model_copy(
        update={
            "limits": served.project.settings.serve.limits.model_copy(
                update={"timeout_s": 0.5, "max_rows": 25_000, "max_concurrent": 1, "queue_timeout_s": 0.2}
            )
        }
    )
    with ServeState(served.project, settings) as st:
        token = st.tokens.authenticate(served.admin)
        with pytest.raises(QueryTimeout, match=r"longer than 0\.5 s"):
            rows(st, token, "select sum(a.range * b.range) from range(200000) a, range(200000) b")
        with pytest.raises(ResultTooLarge, match="more than 25000 rows"):
            rows(st, token, "select * from range(100000)")
        with st.executor.query(token, "select * from range(10)") as held:
            with pytest.raises(ServerBusy, match="slots stayed busy"):
                rows(st, token, "select 1")
            assert sum(b.num_rows for b in held.batches()) == 10
        assert rows(st, token, "select 42 as x") == [{"x": 42}]
        st.query_log.flush()
    log = served.project.lake.table("_shoal.query_log").to_arrow().to_pylist()
    outcomes = [e["outcome"] for e in log if e["token_id"] == token.id]
    assert {"timeout", "too_large", "busy", "ok"} <= set(outcomes)
    ok = next(e for e in log if e["query"] == "select 42 as x")
    assert ok["rows"] == 1
    assert ok["duration_ms"] > 0
    assert ok["token_name"] == "root"


def test_guard_runs_the_checked_tree_not_the_client_text() -> None:
    checked = check_query(
        "select 1 -- */ ; drop view x\nfrom support.t",
        granted=lambda t: True,
        known={"support.t"},
    )
    assert checked.sql == "SELECT 1 FROM support.t"
    assert checked.tables == frozenset({"support.t"})

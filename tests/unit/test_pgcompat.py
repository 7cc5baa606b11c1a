"""Postgres catalog syntax (psql \\d, SQLAlchemy reflection) turned into what the served engine answers."""

from __future__ import annotations

import duckdb
import pytest
import sqlglot

from shoal.query import pgcompat
from shoal.query.guard import RefusedQuery, check_query


def rewritten(sql: str) -> str:
    return pgcompat.rewrite(sqlglot.parse_one(sql, read="duckdb")).sql("duckdb")


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "select 1 from t where c.relname OPERATOR(pg_catalog.~) '^(x)$' COLLATE pg_catalog.default",
            "SELECT 1 FROM t WHERE REGEXP_MATCHES(c.relname, '^(x)$')",
        ),
        ("select a OPERATOR(pg_catalog.=) b", "SELECT a = b"),
        ("select pg_catalog.pg_get_userbyid(1)", "SELECT pg_shoal.pg_get_userbyid(1)"),
        ("select pg_catalog.pg_table_is_visible(1)", "SELECT PG_TABLE_IS_VISIBLE(1)"),
        ("select 'support.t'::regclass", "SELECT pg_shoal.regclass_oid('support.t')"),
        ("select c.oid::pg_catalog.regclass::pg_catalog.text", "SELECT pg_shoal.regclass_name(c.oid)"),
        ("select x::pg_catalog.regtype::pg_catalog.text", "SELECT pg_shoal.format_type(x, NULL)"),
        ("select x::pg_catalog.int2[]", "SELECT CAST(x AS SMALLINT[])"),
        ("select * from pg_catalog.pg_class", "SELECT * FROM pg_shoal.pg_class"),
        (
            "select * from information_schema.tables",
            "SELECT * FROM pg_shoal.information_schema_tables AS tables",
        ),
        (
            "select pg_catalog.pg_class.relname from pg_catalog.pg_class",
            "SELECT pg_class.relname FROM pg_shoal.pg_class",
        ),
        ("select * from pg_catalog.generate_series(1, 3) s", "SELECT * FROM GENERATE_SERIES(1, 3) AS s(s)"),
        ("select current_setting('server_version')", "SELECT pg_shoal.pg_setting('server_version')"),
        # a setting shoal does not serve is left for the guard to refuse
        ("select current_setting('allowed_directories')", "SELECT CURRENT_SETTING('allowed_directories')"),
        # anything else is untouched
        ("select a ~ 'x', b from support.tickets", "SELECT REGEXP_MATCHES(a, 'x'), b FROM support.tickets"),
    ],
)
def test_rewrite(sql: str, expected: str) -> None:
    assert rewritten(sql) == expected


def test_the_guard_checks_what_the_rewrite_made() -> None:
    known = {"support.tickets"}
    # a forbidden function behind the pg_catalog prefix is still refused once unqualified
    with pytest.raises(RefusedQuery, match="read_csv"):
        check_query(
            "select * from pg_catalog.read_csv('/etc/passwd')",
            granted=lambda t: True,
            known=known,
            pg_compat=True,
        )
    with pytest.raises(RefusedQuery, match="current_setting"):
        check_query(
            "select current_setting('allowed_directories')",
            granted=lambda t: True,
            known=known,
            pg_compat=True,
        )
    checked = check_query(
        "select relname from pg_catalog.pg_class", granted=lambda t: True, known=known, pg_compat=True
    )
    assert checked.sql == "SELECT relname FROM pg_shoal.pg_class"
    assert checked.tables == frozenset()


def test_installed_catalog_reports_lake_views_as_tables() -> None:
    db = duckdb.connect()
    db.execute(
        "CREATE SCHEMA support; CREATE TABLE support.raw(id BIGINT, amount DECIMAL(18,2), ts TIMESTAMPTZ)"
    )
    db.execute("CREATE VIEW support.tickets AS SELECT * FROM support.raw")
    db.execute("CREATE VIEW support.helper AS SELECT 1 AS one")
    pgcompat.install(db, ["support.tickets"])

    def run(sql: str) -> list[tuple[object, ...]]:
        return db.execute(
            check_query(sql, granted=lambda t: True, known={"support.tickets"}, pg_compat=True).sql
        ).fetchall()

    kinds = dict(
        run("select relname, relkind from pg_catalog.pg_class c where relname in ('tickets', 'helper')")
    )
    assert kinds == {"tickets": "r", "helper": "v"}  # only served lake tables become tables
    assert run("select count(*) from pg_catalog.pg_class where relname like 'pg_%'") == [(0,)]
    assert run("select tablename from pg_catalog.pg_tables where schemaname = 'support'") == [
        ("raw",),
        ("tickets",),
    ]
    oid = run("select 'support.tickets'::regclass")[0][0]
    assert oid is not None
    assert run(f"select {oid}::regclass::text") == [("support.tickets",)]
    types = run(
        "select a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) from pg_catalog.pg_attribute a "
        f"where a.attrelid = {oid} order by a.attnum"
    )
    assert types == [("id", "bigint"), ("amount", "numeric(18,2)"), ("ts", "timestamp with time zone")]
    assert run("select current_setting('server_version_num')") == [("160000",)]
    assert "pg_shoal" not in {r[0] for r in run("select schema_name from information_schema.schemata")}
    assert run("select * from pg_catalog.pg_policy") == []

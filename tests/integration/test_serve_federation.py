"""Served federation (ADR 0019 through `shoal serve`): a declared database is a namespace of its
own. A reader granted the lake namespace but not the database's gets 403 naming the table over
HTTP and 42501 over the wire; an admin and a reader granted it query it live and join it with lake
tables, personal-data columns of the lake staying masked for the reader. Run on an embedded SQLite
file and on the machine's MariaDB."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml

from harness import free_ports
from harness.databases import DBInfo
from harness.serve_sample import SampleProject, auth, sample_project
from shoal.project import Project
from shoal.serve.server import Server, serving_in_thread
from shoal.serve.state import tokens_path
from shoal.serve.tokens import Role, TokenStore

pytestmark = pytest.mark.integration

#: crm.accounts: one row per support customer with an even id (50 customers in the sample)
ACCOUNTS = [(cid, f"plan{cid % 3}", f"user{cid}@example.com") for cid in range(0, 50, 2)]
JOIN = (
    "select c.email, a.plan, count(t.id) as tickets from crm.accounts a "
    "join support.customers c on c.id = a.customer_id "
    "left join support.tickets t on t.customer_id = c.id group by all order by c.email"
)


def _sqlite(directory: Path) -> dict[str, Any]:
    with sqlite3.connect(directory / "crm.db") as db:
        db.execute("create table accounts (customer_id bigint primary key, plan text, contact text)")
        db.executemany("insert into accounts values (?, ?, ?)", ACCOUNTS)
    return {"kind": "sqlite", "database": "crm.db"}


def _mysql(info: DBInfo) -> dict[str, Any]:
    import pymysql

    con = pymysql.connect(
        host=info.host, port=info.port, user=info.user, password=info.password, database=info.database
    )
    with con, con.cursor() as cur:
        cur.execute("create table accounts (customer_id bigint primary key, plan text, contact text)")
        cur.executemany("insert into accounts values (%s, %s, %s)", ACCOUNTS)
        con.commit()
    return {
        "kind": "mysql",
        "host": info.host,
        "port": info.port,
        "user": info.user,
        "database": info.database,
    }


@pytest.fixture(params=["sqlite", "mysql"])
def project(request: pytest.FixtureRequest, tmp_path: Path) -> SampleProject:
    sample = sample_project(tmp_path / "p")
    if request.param == "sqlite":
        declared = _sqlite(sample.project.dir)
    else:
        info: DBInfo = request.getfixturevalue("mysql_database")
        declared = _mysql(info)
        if info.password:
            request.getfixturevalue("monkeypatch").setenv("SHOAL_DB_CRM_PASSWORD", info.password)
    path = sample.project.dir / "shoal.yaml"
    config = yaml.safe_load(path.read_text())
    config["databases"] = {"crm": declared}
    path.write_text(yaml.safe_dump(config))
    return SampleProject(**{**sample.__dict__, "project": Project.load(sample.project.dir)})


@pytest.fixture
def server(project: SampleProject) -> Iterator[Server]:
    http_port, pg_port = free_ports(2)
    settings = project.project.settings.serve.model_copy(update={"port": http_port, "pg_port": pg_port})
    with serving_in_thread(project.project, settings) as srv:
        yield srv


def http_query(server: Server, token: str, sql: str) -> httpx.Response:
    return httpx.post(
        f"http://127.0.0.1:{server.settings.port}/v1/query",
        json={"sql": sql},
        headers=auth(token),
        timeout=60,
    )


def wire(server: Server, token: str) -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(
        host="127.0.0.1",
        port=server.settings.pg_port,
        user="x",
        password=token,
        dbname="lake",
        connect_timeout=10,
    )


def test_database_grants_over_http_and_wire(server: Server, project: SampleProject) -> None:
    _, crm_reader = TokenStore(tokens_path(project.project)).create("crm", Role.reader, ["support", "crm"])

    # granted the lake namespace only: the database's tables are refused, named, on both doors
    r = http_query(server, project.support_reader, "select count(*) from crm.accounts")
    assert r.status_code == 403
    assert r.json()["error"]["message"] == "access to table crm.accounts is not granted"
    r = http_query(server, project.support_reader, JOIN)
    assert r.status_code == 403
    assert "crm.accounts" in r.json()["error"]["message"]
    with wire(server, project.support_reader) as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=r"crm\.accounts is not granted"):
            c.execute("select * from crm.accounts")
        c.rollback()
        assert c.execute("select count(*) from support.customers").fetchone() == (50,)

    # the admin and a reader granted crm read it live and join it with lake tables
    want = [[f"user{cid}@example.com", f"plan{cid % 3}", 4] for cid, _, _ in ACCOUNTS]
    admin_rows = http_query(server, project.admin, JOIN).json()["rows"]
    assert sorted(admin_rows) == sorted(want)
    reader_rows = http_query(server, crm_reader, JOIN).json()["rows"]
    assert len(reader_rows) == len(want)
    # personal data of the lake stays masked for the reader, joined or not (stable hash per value)
    assert all(row[0].startswith("pii_") for row in reader_rows)
    masked = http_query(server, crm_reader, "select email from support.customers where id = 0").json()["rows"]
    assert [masked[0][0], "plan0", 4] in reader_rows
    with wire(server, crm_reader) as c:
        assert sorted(list(r) for r in c.execute(JOIN).fetchall()) == sorted(reader_rows)

    # the engine serving crm refuses the scanners' own ways out, and a write to the database
    for sql in (
        f"select * from sqlite_scan('{project.project.dir / 'crm.db'}', 'accounts')",
        "select * from mysql_query('crm', 'select 1')",
        "attach 'x.db' as y (type sqlite)",
        "insert into crm.accounts values (99, 'x', 'y')",
        "select * from crm.main.accounts",
    ):
        r = http_query(server, crm_reader, sql)
        assert r.status_code == 403, (sql, r.text)
    assert http_query(server, project.admin, "select count(*) from crm.accounts").json()["rows"] == [
        [len(ACCOUNTS)]
    ]

"""Live federation: MariaDB and PostgreSQL tables queried next to lake tables, with filters,
projections and limits pushed down as each database's own log shows; unreachable databases,
wrong credentials and `shoal databases`."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from harness.cli import invoke_shoal
from harness.ports import free_port
from harness.private_databases import PrivateMariaDB, PrivatePostgres
from harness.sync_helpers import mysql_decl, pg_decl, write_project
from shoal.project import Project
from shoal.query import QueryError


@pytest.fixture
def company(maria: PrivateMariaDB, pg: PrivatePostgres, tmp_path: Path) -> Iterator[Project]:
    """crm (MariaDB): users; warehouse (PostgreSQL): page_views; lake: billing.invoices."""
    tag = uuid.uuid4().hex[:8]
    crm, wh = f"crm_{tag}", f"wh_{tag}"
    maria.execute(f"CREATE DATABASE {crm}")
    maria.execute(
        f"CREATE TABLE {crm}.users (id INT PRIMARY KEY, email VARCHAR(60), team_id INT, plan VARCHAR(10))"
    )
    maria.execute(
        f"INSERT INTO {crm}.users VALUES "
        + ", ".join(
            f"({i}, 'u{i}@example.com', {i % 7}, '{'pro' if i % 3 == 0 else 'free'}')" for i in range(1, 301)
        )
    )
    pg.execute(f"CREATE DATABASE {wh}")
    pg.execute("CREATE TABLE page_views (id BIGINT PRIMARY KEY, user_id INT, path TEXT, ms INT)", wh)
    pg.execute(
        "INSERT INTO page_views SELECT g, 1 + g % 300, '/p/' || (g % 17), g % 1000 "
        "FROM generate_series(1, 5000) g",
        wh,
    )
    project = Project.load(
        write_project(tmp_path / "proj", {"crm": mysql_decl(maria, crm), "warehouse": pg_decl(pg, wh)})
    )
    invoices = project.lake.create_table(
        "billing.invoices", pa.schema([("user_id", pa.int32()), ("amount", pa.decimal128(10, 2))])
    )
    invoices.append(
        pa.table(
            {
                "user_id": pa.array(list(range(1, 301)), pa.int32()),
                "amount": pa.array([f"{i}.00" for i in range(1, 301)], pa.string()).cast(
                    pa.decimal128(10, 2)
                ),
            }
        )
    )
    yield project
    maria.execute(f"DROP DATABASE IF EXISTS {crm}")
    pg.execute(f'DROP DATABASE IF EXISTS "{wh}" WITH (FORCE)')


def _log_after(path: Path, mark: int, pattern: str, timeout: float = 5.0) -> list[str]:
    """Lines of a database's log written after byte ``mark`` that match ``pattern``."""
    deadline = time.monotonic() + timeout
    while True:
        with open(path, "rb") as f:
            f.seek(mark)
            text = f.read().decode("utf-8", "replace")
        hits = [ln for ln in text.splitlines() if re.search(pattern, ln)]
        if hits or time.monotonic() > deadline:
            return hits
        time.sleep(0.1)


def test_join_of_lake_mysql_and_postgres_tables(company: Project) -> None:
    with company.connect() as con:
        assert con.unreachable == {}
        got = con.sql(
            """
            SELECT u.plan, count(DISTINCT u.id) AS users, count(*) AS views, sum(i.amount) AS billed
            FROM crm.users u
            JOIN warehouse.page_views v ON v.user_id = u.id
            JOIN billing.invoices i ON i.user_id = u.id
            WHERE u.team_id = 3
            GROUP BY u.plan ORDER BY u.plan
            """
        ).fetchall()
    # the same answer computed here, independently of any engine
    users = {i: ("pro" if i % 3 == 0 else "free") for i in range(1, 301) if i % 7 == 3}
    views: dict[int, int] = {}
    for g in range(1, 5001):
        views[1 + g % 300] = views.get(1 + g % 300, 0) + 1
    expect = {}
    for uid, plan in users.items():
        if views.get(uid):
            n, cnt, billed = expect.get(plan, (0, 0, 0))
            expect[plan] = (n + 1, cnt + views[uid], billed + uid * views[uid])
    assert [(p, u, v, int(b)) for p, u, v, b in got] == [(p, *expect[p]) for p in sorted(expect)]


def test_filters_projections_and_limits_reach_each_database(
    company: Project, maria: PrivateMariaDB, pg: PrivatePostgres
) -> None:
    my_mark, pg_mark = maria.general_log.stat().st_size, pg.log.stat().st_size
    with company.connect() as con:
        mine = con.sql("SELECT email FROM crm.users WHERE team_id = 5 AND plan = 'pro' LIMIT 3").fetchall()
        theirs = con.sql("SELECT path FROM warehouse.page_views WHERE ms > 990 LIMIT 4").fetchall()
    assert len(mine) == 3
    assert len(theirs) == 4
    # MariaDB's general log: only the needed columns, the WHERE and the LIMIT were sent
    sent = _log_after(maria.general_log, my_mark, r"FROM `crm_\w+`\.`users`")
    assert sent, "MariaDB received no query for users"
    query = sent[-1]
    assert "`team_id` = 5" in query
    assert "`plan` = 'pro'" in query
    assert "LIMIT 3" in query
    assert "SELECT *" not in query
    assert "`id`" not in query.split("FROM")[0]
    # PostgreSQL's statement log: the same for page_views
    sent = _log_after(pg.log, pg_mark, r'FROM "public"\."page_views"')
    assert sent, "PostgreSQL received no query for page_views"
    query = sent[-1]
    assert '"ms" > ' in query
    assert "LIMIT 4" in query
    assert '"user_id"' not in query


def test_unreachable_database_is_one_line_and_the_lake_still_answers(
    tmp_path: Path, company: Project
) -> None:
    settings = dict(company.settings.databases)
    down = {"kind": "mysql", "host": "127.0.0.1", "port": free_port(), "database": "crm", "user": "shoal"}
    directory = write_project(
        tmp_path / "down",
        {
            "crm": down,
            "warehouse": settings["warehouse"].model_dump(by_alias=True, exclude_none=True),
        },
    )
    (directory / "lake").symlink_to(company.dir / "lake")
    project = Project.load(directory)
    with project.connect() as con:
        assert list(con.unreachable) == ["crm"]
        reason = con.unreachable["crm"]
        assert "\n" not in reason
        assert reason.startswith("database crm (mysql shoal@127.0.0.1:")
        assert con.sql("SELECT count(*) FROM billing.invoices").fetchone() == (300,)
        assert con.sql("SELECT count(*) FROM warehouse.page_views").fetchone() == (5000,)
        with pytest.raises(QueryError, match=r"^database crm \(mysql .*\) is unreachable"):
            con.sql("SELECT * FROM crm.users")


def test_shoal_databases_lists_reachability_without_secrets(
    tmp_path: Path, company: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = f"pw-{uuid.uuid4().hex}"
    settings = company.settings.databases
    decls = {
        "crm": settings["crm"].model_dump(by_alias=True, exclude_none=True),
        "warehouse": settings["warehouse"].model_dump(by_alias=True, exclude_none=True),
        # MariaDB's root has no password: this one is refused
        "wrong": {**settings["crm"].model_dump(by_alias=True, exclude_none=True), "password_env": "WRONG_PW"},
    }
    directory = write_project(tmp_path / "dbs", decls)
    monkeypatch.setenv("WRONG_PW", secret)
    result = invoke_shoal(["databases", "--project", str(directory), "--format", "json"])
    assert result.exit_code == 1, result.output
    assert secret not in result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert rows["crm"]["reachable"] is True
    assert rows["warehouse"]["reachable"] is True
    assert rows["wrong"]["reachable"] is False
    assert rows["wrong"]["password"] == "***"
    assert "Access denied" in rows["wrong"]["detail"]
    assert "\n" not in rows["wrong"]["detail"]
    # sync with the wrong password: one line, terminal at once (no retries), no secret
    result = invoke_shoal(["sync", "wrong", "--project", str(directory)])
    assert result.exit_code == 1
    assert secret not in result.output
    assert re.search(
        r"error: database wrong \(mysql root@127\.0\.0\.1:\d+/crm_\w+\): .*Access denied", result.output
    )


def test_postgres_wrong_password_is_one_line_without_the_secret(
    tmp_path: Path, pg: PrivatePostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = f"u_{uuid.uuid4().hex[:8]}"
    pg.execute(f"CREATE ROLE {user} LOGIN PASSWORD 'right-one'")
    hba = pg.datadir / "pg_hba.conf"
    hba.write_text(f"host all {user} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    pg.execute("SELECT pg_reload_conf()")
    secret = f"wrong-{uuid.uuid4().hex}"
    monkeypatch.setenv("SHOAL_DB_WH_PASSWORD", secret)
    decl = {"kind": "postgres", "host": "127.0.0.1", "port": pg.port, "database": "postgres", "user": user}
    directory = write_project(tmp_path / "pw", {"wh": decl})
    result = invoke_shoal(["databases", "--project", str(directory), "--format", "json"])
    assert result.exit_code == 1
    assert secret not in result.output
    (row,) = json.loads(result.output)
    assert row["reachable"] is False
    assert "password authentication failed" in row["detail"]
    result = invoke_shoal(["sync", "wh", "--project", str(directory)])
    assert result.exit_code == 1
    assert secret not in result.output
    assert result.output.count("\n") == 1
    assert "password authentication failed" in result.output
    with Project.load(directory).connect() as con:  # the lake still answers
        assert "password authentication failed" in con.unreachable["wh"]
        assert secret not in con.unreachable["wh"]
        assert con.sql("SELECT 42").fetchone() == (42,)
    monkeypatch.setenv("SHOAL_DB_WH_PASSWORD", "right-one")
    result = invoke_shoal(["databases", "--project", str(directory), "--format", "json"])
    assert result.exit_code == 0, result.output

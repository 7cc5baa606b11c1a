"""Sync without change capture, on the machine's shared servers (MariaDB without a binlog): cursor
mode with delete detection, and the full-refresh mode for a table without a primary key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.databases import DBInfo, MySQLServer, PostgresServer
from harness.sync_helpers import lake_rows, rows_sorted, write_project
from shoal.lake import progress
from shoal.project import Project
from shoal.replicate import Syncer


def _decl(info: DBInfo, **sync: Any) -> dict[str, Any]:
    return {
        "kind": info.kind, "host": info.host, "port": info.port, "database": info.database,
        "user": info.user, "sync": sync,
    }  # fmt: skip


def _run(project: Project) -> Any:
    return Syncer(project.lake, project.endpoints()[0]).run()


COLUMNS = ["id", "status", "updated_at"]


def test_cursor_mode_with_delete_detection(
    tmp_path: Path, mysql_server: MySQLServer, mysql_database: DBInfo
) -> None:
    server, info = mysql_server, mysql_database

    def sql(statement: str) -> list[tuple[Any, ...]]:
        with server.connect(info.database) as con, con.cursor() as cur:
            cur.execute(statement)
            return list(cur.fetchall())

    sql("CREATE TABLE leads (id INT PRIMARY KEY, status VARCHAR(10), updated_at DATETIME(6))")
    sql(
        "INSERT INTO leads VALUES "
        + ", ".join(f"({i}, 'new', '2024-01-01 00:00:00' + INTERVAL {i} SECOND)" for i in range(1, 501))
    )
    project = Project.load(
        write_project(
            tmp_path / "p", {"crm": _decl(info, mode="cursor", chunk_rows=120, delete_check_every=2)}
        )
    )
    report = _run(project)
    table = project.lake.table("crm_replica.leads")
    source = lambda: rows_sorted(sql("SELECT id, status, updated_at FROM leads"))  # noqa: E731
    assert lake_rows(table, COLUMNS) == source()
    assert report.tables["leads"].upserted == 500
    mark = table.app_version(progress.cursor("crm", "leads"))
    assert mark is not None

    # a run with nothing new writes nothing (the rows at the mark are read again, not applied)
    version = table.version
    _run(project)
    assert table.version == version

    sql("UPDATE leads SET status = 'won', updated_at = '2024-06-01 00:00:00' WHERE id IN (3, 4)")
    sql("INSERT INTO leads VALUES (501, 'new', '2024-06-01 00:00:00')")  # same cursor value as 3 and 4
    sql("DELETE FROM leads WHERE id BETWEEN 10 AND 14")
    report = _run(project)  # the first round of a run checks deletes
    # the three new versions, and row 500 (at the old mark) read again in the same chunk
    assert report.tables["leads"].upserted == 4
    assert report.tables["leads"].deleted == 5
    assert lake_rows(table, COLUMNS) == source()
    assert table.app_version(progress.cursor("crm", "leads")) > mark


def test_full_refresh_for_a_table_without_key(
    tmp_path: Path, postgres_server: PostgresServer, postgres_database: DBInfo
) -> None:
    server, info = postgres_server, postgres_database
    with server.connect(info.database) as con:
        con.execute("CREATE TABLE events (at TIMESTAMPTZ, what TEXT, n INT)")
        con.execute("INSERT INTO events SELECT now(), 'e' || (g % 10), g FROM generate_series(1, 2500) g")
        con.execute("INSERT INTO events SELECT at, what, n FROM events WHERE n <= 5")  # duplicates
    project = Project.load(write_project(tmp_path / "p", {"wh": _decl(info, mode="full", chunk_rows=1000)}))
    report = _run(project)
    table = project.lake.table("wh_replica.events")
    assert report.tables["events"].snapshot_rows == 2505
    assert table.count() == 2505
    with server.connect(info.database) as con:
        con.execute("DELETE FROM events WHERE n > 2000")
    _run(project)
    got = sorted(r["n"] for r in table.to_arrow(columns=["n"]).to_pylist())
    assert got == sorted([*range(1, 2001), *range(1, 6)])

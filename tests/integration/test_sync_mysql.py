"""`shoal sync` of a MariaDB database with a ROW binlog (a private server): snapshot, then changes,
exactly once, with the binlog position in the same Delta commit as the rows."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from harness.cli import invoke_shoal
from harness.private_databases import PrivateMariaDB
from harness.sync_helpers import lake_rows, mysql_decl, rows_sorted, syncer_of, write_project
from shoal.errors import Terminal
from shoal.lake import progress
from shoal.project import Project
from shoal.replicate import NoPrimaryKey
from shoal.replicate.errors import ReplicationNotConfigured


def _project(tmp_path: Path, maria: PrivateMariaDB, mdb: str, **sync: Any) -> Project:
    return Project.load(write_project(tmp_path / "proj", {"crm": mysql_decl(maria, mdb, **sync)}))


COLUMNS = ["id", "name", "amount", "updated_at"]


def _source(maria: PrivateMariaDB, mdb: str) -> list[tuple[Any, ...]]:
    return rows_sorted(maria.execute(f"SELECT {', '.join(COLUMNS)} FROM {mdb}.users"))


def test_snapshot_in_chunks_then_changes_applied_once(
    tmp_path: Path, maria: PrivateMariaDB, mdb: str
) -> None:
    maria.execute(
        f"CREATE TABLE {mdb}.users (id INT PRIMARY KEY, name VARCHAR(40), amount DECIMAL(10,2), "
        "updated_at DATETIME)"
    )
    values = ", ".join(f"({i}, 'user {i}', {i}.25, '2024-01-01 00:00:00')" for i in range(1, 1001))
    maria.execute(f"INSERT INTO {mdb}.users VALUES {values}")
    project = _project(tmp_path, maria, mdb, chunk_rows=300)
    seen: list[tuple[str, int, int | None, str]] = []
    report = syncer_of(project, on_progress=lambda *a: seen.append(a)).run()

    table = project.lake.table("crm_replica.users")
    assert report.tables["users"].snapshot_rows == 1000
    assert lake_rows(table, COLUMNS) == _source(maria, mdb)
    # four chunk commits (300+300+300+100) and the commit that hands over to the binlog
    history = table.history()
    assert sum(1 for h in history if h.get("operation") == "WRITE") == 5
    snapshot_progress = [s for s in seen if s[3] == "snapshot"]
    assert snapshot_progress[-1][1:3] == (1000, 1000)
    start = table.app_version(progress.snapshot_start("crm", "users"))
    assert start is not None
    assert table.app_version(progress.binlog_position("crm", "users")) == start

    # inserts, updates, deletes and a key change, in several transactions
    maria.execute(f"INSERT INTO {mdb}.users VALUES (1001, 'new', 1.00, '2024-02-01 00:00:00')")
    maria.execute(f"UPDATE {mdb}.users SET amount = amount * 2 WHERE id <= 10")
    maria.execute(f"DELETE FROM {mdb}.users WHERE id BETWEEN 500 AND 509")
    maria.execute(f"UPDATE {mdb}.users SET id = 5000 WHERE id = 999")
    maria.execute(f"UPDATE {mdb}.users SET name = 'twice' WHERE id = 1001")
    report = syncer_of(project).run()
    assert lake_rows(table, COLUMNS) == _source(maria, mdb)
    assert report.tables["users"].deleted == 11  # ten deletes and the old key of 999
    pos = table.app_version(progress.binlog_position("crm", "users"))
    assert pos is not None
    assert pos > start

    # nothing new: no commit; the position stays
    version = table.version
    syncer_of(project).run()
    assert table.version == version

    # a source that hands back transactions the lake already has (a crash after the Delta commit,
    # before anything else was recorded): each is dropped by its position, none applied twice
    maria.execute(f"UPDATE {mdb}.users SET amount = amount + 1 WHERE id = 1")
    replayer = syncer_of(project)
    real_changes = replayer.source.changes
    replayer.source.changes = lambda since, tables, n: real_changes(start, tables, n)  # type: ignore[method-assign]
    replayer.run()
    rows = {r[0]: r for r in lake_rows(table, COLUMNS)}
    assert rows[1][2] == Decimal("3.50")  # 1.25 * 2 + 1, not + 1 twice or * 2 twice
    assert lake_rows(table, COLUMNS) == _source(maria, mdb)
    version = table.version
    replayer = syncer_of(project)
    replayer.source.changes = lambda since, tables, n: real_changes(start, tables, n)  # type: ignore[method-assign]
    replayer.run()
    assert table.version == version


def test_type_mapping_is_exact(tmp_path: Path, maria: PrivateMariaDB, mdb: str) -> None:
    maria.execute(
        f"""CREATE TABLE {mdb}.typed (
            id BIGINT UNSIGNED PRIMARY KEY, d DECIMAL(20,4), dt DATETIME(6), ts TIMESTAMP(6) NULL,
            dd DATE, j JSON, e ENUM('free','pro'), b BOOLEAN, bl BLOB, s VARCHAR(20) CHARACTER SET utf8mb4,
            n INT NULL)"""
    )
    insert = (
        f"INSERT INTO {mdb}.typed VALUES (%s, 12345678901234.5678, '2024-01-02 03:04:05.123456', "
        "'2024-01-02 03:04:05.5', '2024-02-29', '{\"a\": [1, 2]}', 'pro', TRUE, x'00ff', %s, NULL)"
    )
    with maria.connect() as con, con.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")
        cur.execute(insert, [18446744073709551615, "snap 😀"])
    project = _project(tmp_path, maria, mdb)
    syncer_of(project).run()
    with maria.connect() as con, con.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")
        cur.execute(insert, [18446744073709551614, "cdc 🦈"])  # same values through the binlog
        cur.execute(f"INSERT INTO {mdb}.typed (id) VALUES (7)")
    syncer_of(project).run()

    table = project.lake.table("crm_replica.typed")
    schema = table.schema
    assert schema.field("id").type == pa.decimal128(20, 0)
    assert schema.field("d").type == pa.decimal128(20, 4)
    assert schema.field("dt").type == pa.timestamp("us")
    assert schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert schema.field("b").type == pa.bool_()
    assert schema.field("bl").type == pa.binary()
    rows = {r["id"]: r for r in table.to_arrow().to_pylist()}
    for key, text in ((Decimal(18446744073709551615), "snap 😀"), (Decimal(18446744073709551614), "cdc 🦈")):
        r = rows[key]
        assert r["d"] == Decimal("12345678901234.5678")
        assert r["dt"] == datetime(2024, 1, 2, 3, 4, 5, 123456)
        assert r["ts"] == datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=UTC)
        assert r["dd"] == date(2024, 2, 29)
        assert r["j"].replace(" ", "") == '{"a":[1,2]}'
        assert r["e"] == "pro"
        assert r["b"] is True
        assert r["bl"] == b"\x00\xff"
        assert r["s"] == text
        assert r["n"] is None
    assert rows[Decimal(7)]["d"] is None
    assert rows[Decimal(7)]["b"] is None


def test_add_column_upstream_adds_it_downstream(tmp_path: Path, maria: PrivateMariaDB, mdb: str) -> None:
    maria.execute(f"CREATE TABLE {mdb}.plans (id INT PRIMARY KEY, name VARCHAR(20))")
    maria.execute(f"INSERT INTO {mdb}.plans VALUES (1, 'free'), (2, 'pro')")
    project = _project(tmp_path, maria, mdb)
    syncer_of(project).run()
    maria.execute(f"ALTER TABLE {mdb}.plans ADD COLUMN price DECIMAL(8,2) NULL")
    maria.execute(f"INSERT INTO {mdb}.plans VALUES (3, 'team', 49.00)")
    maria.execute(f"UPDATE {mdb}.plans SET price = 9.50 WHERE id = 2")
    syncer_of(project).run()
    table = project.lake.table("crm_replica.plans")
    assert table.schema.field("price").type == pa.decimal128(8, 2)
    got = sorted((r["id"], r["name"], r["price"]) for r in table.to_arrow().to_pylist())
    assert got == [(1, "free", None), (2, "pro", Decimal("9.50")), (3, "team", Decimal("49.00"))]


def test_table_without_primary_key_is_a_clear_error(tmp_path: Path, maria: PrivateMariaDB, mdb: str) -> None:
    maria.execute(f"CREATE TABLE {mdb}.events (at DATETIME, what VARCHAR(10))")
    project = _project(tmp_path, maria, mdb)
    with pytest.raises(NoPrimaryKey, match=r"table events has no primary key") as info:
        syncer_of(project).run()
    assert isinstance(info.value, Terminal)
    assert "\n" not in str(info.value)


def test_a_server_without_binlog_is_named(tmp_path: Path, maria: PrivateMariaDB, mdb: str) -> None:
    """The shared MariaDB on this machine runs without a binlog: the error says what to change."""
    from harness.databases import MySQLServer

    shared = MySQLServer()
    name = f"nolog_{uuid.uuid4().hex[:8]}"
    try:
        with shared.connect() as con, con.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name}")
            cur.execute(f"CREATE TABLE {name}.t (id INT PRIMARY KEY)")
            cur.execute("SELECT @@log_bin")
            if cur.fetchone()[0]:
                pytest.skip("the shared MariaDB has a binlog here")
    except Exception as exc:  # pragma: no cover - machine without the shared server
        pytest.skip(f"shared MariaDB unavailable: {exc}")
    try:
        decl = {
            "kind": "mysql",
            "host": shared.host,
            "port": shared.port,
            "database": name,
            "user": shared.user,
        }
        project = Project.load(write_project(tmp_path / "p2", {"crm": decl}))
        with pytest.raises(ReplicationNotConfigured, match=r"log_bin=OFF"):
            syncer_of(project).run()
    finally:
        with shared.connect() as con, con.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name}")


def test_sync_command_reports_json_and_names_unknown_databases(
    tmp_path: Path, maria: PrivateMariaDB, mdb: str
) -> None:
    maria.execute(f"CREATE TABLE {mdb}.teams (id INT PRIMARY KEY, name VARCHAR(20))")
    maria.execute(f"INSERT INTO {mdb}.teams VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    project = _project(tmp_path, maria, mdb)
    result = invoke_shoal(["sync", "crm", "teams", "--project", str(project.dir), "--format", "json"])
    assert result.exit_code == 0, result.output
    import json

    report = json.loads(result.output)
    assert report["database"] == "crm"
    assert report["tables"][0]["lake_table"] == "crm_replica.teams"
    assert report["tables"][0]["snapshot_rows"] == 3
    result = invoke_shoal(["sync", "nope", "--project", str(project.dir)])
    assert result.exit_code == 1
    assert "no database 'nope' in shoal.yaml (declared: crm)" in result.output
    assert invoke_shoal(["sync", "--help"]).exit_code == 0
    assert invoke_shoal(["databases", "--help"]).exit_code == 0


def test_purged_binlog_is_a_terminal_one_line_error(tmp_path: Path, maria: PrivateMariaDB, mdb: str) -> None:
    """Runs last in this module: it purges the server's binlogs."""
    maria.execute(f"CREATE TABLE {mdb}.t (id INT PRIMARY KEY)")
    project = _project(tmp_path, maria, mdb)
    syncer_of(project).run()
    maria.execute(f"INSERT INTO {mdb}.t VALUES (1)")
    maria.execute("FLUSH BINARY LOGS")
    current = maria.execute("SHOW MASTER STATUS")[0][0]
    deadline = time.monotonic() + 10
    while len(maria.execute("SHOW BINARY LOGS")) > 1:  # a finished dump thread may still hold the log
        assert time.monotonic() < deadline, maria.execute("SHOW BINARY LOGS")
        maria.execute(f"PURGE BINARY LOGS TO '{current}'")
        time.sleep(0.2)
    with pytest.raises(
        ReplicationNotConfigured, match=r"no longer on the server: delete the replica"
    ) as info:
        syncer_of(project).run()
    assert isinstance(info.value, Terminal)


def test_following_keeps_one_binlog_dump_open(tmp_path: Path, maria: PrivateMariaDB, mdb: str) -> None:
    """`--follow` reads every round from the same dump connection (a new one per round cost more
    CPU than the rows, ADR 0035), and rows committed while it runs arrive in order."""
    import threading

    maria.execute(f"CREATE TABLE {mdb}.ticks (id INT PRIMARY KEY, v INT)")
    project = _project(tmp_path, maria, mdb)
    syncer = syncer_of(project)
    syncer.run()  # the snapshot, then nothing to apply
    table = project.lake.table("crm_replica.ticks")
    mark = maria.general_log.stat().st_size
    stop = threading.Event()
    follower = threading.Thread(target=lambda: syncer_of(project).run(follow=True, stop=stop, poll_s=0.05))
    follower.start()
    try:
        for i in range(1, 6):
            maria.execute(f"INSERT INTO {mdb}.ticks VALUES ({i}, {i})")
            deadline = time.monotonic() + 30
            while table.count() < i and time.monotonic() < deadline:
                time.sleep(0.05)
            assert table.count() == i
        maria.execute(f"UPDATE {mdb}.ticks SET v = 0 WHERE id = 1")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and lake_rows(table, ["id", "v"])[0] != (1, 0):
            time.sleep(0.05)
    finally:
        stop.set()
        follower.join(30)
    assert lake_rows(table, ["id", "v"]) == rows_sorted(maria.execute(f"SELECT id, v FROM {mdb}.ticks"))
    with open(maria.general_log, "rb") as log:
        log.seek(mark)
        dumps = log.read().count(b"Binlog Dump")
    assert dumps == 1

"""`shoal sync` of a PostgreSQL database with wal_level=logical (a private server): snapshot, then
pgoutput changes applied exactly once with the LSN in the same Delta commit as the rows."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from harness.private_databases import PrivatePostgres
from harness.sync_helpers import lake_rows, pg_decl, rows_sorted, syncer_of, write_project
from shoal.lake import progress
from shoal.project import Project
from shoal.replicate import NoPrimaryKey
from shoal.replicate.postgres import lsn_to_int


def _project(tmp_path: Path, pg: PrivatePostgres, pdb: str, **sync: Any) -> Project:
    return Project.load(write_project(tmp_path / "proj", {"warehouse": pg_decl(pg, pdb, **sync)}))


COLUMNS = ["id", "user_id", "path", "at"]


def _source(pg: PrivatePostgres, pdb: str) -> list[tuple[Any, ...]]:
    return rows_sorted(pg.execute(f"SELECT {', '.join(COLUMNS)} FROM sessions", pdb))


def test_snapshot_then_pgoutput_changes_exactly_once(tmp_path: Path, pg: PrivatePostgres, pdb: str) -> None:
    pg.execute("CREATE TABLE sessions (id BIGINT PRIMARY KEY, user_id INT, path TEXT, at TIMESTAMPTZ)", pdb)
    pg.execute(
        "INSERT INTO sessions SELECT g, g % 50, '/p/' || g, "
        "TIMESTAMPTZ '2024-01-01 00:00+00' + g * INTERVAL '1 min' FROM generate_series(1, 2000) g",
        pdb,
    )
    project = _project(tmp_path, pg, pdb, chunk_rows=700)
    report = syncer_of(project).run()
    table = project.lake.table("warehouse_replica.sessions")
    assert report.tables["sessions"].snapshot_rows == 2000
    assert lake_rows(table, COLUMNS) == _source(pg, pdb)
    start = table.app_version(progress.lsn("warehouse", "sessions"))
    assert start is not None

    pg.execute("INSERT INTO sessions VALUES (3000, 1, '/new', now())", pdb)
    pg.execute("UPDATE sessions SET path = path || '?x' WHERE id <= 20", pdb)
    pg.execute("DELETE FROM sessions WHERE id BETWEEN 100 AND 149", pdb)
    pg.execute("UPDATE sessions SET id = 4000 WHERE id = 1999", pdb)
    with pg.connect(pdb) as con, con.transaction():  # one transaction, several changes to one key
        con.execute("INSERT INTO sessions VALUES (5000, 2, '/tx', now())")
        con.execute("UPDATE sessions SET user_id = 99 WHERE id = 5000")
        con.execute("DELETE FROM sessions WHERE id = 1")
    report = syncer_of(project).run()
    assert lake_rows(table, COLUMNS) == _source(pg, pdb)
    assert report.tables["sessions"].deleted == 52  # 50 + key change of 1999 + id 1
    pos = table.app_version(progress.lsn("warehouse", "sessions"))
    assert pos is not None
    assert pos > start

    # the slot was advanced to what the lake holds: the server can free that WAL
    confirmed = pg.execute(
        "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'shoal_warehouse'", pdb
    )
    assert lsn_to_int(confirmed[0][0]) >= pos

    # the slot rewound behind the lake (a crash after the Delta commit, before the advance):
    # the transactions come again and are dropped by their LSN
    pg.execute("UPDATE sessions SET user_id = user_id + 1000 WHERE id = 2", pdb)
    syncer = syncer_of(project)
    syncer.source.acknowledge = lambda position: None  # type: ignore[method-assign]
    syncer.run()
    version = table.version
    rows = {r[0]: r for r in lake_rows(table, COLUMNS)}
    assert rows[2][1] == 1002
    syncer_of(project).run()  # the slot still holds that transaction: replayed, dropped by its LSN
    assert table.version == version
    assert lake_rows(table, COLUMNS) == _source(pg, pdb)


def test_postgres_type_mapping_is_exact(tmp_path: Path, pg: PrivatePostgres, pdb: str) -> None:
    pg.execute("CREATE TYPE plan AS ENUM ('free', 'pro')", pdb)
    pg.execute(
        """CREATE TABLE typed (id INT PRIMARY KEY, d NUMERIC(20,4), big NUMERIC, ts TIMESTAMP, tz TIMESTAMPTZ,
           dd DATE, j JSONB, js JSON, e plan, b BOOLEAN, bl BYTEA, s TEXT, n INT, f DOUBLE PRECISION)""",
        pdb,
    )
    insert = (
        "INSERT INTO typed VALUES (%s, 12345678901234.5678, 123456789012345678901234567890.123456789, "
        "'2024-01-02 03:04:05.123456', '2024-01-02 05:04:05.5+02', '2024-02-29', "
        '\'{"b": 1, "a": [1, 2]}\', '
        "'{\"keep\":  \"spacing\"}', 'pro', TRUE, '\\x00ff'::bytea, %s, NULL, 0.1)"
    )
    with pg.connect(pdb) as con:
        con.execute(insert, [1, "snap 😀"])
    project = _project(tmp_path, pg, pdb)
    syncer_of(project).run()
    with pg.connect(pdb) as con:
        con.execute(insert, [2, "cdc 🦈"])
        con.execute("INSERT INTO typed (id) VALUES (3)")
    syncer_of(project).run()
    table = project.lake.table("warehouse_replica.typed")
    schema = table.schema
    assert schema.field("d").type == pa.decimal128(20, 4)
    assert schema.field("big").type == pa.string()
    assert schema.field("ts").type == pa.timestamp("us")
    assert schema.field("tz").type == pa.timestamp("us", tz="UTC")
    assert schema.field("bl").type == pa.binary()
    rows = {r["id"]: r for r in table.to_arrow().to_pylist()}
    for key, text in ((1, "snap 😀"), (2, "cdc 🦈")):
        r = rows[key]
        assert r["d"] == Decimal("12345678901234.5678")
        assert r["big"] == "123456789012345678901234567890.123456789"
        assert r["ts"] == datetime(2024, 1, 2, 3, 4, 5, 123456)
        assert r["tz"] == datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=UTC)
        assert r["dd"] == date(2024, 2, 29)
        assert r["j"] == '{"a": [1, 2], "b": 1}'
        assert r["js"] == '{"keep":  "spacing"}'
        assert r["e"] == "pro"
        assert r["b"] is True
        assert r["bl"] == b"\x00\xff"
        assert r["s"] == text
        assert r["n"] is None
        assert r["f"] == 0.1
    assert all(v is None for k, v in rows[3].items() if k != "id")


def test_add_column_and_no_primary_key(tmp_path: Path, pg: PrivatePostgres, pdb: str) -> None:
    pg.execute("CREATE TABLE plans (id INT PRIMARY KEY, name TEXT)", pdb)
    pg.execute("INSERT INTO plans VALUES (1, 'free'), (2, 'pro')", pdb)
    pg.execute("CREATE TABLE loose (at TIMESTAMP, what TEXT)", pdb)
    project = _project(tmp_path, pg, pdb)
    with pytest.raises(NoPrimaryKey, match=r"table loose has no primary key"):
        syncer_of(project).run()
    syncer_of(project).run(["plans"])
    pg.execute("ALTER TABLE plans ADD COLUMN price NUMERIC(8,2)", pdb)
    pg.execute("INSERT INTO plans VALUES (3, 'team', 49.00)", pdb)
    pg.execute("UPDATE plans SET price = 9.5 WHERE id = 2", pdb)
    syncer_of(project).run(["plans"])
    table = project.lake.table("warehouse_replica.plans")
    got = sorted((r["id"], r["name"], r["price"]) for r in table.to_arrow().to_pylist())
    assert got == [(1, "free", None), (2, "pro", Decimal("9.50")), (3, "team", Decimal("49.00"))]


def test_a_quiet_table_does_not_hold_the_slot_back(tmp_path: Path, pg: PrivatePostgres, pdb: str) -> None:
    pg.execute("CREATE TABLE busy (id INT PRIMARY KEY, n INT)", pdb)
    pg.execute("CREATE TABLE quiet (id INT PRIMARY KEY, n INT)", pdb)
    pg.execute("INSERT INTO quiet VALUES (1, 1)", pdb)
    project = _project(tmp_path, pg, pdb)
    syncer_of(project).run()
    quiet = project.lake.table("warehouse_replica.quiet")
    before = quiet.app_version(progress.lsn("warehouse", "quiet"))
    for i in range(3):
        pg.execute(f"INSERT INTO busy VALUES ({i}, {i})", pdb)
    syncer = syncer_of(project)
    syncer.quiet_advance_s = 0.0
    syncer.run()
    busy_pos = project.lake.table("warehouse_replica.busy").app_version(progress.lsn("warehouse", "busy"))
    quiet_pos = quiet.app_version(progress.lsn("warehouse", "quiet"))
    assert before is not None
    assert busy_pos is not None
    assert quiet_pos == busy_pos > before
    assert quiet.count() == 1
    confirmed = pg.execute(
        "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'shoal_warehouse'", pdb
    )
    assert lsn_to_int(confirmed[0][0]) >= busy_pos

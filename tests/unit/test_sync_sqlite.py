"""A SQLite file as a declared database (the demo's embedded stand-in): settings, exact types through
``shoal sync`` (cursor and full modes), live federation, and a missing file as one line."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from shoal.config import DatabaseSettings
from shoal.errors import ConfigError
from shoal.project import Project
from shoal.query.engine import QueryError
from shoal.query.federation import DatabaseUnreachable
from shoal.replicate import NoPrimaryKey, Syncer
from shoal.replicate.probe import probe

DDL = """CREATE TABLE things (
    id INTEGER PRIMARY KEY, small INT, big BIGINT, price DECIMAL(12,2), ratio REAL, name VARCHAR(20),
    doc TEXT, flag BOOLEAN, raw BLOB, day DATE, updated_at DATETIME)"""
ROWS: list[tuple[Any, ...]] = [
    (
        1,
        7,
        2**62,
        "12.34",
        0.5,
        "plain",
        '{"a": 1}',
        1,
        b"\x00\xff",
        "2026-10-01",
        "2026-10-01 10:00:00.000000",
    ),
    (2, None, None, "99999999.99", None, "🦈 shoal", None, 0, None, None, "2026-10-01 10:00:00.000000"),
    # an integer given to a TEXT column, a text to an INT column (stored by their column affinity)
    (3, "-1", -5, "0.10", -1.25, "", 42, None, b"", "1999-12-31", "2026-10-01 11:00:00.000000"),
]


def _project(tmp_path: Path, **sync: Any) -> Project:
    decl: dict[str, Any] = {"kind": "sqlite", "database": "ops/crm.db"}
    if sync:
        decl["sync"] = sync
    (tmp_path / "shoal.yaml").write_text(
        yaml.safe_dump({"name": "t", "lake": {"root": "lake"}, "databases": {"crm": decl}})
    )
    return Project.load(tmp_path)


def _db(tmp_path: Path) -> sqlite3.Connection:
    (tmp_path / "ops").mkdir(exist_ok=True)
    con = sqlite3.connect(tmp_path / "ops" / "crm.db")
    con.execute(DDL)
    con.executemany(f"INSERT INTO things VALUES ({', '.join('?' * 11)})", ROWS)
    con.execute("CREATE TABLE no_key (label TEXT, n INT)")
    con.executemany("INSERT INTO no_key VALUES (?, ?)", [("a", 1), ("b", 2)])
    con.commit()
    return con


def _sync(project: Project, *tables: str) -> Any:
    return Syncer(project.lake, project.endpoints()[0]).run(tables)


def test_settings_sqlite_defaults_to_cursor_and_refuses_cdc() -> None:
    assert DatabaseSettings(kind="sqlite", database="x.db").sync.mode == "cursor"
    assert DatabaseSettings(kind="sqlite", database="x.db", sync={"mode": "full"}).sync.mode == "full"
    with pytest.raises(ValueError, match="sqlite has no change log"):
        DatabaseSettings(kind="sqlite", database="x.db", sync={"mode": "cdc"})
    with pytest.raises(ValueError, match="mysql needs a user"):
        DatabaseSettings(kind="mysql", database="crm")


def test_a_cdc_sqlite_declaration_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        _project(tmp_path, mode="cdc")
    assert "databases.crm" in str(exc.value)
    assert "\n" not in str(exc.value)


def test_exact_types_and_cursor_changes(tmp_path: Path) -> None:
    con = _db(tmp_path)
    project = _project(tmp_path, delete_check_every=1)
    endpoint = project.endpoints()[0]
    assert endpoint.path == tmp_path / "ops" / "crm.db"  # relative to the project
    assert probe(endpoint).reachable
    _sync(project, "things")
    table = project.lake.table("crm_replica.things")
    schema = table.to_arrow().schema
    assert schema.field("small").type == pa.int32()
    assert schema.field("big").type == pa.int64()
    assert schema.field("price").type == pa.decimal128(12, 2)
    assert schema.field("ratio").type == pa.float64()
    assert schema.field("flag").type == pa.bool_()
    assert schema.field("raw").type == pa.binary()
    assert schema.field("day").type == pa.date32()
    assert schema.field("updated_at").type == pa.timestamp("us")
    got = sorted(table.to_arrow().to_pylist(), key=lambda r: r["id"])
    assert got[0] == {
        "id": 1, "small": 7, "big": 2**62, "price": Decimal("12.34"), "ratio": 0.5, "name": "plain",
        "doc": '{"a": 1}', "flag": True, "raw": b"\x00\xff", "day": date(2026, 10, 1),
        "updated_at": datetime(2026, 10, 1, 10),
    }  # fmt: skip
    assert got[1]["price"] == Decimal("99999999.99")
    assert got[1]["name"] == "🦈 shoal"
    assert got[1]["small"] is None
    assert got[2]["flag"] is None
    assert got[2]["doc"] == "42"
    assert got[2]["small"] == -1
    assert got[2]["raw"] == b""

    # an update after the mark, an insert and a delete reach the lake on the next round
    con.execute("UPDATE things SET name = 'renamed', updated_at = '2026-10-02 00:00:00.000000' WHERE id = 2")
    con.execute("INSERT INTO things (id, name, updated_at) VALUES (4, 'new', '2026-10-02 00:00:00.000000')")
    con.execute("DELETE FROM things WHERE id = 3")
    con.commit()
    _sync(project, "things")
    names = {r["id"]: r["name"] for r in table.to_arrow(columns=["id", "name"]).to_pylist()}
    assert names == {1: "plain", 2: "renamed", 4: "new"}


def test_a_table_without_key_needs_full_mode(tmp_path: Path) -> None:
    _db(tmp_path)
    with pytest.raises(NoPrimaryKey, match="no_key has no primary key"):
        _sync(_project(tmp_path), "no_key")
    (tmp_path / "full_project").mkdir()
    (tmp_path / "full_project" / "ops").symlink_to(tmp_path / "ops")
    full = _project(tmp_path / "full_project", mode="full")
    _sync(full, "no_key")
    assert sorted(full.lake.table("crm_replica.no_key").to_arrow().to_pylist(), key=lambda r: r["n"]) == [
        {"label": "a", "n": 1},
        {"label": "b", "n": 2},
    ]


def test_federated_next_to_the_lake_and_missing_file_is_one_line(tmp_path: Path) -> None:
    _db(tmp_path)
    project = _project(tmp_path)
    _sync(project, "things")
    con = project.connect()
    try:
        joined = con.sql(
            "SELECT count(*) FROM crm.things AS live JOIN crm_replica.things AS lake USING (id) "
            "WHERE live.name = lake.name"
        ).fetchone()
    finally:
        con.close()
    assert joined == (3,)

    (tmp_path / "ops" / "crm.db").rename(tmp_path / "ops" / "moved.db")
    result = probe(project.endpoints()[0])
    assert not result.reachable
    assert result.detail.endswith("is unreachable: no such file")
    con = project.connect()
    try:
        assert "crm" in con.unreachable
        assert con.sql("SELECT count(*) FROM crm_replica.things").fetchone() == (3,)  # the lake still answers
        with pytest.raises(
            QueryError, match=r"^database crm \(sqlite .*/ops/crm\.db\) is unreachable: no such file$"
        ):
            con.sql("SELECT * FROM crm.things")
    finally:
        con.close()
    assert not (tmp_path / "ops" / "crm.db").exists()  # attaching never creates an empty file
    with pytest.raises(DatabaseUnreachable):
        project.endpoints()[0].check_port()

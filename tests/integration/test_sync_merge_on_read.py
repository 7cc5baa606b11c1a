"""Merge-on-read replicas (``sync.layout: merge-on-read``, ADR 0040) of a private MariaDB and
PostgreSQL: rounds append their changes, and every reader -- Table.to_arrow, the SQL views of
shoal sql / shoal.connect, time travel -- sees the source's rows between compactions and after
them; TRUNCATE and DROP COLUMN keep their meaning; a copy-on-write replica turns merge-on-read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.cli import invoke_shoal
from harness.sync_helpers import ScratchDB, lake_rows, rows_sorted, write_project
from shoal.lake.morcompact import tail_rows
from shoal.project import Project
from shoal.replicate import Syncer, SyncError

COLUMNS = ["id", "name", "qty"]
MOR = {"layout": "merge-on-read", "compact_every_s": 0}


class Upstream:
    def __init__(self, db: ScratchDB, tmp_path: Path) -> None:
        self.db, self.dir = db, tmp_path / "proj"
        self.declare(**MOR)

    def declare(self, **sync: Any) -> None:
        self.project = Project.load(write_project(self.dir, {"src": self.db.decl(**sync)}))

    def sql(self, statement: str) -> list[tuple[Any, ...]]:
        return self.db.sql(statement)

    def sync(self) -> None:
        Syncer(self.project.lake, self.project.endpoints()[0]).run()

    def source(self) -> list[tuple[Any, ...]]:
        return rows_sorted(self.sql("SELECT id, name, qty FROM items"))

    def through_sql(self, version: int | None = None) -> list[tuple[Any, ...]]:
        travel = f" VERSION AS OF {version}" if version is not None else ""
        with self.project.connect(databases=False) as con:
            return rows_sorted(con.sql(f"SELECT id, name, qty FROM src_replica.items{travel}").fetchall())


@pytest.fixture
def upstream(private_db: ScratchDB, tmp_path: Path) -> Upstream:
    return Upstream(private_db, tmp_path)


def test_readers_see_the_source_between_and_after_compactions(upstream: Upstream) -> None:
    up = upstream
    up.sql("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20), qty INT)")
    up.sql("INSERT INTO items VALUES " + ", ".join(f"({i}, 'item {i}', {i})" for i in range(1, 501)))
    up.sync()
    table = up.project.lake.table("src_replica.items")
    assert table.layout() is not None
    assert tail_rows(table) == 0  # the snapshot is the base

    up.sql("INSERT INTO items VALUES (900, 'new', 1)")
    up.sql("UPDATE items SET qty = qty + 100 WHERE id % 50 = 0")
    up.sql("DELETE FROM items WHERE id BETWEEN 20 AND 29")
    up.sql("UPDATE items SET id = 1000 WHERE id = 499")  # a key change: delete and insert
    up.sync()
    after_first = table.version
    first = up.source()
    assert tail_rows(table) > 0  # changes were appended, not merged
    assert lake_rows(table, COLUMNS) == first
    assert up.through_sql() == first

    up.sql("UPDATE items SET name = 'again' WHERE id % 50 = 0")  # keys changed in the last round too
    up.sql("DELETE FROM items WHERE id = 900")
    up.sql("INSERT INTO items VALUES (20, 'back', 20)")  # deleted in the last round, back now
    up.sync()
    assert lake_rows(table, COLUMNS) == up.source()
    assert up.through_sql() == up.source()
    assert up.through_sql(after_first) == first  # time travel resolves that version's rows

    result = invoke_shoal(["sync", "src", "items", "--compact", "--project", str(up.dir), "--format", "json"])
    assert result.exit_code == 0, result.output
    done = json.loads(result.output)
    assert [(c["table"], c["change_rows"] > 0) for c in done] == [("src_replica.items", True)]
    assert tail_rows(table) == 0
    assert lake_rows(table, COLUMNS) == up.source()
    assert up.through_sql() == up.source()

    up.sql("UPDATE items SET qty = 0 WHERE id = 1")
    up.sync()
    assert lake_rows(table, COLUMNS) == up.source()


def test_truncate_and_drop_column_in_merge_on_read(upstream: Upstream) -> None:
    up = upstream
    up.sql("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20), qty INT, note VARCHAR(20))")
    up.sql("INSERT INTO items VALUES " + ", ".join(f"({i}, 'item {i}', {i}, 'n{i}')" for i in range(1, 101)))
    up.sync()
    table = up.project.lake.table("src_replica.items")
    up.sql("UPDATE items SET qty = 0 WHERE id <= 10")
    up.sync()
    up.sql("TRUNCATE TABLE items")
    up.sql("INSERT INTO items VALUES (1, 'again', 11, 'x'), (2, 'two', 22, 'y')")
    up.sync()
    assert lake_rows(table, COLUMNS) == up.source() == [(1, "again", 11), (2, "two", 22)]

    up.sql("ALTER TABLE items DROP COLUMN note")
    up.sql("INSERT INTO items VALUES (3, 'three', 33)")
    up.sql("UPDATE items SET qty = 12 WHERE id = 1")
    up.sync()
    got = {r["id"]: r["note"] for r in table.to_arrow().to_pylist()}
    assert got == {1: None, 2: "y", 3: None}  # NULL where written after the drop, as copy-on-write
    assert lake_rows(table, COLUMNS) == up.source()


def test_a_copy_on_write_replica_turns_merge_on_read_not_back(upstream: Upstream) -> None:
    up = upstream
    up.declare()  # copy-on-write, the default
    up.sql("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20), qty INT)")
    up.sql("INSERT INTO items VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3)")
    up.sync()
    table = up.project.lake.table("src_replica.items")
    assert table.layout() is None

    up.declare(**MOR)
    up.sql("UPDATE items SET qty = 20 WHERE id = 2")
    up.sql("DELETE FROM items WHERE id = 3")
    up.sync()
    assert table.layout() is not None
    assert tail_rows(table) == 2
    assert lake_rows(table, COLUMNS) == up.source() == [(1, "a", 1), (2, "b", 20)]
    # the old files lack the layout's columns: they are base files, rewritten where keys changed
    Syncer(up.project.lake, up.project.endpoints()[0]).compact()
    assert tail_rows(table) == 0
    assert lake_rows(table, COLUMNS) == up.source()

    up.declare()
    refused = r"src_replica\.items is merge-on-read by \['id'\], not copy-on-write"
    with pytest.raises(SyncError, match=refused):
        up.sync()

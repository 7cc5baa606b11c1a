"""Upstream DDL while a replica follows the source's change log (private MariaDB and PostgreSQL):
TRUNCATE empties the replica in a commit that carries the position; DROP COLUMN keeps the column,
NULL in rows written from then on, with every other column where it belongs (ADR 0035)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from harness.sync_helpers import ScratchDB, lake_rows, rows_sorted, syncer_of, write_project
from shoal.lake import progress
from shoal.project import Project


class Upstream:
    """One source database: how to run SQL in it, its project, its replica's position key."""

    def __init__(self, db: ScratchDB, tmp_path: Path) -> None:
        self.db, self.kind = db, db.kind
        self.project = Project.load(write_project(tmp_path / "proj", {"src": db.decl()}))

    def sql(self, statement: str) -> list[tuple[Any, ...]]:
        return self.db.sql(statement)

    def position(self, table: str) -> int | None:
        key = (progress.binlog_position if self.kind == "mysql" else progress.lsn)("src", table)
        return self.project.lake.table(f"src_replica.{table}").app_version(key)


@pytest.fixture
def upstream(private_db: ScratchDB, tmp_path: Path) -> Upstream:
    return Upstream(private_db, tmp_path)


def test_truncate_empties_the_replica_with_the_position(upstream: Upstream) -> None:
    up = upstream
    up.sql("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20), qty INT)")
    up.sql("INSERT INTO items VALUES " + ", ".join(f"({i}, 'item {i}', {i})" for i in range(1, 201)))
    syncer_of(up.project).run()
    table = up.project.lake.table("src_replica.items")
    assert table.count() == 200
    before = up.position("items")
    assert before is not None

    # in one round: changes before the TRUNCATE (gone with it), the TRUNCATE, rows after it
    up.sql("INSERT INTO items VALUES (500, 'late', 1)")
    up.sql("UPDATE items SET qty = 0 WHERE id <= 10")
    up.sql("TRUNCATE TABLE items")
    up.sql("INSERT INTO items VALUES (1, 'again', 11), (2, 'two', 22), (3, 'three', 33)")
    up.sql("UPDATE items SET qty = 12 WHERE id = 1")
    up.sql("DELETE FROM items WHERE id = 3")
    report = syncer_of(up.project).run()
    columns = ["id", "name", "qty"]
    assert lake_rows(table, columns) == [(1, "again", 12), (2, "two", 22)]
    assert lake_rows(table, columns) == rows_sorted(up.sql("SELECT id, name, qty FROM items"))
    after = up.position("items")
    assert after is not None
    assert after > before
    assert report.tables["items"].upserted == 2
    # the rows and the position are one commit: the overwrite
    last = table.history(limit=1)[0]
    assert last["operation"] in ("WRITE", "CREATE OR REPLACE TABLE"), last
    assert "overwrite" in str(last.get("operationParameters", {})).lower(), last

    # a TRUNCATE as the round's last change leaves the replica empty; nothing is applied twice
    up.sql("TRUNCATE TABLE items")
    syncer_of(up.project).run()
    assert table.count() == 0
    version = table.version
    syncer_of(up.project).run()
    assert table.version == version
    up.sql("INSERT INTO items VALUES (7, 'seven', 7)")
    syncer_of(up.project).run()
    assert lake_rows(table, columns) == [(7, "seven", 7)]


def test_drop_column_keeps_it_null_from_then_on(upstream: Upstream) -> None:
    up = upstream
    up.sql("CREATE TABLE plans (id INT PRIMARY KEY, name VARCHAR(20), note VARCHAR(20), price DECIMAL(8,2))")
    up.sql(
        "INSERT INTO plans VALUES (1, 'free', 'n1', 0.00), (2, 'pro', 'n2', 9.50), (3, 'team', 'n3', 49.00)"
    )
    syncer_of(up.project).run()
    table = up.project.lake.table("src_replica.plans")

    up.sql("ALTER TABLE plans DROP COLUMN note")
    # row images now have one column fewer: each value must land in its own column
    up.sql("INSERT INTO plans VALUES (4, 'enterprise', 99.00)")
    up.sql("UPDATE plans SET price = 10.00 WHERE id = 2")
    syncer_of(up.project).run()
    assert "note" in table.schema.names
    got = {r["id"]: (r["name"], r["note"], r["price"]) for r in table.to_arrow().to_pylist()}
    assert got == {
        1: ("free", "n1", Decimal("0.00")),  # untouched: keeps the value it had
        2: ("pro", None, Decimal("10.00")),  # written after the drop: NULL
        3: ("team", "n3", Decimal("49.00")),
        4: ("enterprise", None, Decimal("99.00")),
    }

    # a restarted sync (the source describes the table without it) does the same
    up.sql("UPDATE plans SET price = 50.00 WHERE id = 3")
    up.sql("DELETE FROM plans WHERE id = 1")
    syncer_of(up.project).run()
    got = {r["id"]: (r["name"], r["note"], r["price"]) for r in table.to_arrow().to_pylist()}
    assert got == {
        2: ("pro", None, Decimal("10.00")),
        3: ("team", None, Decimal("50.00")),
        4: ("enterprise", None, Decimal("99.00")),
    }
    assert lake_rows(table, ["id", "name", "price"]) == rows_sorted(
        up.sql("SELECT id, name, price FROM plans")
    )

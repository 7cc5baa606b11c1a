"""Folding small files apart from their commit (shoal.lake.smallfiles): the rows stay exactly the
same, the commit is data-neutral (the change feed skips it), and a fold whose files are gone is
never committed (no row twice)."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa

from shoal.lake import Lake, Table, smallfiles

SCHEMA = pa.schema([("day", pa.date32()), ("k", pa.string()), ("t", pa.int64()), ("x", pa.int64())])


def _table(tmp_path: Path, commits: int = 6) -> Table:
    table = Lake(str(tmp_path / "lake")).create_table("s.events", SCHEMA, partition_by=("day",))
    for i in range(commits):
        # each commit: a few rows of two days, out of t order (the fold sorts them)
        table.append(
            pa.table(
                {
                    "day": [date(2026, 1, 1), date(2026, 1, 1), date(2026, 1, 2)],
                    "k": [f"a{i}", f"b{i}", f"c{i}"],
                    "t": [100 - i, 50 + i, i],
                    "x": [i, 10 * i, 100 * i],
                },
                schema=SCHEMA,
            )
        )
    return table


def _rows(table: Table) -> list[tuple[object, ...]]:
    return sorted(
        duckdb.sql(f"SELECT day, k, t, x FROM delta_scan('{table.uri}')").fetchall(),
        key=lambda r: (str(r[0]), str(r[1])),
    )


def test_a_fold_replaces_a_partitions_small_files_by_one_with_the_same_rows(tmp_path: Path) -> None:
    table = _table(tmp_path)
    before_rows, before_version = _rows(table), table.version
    picks = smallfiles.pick(table, min_files=4, max_bytes=1 << 20, max_files=100)
    assert sorted(len(p.files) for p in picks) == [6, 6]
    jan1 = next(p for p in picks if p.partition_values == {"day": "2026-01-01"})
    done = smallfiles.rewrite(table, jan1, sort_by=("t",))
    assert done is not None
    assert done.rows == 12
    version = smallfiles.commit(table, done)
    assert version == before_version + 1
    assert _rows(table) == before_rows
    assert len(table.files()) == 6 + 1  # the other day's six, and the fold
    # data-neutral: the change feed of the fold's version is empty, the next append's is its rows
    table.append(pa.table({"day": [date(2026, 1, 1)], "k": ["z"], "t": [7], "x": [7]}, schema=SCHEMA))
    changes = table.changes_since(before_version)
    assert changes.column("k").to_pylist() == ["z"]
    # the fold's file is in t order, and its add action carries the statistics readers prune by
    log = Path(table.uri) / "_delta_log" / f"{version:020d}.json"
    actions = [json.loads(line) for line in log.read_text().splitlines()]
    (add,) = [a["add"] for a in actions if "add" in a]
    assert add["dataChange"] is False
    assert smallfiles.MARK in add["path"]
    assert json.loads(add["stats"])["minValues"]["t"] == 50
    assert json.loads(add["stats"])["maxValues"]["t"] == 100
    removes = [a["remove"] for a in actions if "remove" in a]
    assert len(removes) == 6
    assert not any(r["dataChange"] for r in removes)
    t_order = duckdb.sql(f"SELECT t FROM read_parquet('{Path(table.uri) / add['path']}')").fetchall()
    assert [r[0] for r in t_order] == sorted(r[0] for r in t_order)
    # a fold's file is not picked again: the partition has one small file that is not a fold
    assert [len(p.files) for p in smallfiles.pick(table, min_files=1, max_bytes=1 << 20, max_files=100)] in (
        [6, 1],
        [1, 6],
    )


def test_a_fold_whose_files_were_compacted_meanwhile_is_dropped(tmp_path: Path) -> None:
    table = _table(tmp_path)
    before_rows = _rows(table)
    (pick, *_) = smallfiles.pick(table, min_files=4, max_bytes=1 << 20, max_files=100)
    done = smallfiles.rewrite(table, pick)
    assert done is not None
    written = Path(table.uri) / done.add.path
    assert written.exists()
    table.compact()  # another process's compaction removes the same files first
    version = table.version
    assert smallfiles.commit(table, done) is None
    assert table.version == version  # nothing committed
    assert not written.exists()  # and the fold's file deleted: it was never referenced
    assert _rows(table) == before_rows  # no row twice


def test_pick_leaves_large_files_and_few_small_ones(tmp_path: Path) -> None:
    table = _table(tmp_path, commits=3)
    assert smallfiles.pick(table, min_files=4, max_bytes=1 << 20, max_files=100) == []
    assert smallfiles.pick(table, min_files=2, max_bytes=100, max_files=100) == []  # none small
    (first, second) = smallfiles.pick(table, min_files=2, max_bytes=1 << 20, max_files=2)
    assert len(first.files) == len(second.files) == 2  # the oldest two of three, per day


def test_files_of_different_columns_are_not_folded(tmp_path: Path) -> None:
    table = _table(tmp_path, commits=2)
    wider = SCHEMA.append(pa.field("y", pa.int64()))
    table.append(
        pa.table({"day": [date(2026, 1, 1)], "k": ["w"], "t": [1], "x": [1], "y": [1]}, schema=wider)
    )
    jan1 = next(
        p
        for p in smallfiles.pick(table, min_files=3, max_bytes=1 << 20, max_files=100)
        if p.partition_values == {"day": "2026-01-01"}
    )
    files = set(os.listdir(Path(table.uri) / "day=2026-01-01"))
    assert smallfiles.rewrite(table, jan1) is None
    assert set(os.listdir(Path(table.uri) / "day=2026-01-01")) == files  # nothing written

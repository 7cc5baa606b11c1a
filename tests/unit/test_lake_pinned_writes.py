"""Table writes dead-letter replay relies on (ADR 0026): an append built on the snapshot its caller
checked, an update of named columns only, and adding nullable columns to an existing table."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from shoal.lake import CommitConflict, Lake

SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string())])


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(str(tmp_path / "lake"))


def _rows(ids: list[int], name: str = "n") -> pa.Table:
    return pa.table({"id": ids, "name": [f"{name}{i}" for i in ids]}, schema=SCHEMA)


def test_append_on_a_checked_snapshot_conflicts_only_with_the_same_key(lake: Lake) -> None:
    t = lake.create_table("a.t", SCHEMA)
    seen = t.version
    t.append(_rows([1]), app_transactions={"other": 1})  # another writer's key: no conflict
    v = t.append(_rows([2]), app_transactions={"k": 1}, read_version=seen, commit_metadata={"why": "test"})
    assert v == seen + 2
    assert t.app_version("k") == 1
    assert t.history(1)[0]["why"] == "test"
    # a commit of key k since the snapshot the caller checked: rejected, nothing written
    with pytest.raises(CommitConflict):
        t.append(_rows([3]), app_transactions={"k": 2}, read_version=seen)
    assert sorted(t.to_arrow().column("id").to_pylist()) == [1, 2]
    assert t.app_version("k") == 1


def test_update_matched_sets_only_the_named_columns_and_inserts_nothing(lake: Lake) -> None:
    t = lake.create_table("a.t", pa.schema([*SCHEMA, pa.field("mark", pa.int32())]))
    t.append(pa.table({"id": [1, 1, 2], "name": ["x", "y", "z"], "mark": pa.nulls(3, pa.int32())}))
    src = pa.table({"id": [1, 9], "name": ["ignored", "ignored"], "mark": pa.array([7, 7], pa.int32())})
    t.update_matched(src, ["id"], ["mark"], app_transactions={"m": 3})
    rows = sorted(t.to_arrow().to_pylist(), key=lambda r: r["name"])
    assert rows == [
        {"id": 1, "name": "x", "mark": 7},
        {"id": 1, "name": "y", "mark": 7},
        {"id": 2, "name": "z", "mark": None},
    ]
    assert t.app_version("m") == 3


def test_add_columns_keeps_rows_and_is_idempotent(lake: Lake) -> None:
    t = lake.create_table("a.t", SCHEMA)
    t.append(_rows([1, 2]))
    v = t.add_columns([pa.field("extra", pa.string(), nullable=False), pa.field("id", pa.int64())])
    assert t.schema.names == ["id", "name", "extra"]
    assert t.schema.field("extra").nullable
    assert t.to_arrow().column("extra").null_count == 2
    assert t.add_columns([pa.field("extra", pa.string())]) == v  # nothing to add: no commit

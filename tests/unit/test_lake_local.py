"""Lake tables on local disk: create, append, merge, evolve, time travel, maintenance, errors."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from shoal.errors import ConfigError, NotFoundError, StorageUnavailable
from shoal.lake import Lake, SchemaMismatch, TableExists

SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string()), ("day", pa.string())])


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(str(tmp_path / "lake"))


def _rows(ids: list[int], day: str = "2026-01-01") -> pa.Table:
    return pa.table({"id": ids, "name": [f"n{i}" for i in ids], "day": [day] * len(ids)}, schema=SCHEMA)


def test_create_append_and_catalog(lake: Lake) -> None:
    t = lake.create_table(
        "sales.orders", SCHEMA, partition_by=["day"], description="orders", owner="ana", source="mysql"
    )
    t.append(_rows([1, 2, 3]))
    t.append(_rows([4], day="2026-01-02"))
    info = lake.describe("sales.orders")
    assert info.num_rows == 4
    assert info.num_files == 2
    assert info.partition_by == ["day"]
    assert (info.owner, info.source, info.description) == ("ana", "mysql", "orders")
    assert info.version == 2
    assert info.last_commit is not None
    assert [i.name for i in lake.list_tables()] == ["sales.orders"]


def test_create_twice(lake: Lake) -> None:
    lake.create_table("a.b", SCHEMA)
    with pytest.raises(TableExists):
        lake.create_table("a.b", SCHEMA, exist_ok=False)
    assert lake.create_table("a.b", SCHEMA).name == "a.b"


@pytest.mark.parametrize("bad", ["nodot", "A.b", "a.b.c", "a-b.c", ""])
def test_bad_names(lake: Lake, bad: str) -> None:
    with pytest.raises(ConfigError, match=r"namespace\.table"):
        lake.table(bad)


def test_unknown_table_names_close_matches(lake: Lake) -> None:
    lake.create_table("support.tickets", SCHEMA)
    with pytest.raises(NotFoundError, match=r"did you mean support\.tickets"):
        lake.table("support.ticket")


def test_merge_upserts_and_evolves_schema(lake: Lake) -> None:
    t = lake.create_table("a.b", SCHEMA)
    t.append(_rows([1, 2]))
    extra = pa.table({"id": [2, 3], "name": ["two", "three"], "day": ["x", "y"], "score": [0.5, 1.5]})
    t.merge(extra, keys=["id"])
    got = t.to_arrow().sort_by("id").to_pydict()
    assert got["id"] == [1, 2, 3]
    assert got["name"] == ["n1", "two", "three"]
    assert got["score"] == [None, 0.5, 1.5]


def test_append_adds_nullable_column_and_rejects_type_change(lake: Lake) -> None:
    t = lake.create_table("a.b", SCHEMA)
    t.append(_rows([1]))
    t.append(pa.table({"id": [2], "name": ["x"], "day": ["d"], "flag": [True]}))
    assert t.schema.field("flag").nullable
    assert t.to_arrow().sort_by("id")["flag"].to_pylist() == [None, True]
    before = t.version
    with pytest.raises(SchemaMismatch, match="'id' is int64 in the table but string"):
        t.append(pa.table({"id": ["oops"]}))
    assert t.version == before  # nothing committed


def test_app_transactions_travel_with_data(lake: Lake) -> None:
    t = lake.create_table("a.b", SCHEMA)
    assert t.app_version("kafka:p0") is None
    t.append(_rows([1]), app_transactions={"kafka:p0": 11, "kafka:p1": 3})
    t.append(_rows([2]), app_transactions={"kafka:p0": 12})
    assert t.app_version("kafka:p0") == 12
    assert t.app_version("kafka:p1") == 3


def test_time_travel_by_version_and_timestamp(lake: Lake) -> None:
    t = lake.create_table("a.b", SCHEMA)
    t.append(_rows([1]))
    time.sleep(0.05)
    t.append(_rows([2]))
    assert t.to_arrow(version=1)["id"].to_pylist() == [1]
    assert t.count(version=0) == 0
    assert sorted(t.to_arrow(version=2)["id"].to_pylist()) == [1, 2]
    # by timestamp: the version committed at or before that instant
    v1_ms = next(h["timestamp"] for h in t.history() if h["version"] == 1)
    at_v1 = datetime.fromtimestamp((v1_ms + 1) / 1000, tz=UTC)
    assert t.to_arrow(version=at_v1)["id"].to_pylist() == [1]
    with pytest.raises(NotFoundError):
        t.to_arrow(version=99)


def test_filter_and_overwrite_predicate(lake: Lake) -> None:
    t = lake.create_table("a.b", SCHEMA, partition_by=["day"])
    t.append(_rows([1, 2], day="d1"))
    t.append(_rows([3], day="d2"))
    t.overwrite(_rows([9], day="d1"), predicate="day = 'd1'")
    assert sorted(t.to_arrow()["id"].to_pylist()) == [3, 9]
    assert t.to_arrow(filter="id > 5")["id"].to_pylist() == [9]


def test_compact_and_vacuum(lake: Lake) -> None:
    t = lake.create_table("a.b", SCHEMA)
    for i in range(6):
        t.append(_rows([i]))
    assert lake.describe("a.b").num_files == 6
    res = t.compact()
    assert res["numFilesRemoved"] == 6
    assert lake.describe("a.b").num_files == 1
    removed = t.vacuum(retention_hours=0)
    assert len(removed) == 6
    assert sorted(t.to_arrow()["id"].to_pylist()) == list(range(6))


def test_changes_since_reports_inserts_updates_deletes(lake: Lake) -> None:
    t = lake.create_table("a.b", SCHEMA)
    t.append(_rows([1, 2]))
    v = t.version
    t.merge(_rows([2, 3]).set_column(1, "name", pa.array(["N2", "n3"])), keys=["id"])
    t.delete("id = 1")
    ch = t.changes_since(v).to_pydict()
    kinds = sorted(zip(ch["id"], ch["_change_type"], strict=True))
    assert kinds == [(1, "delete"), (2, "update_postimage"), (2, "update_preimage"), (3, "insert")]


def test_unwritable_root_is_one_clear_error(tmp_path: Path) -> None:
    # A root below a regular file cannot be created, even by root (who ignores file modes).
    (tmp_path / "a-file").write_text("")
    lake = Lake(str(tmp_path / "a-file" / "lake"))
    with pytest.raises(StorageUnavailable, match="not writable") as err:
        lake.create_table("a.b", SCHEMA)
    assert "\n" not in str(err.value)
    assert lake.table_names() == []


def test_concurrent_appends_from_two_processes(tmp_path: Path) -> None:
    """Two processes appending 30 commits each end with 60 commits and every row."""
    import subprocess
    import sys

    root = str(tmp_path / "lake")
    Lake(root).create_table("a.c", pa.schema([("writer", pa.int64()), ("i", pa.int64())]))
    code = (
        "import sys, pyarrow as pa\n"
        "from shoal.lake import Lake\n"
        "t = Lake(sys.argv[1]).table('a.c')\n"
        "w = int(sys.argv[2])\n"
        "for i in range(30):\n"
        "    t.append(pa.table({'writer': [w], 'i': [i]}))\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, root, str(w)]) for w in (1, 2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    t = Lake(root).table("a.c")
    assert t.version == 60
    rows = sorted(zip(*t.to_arrow().to_pydict().values(), strict=True))
    assert rows == sorted((w, i) for w in (1, 2) for i in range(30))


def test_merge_with_delete_keys_is_one_commit(lake: Lake) -> None:
    t = lake.create_table("a.b", SCHEMA)
    t.append(_rows([1, 2, 3]))
    before = t.version
    t.merge(_rows([2, 4]), keys=["id"], delete_keys=pa.table({"id": [1, 3]}))
    assert t.version == before + 1
    assert sorted(t.to_arrow()["id"].to_pylist()) == [2, 4]
    assert "__shoal_delete" not in t.schema.names


@pytest.mark.parametrize("with_deletes", [False, True])
def test_merge_reads_only_the_partitions_its_keys_name(lake: Lake, with_deletes: bool) -> None:
    t = lake.create_table("a.p", SCHEMA, partition_by=["day"])
    for d in range(1, 6):
        t.append(_rows([d * 10, d * 10 + 1], day=f"2026-01-0{d}"))
    t.append(pa.table({"id": [99], "name": ["n"], "day": [None]}, schema=SCHEMA))  # a NULL partition
    upsert = pa.concat_tables([_rows([20], day="2026-01-02"), _rows([77], day="2026-01-07")])
    upsert = upsert.set_column(1, "name", pa.array(["changed", "new"]))
    deletes = pa.table({"id": [31, 99], "day": ["2026-01-03", None]}) if with_deletes else None
    t.merge(upsert, keys=["id", "day"], delete_keys=deletes)
    metrics = t.history(1)[0]["operationMetrics"]
    # the touched days (and the NULL one when deleting from it), not the other days
    assert metrics["num_target_files_scanned"] == (3 if with_deletes else 1)
    assert metrics["num_target_files_skipped_during_scan"] == 6 - metrics["num_target_files_scanned"]
    got = {r["id"]: (r["name"], r["day"]) for r in t.to_arrow().to_pylist()}
    assert got[20] == ("changed", "2026-01-02")
    assert got[77] == ("new", "2026-01-07")
    assert got[10] == ("n10", "2026-01-01")
    assert (31 in got, 99 in got) == ((False, False) if with_deletes else (True, True))
    assert len(got) == (10 if with_deletes else 12)


def test_merge_prunes_date_partitions(lake: Lake) -> None:
    from datetime import date

    schema = pa.schema([("id", pa.int64()), ("v", pa.int64()), ("d", pa.date32())])
    t = lake.create_table("a.dated", schema, partition_by=["d"])
    for day in (1, 2, 3):
        t.append(pa.table({"id": [day], "v": [0], "d": [date(2026, 1, day)]}, schema=schema))
    t.merge(pa.table({"id": [2], "v": [5], "d": [date(2026, 1, 2)]}, schema=schema), keys=["id", "d"])
    assert t.history(1)[0]["operationMetrics"]["num_target_files_scanned"] == 1
    assert sorted((r["id"], r["v"]) for r in t.to_arrow().to_pylist()) == [(1, 0), (2, 5), (3, 0)]


def test_busy_tables_get_frequent_checkpoints(tmp_path: Path) -> None:
    # readers replay the log since the last checkpoint on every query
    from shoal.lake.catalog import CHECKPOINT_INTERVAL

    lake = Lake(str(tmp_path / "lake"))
    table = lake.create_table("s.busy", pa.schema([("x", pa.int64())]))
    for i in range(CHECKPOINT_INTERVAL + 1):
        table.append(pa.table({"x": [i]}))
    log = tmp_path / "lake" / "s" / "busy" / "_delta_log"
    assert (log / "_last_checkpoint").exists()
    assert table.count() == CHECKPOINT_INTERVAL + 1


def test_a_checkpoint_of_the_latest_version_is_written_only_when_behind(tmp_path: Path) -> None:
    # what a worker does once its commits pause (ADR 0057): the interval's checkpoints lag by up
    # to CHECKPOINT_INTERVAL - 1 commits, which every reader of the table replays
    from shoal.lake.catalog import CHECKPOINT_INTERVAL

    lake = Lake(str(tmp_path / "lake"))
    table = lake.create_table("s.quiet", pa.schema([("x", pa.int64())]))
    assert table.last_checkpoint() is None
    for i in range(CHECKPOINT_INTERVAL + 2):
        table.append(pa.table({"x": [i]}))
    interval = table.last_checkpoint()
    assert interval is not None
    assert interval < table.version  # the interval's, behind the latest
    assert table.checkpoint_if_behind() == table.version
    assert lake.table("s.quiet").last_checkpoint() == table.version
    assert table.checkpoint_if_behind() is None  # nothing to do: no second checkpoint written
    log = tmp_path / "lake" / "s" / "quiet" / "_delta_log"
    assert len(list(log.glob("*.checkpoint.parquet"))) == 2
    assert table.count() == CHECKPOINT_INTERVAL + 2


def test_a_handle_lists_the_log_only_when_a_commit_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a local lake the next commit's log file tells whether the table moved: a watcher asking
    for a version dozens of times a cycle must not list a log of thousands of commits each time,
    and must still see another writer's commit at once."""
    import deltalake

    schema = pa.schema([("x", pa.int64())])
    reader = Lake(str(tmp_path)).create_table("s.t", schema)
    writer = Lake(str(tmp_path)).table("s.t")
    assert reader.version == 0
    listed: list[int] = []
    real = deltalake.DeltaTable.update_incremental

    def counting(self: deltalake.DeltaTable) -> None:
        listed.append(1)
        real(self)

    monkeypatch.setattr(deltalake.DeltaTable, "update_incremental", counting)
    for _ in range(20):
        assert reader.version == 0
    assert listed == []
    writer.append(pa.table({"x": [1]}, schema=schema))
    writer.append(pa.table({"x": [2]}, schema=schema))
    assert reader.version == 2
    assert len(listed) == 1
    assert reader.count() == 2

"""The lake on a real S3-compatible server (SeaweedFS): every table operation, SQL, concurrency."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from decimal import Decimal

import pyarrow as pa
import pytest

from shoal.errors import StorageUnavailable
from shoal.lake import Lake
from shoal.query import connect_lake

pytestmark = pytest.mark.integration

SCHEMA = pa.schema([("id", pa.int64()), ("amount", pa.decimal128(18, 6)), ("day", pa.string())])


def _rows(ids: list[int], day: str = "d1") -> pa.Table:
    return pa.table(
        {
            "id": ids,
            "amount": pa.array([Decimal(i) / 100 for i in ids], pa.decimal128(18, 6)),
            "day": [day] * len(ids),
        },
        schema=SCHEMA,
    )


def test_a_checkpoint_of_the_latest_version_on_s3(s3_lake_root) -> None:  # type: ignore[no-untyped-def]
    # what a paused writer does (ADR 0057), through the object store: the hint read, the checkpoint
    # written once, the rows read back through it
    lake = Lake(s3_lake_root.root, s3_lake_root.storage_options)
    t = lake.create_table("billing.quiet", SCHEMA)
    for i in range(3):
        t.append(_rows([i]))
    assert t.last_checkpoint() is None
    assert t.checkpoint_if_behind() == t.version
    again = lake.table("billing.quiet")
    assert again.last_checkpoint() == t.version
    assert again.checkpoint_if_behind() is None
    with connect_lake(lake) as con:
        assert con.sql("select count(*) from billing.quiet").fetchone() == (3,)


def test_table_lifecycle_on_s3(s3_lake_root) -> None:  # type: ignore[no-untyped-def]
    lake = Lake(s3_lake_root.root, s3_lake_root.storage_options)
    t = lake.create_table("billing.charges", SCHEMA, partition_by=["day"], owner="finance")
    t.append(_rows([1, 2]), app_transactions={"src:p0": 2})
    time.sleep(0.05)
    t.append(_rows([3], day="d2"), app_transactions={"src:p0": 3})
    t.merge(
        _rows([3, 4], day="d2").set_column(
            1, "amount", pa.array([Decimal("9.99"), Decimal("0.01")], pa.decimal128(18, 6))
        ),
        keys=["id"],
    )
    assert t.app_version("src:p0") == 3
    assert sorted(t.to_arrow()["id"].to_pylist()) == [1, 2, 3, 4]
    assert sorted(t.to_arrow(version=1)["id"].to_pylist()) == [1, 2]
    info = lake.describe("billing.charges")
    assert (info.num_rows, info.owner, info.partition_by) == (4, "finance", ["day"])
    assert lake.table_names() == ["billing.charges"]

    with connect_lake(lake) as con:
        assert con.sql("select sum(amount) from billing.charges").fetchone() == (Decimal("10.030000"),)
        assert con.sql("select count(*) from billing.charges VERSION AS OF 2").fetchone() == (3,)
        # partition pruning: a filter on the partition column skips the other partition's files
        plan = "\n".join(
            r[1] for r in con.sql("explain analyze select * from billing.charges where day = 'd2'").fetchall()
        )
        scanned = re.search(r"Scanning Files: (\d+)/(\d+)", plan)
        assert scanned, plan
        assert int(scanned.group(1)) < int(scanned.group(2))

    for i in range(5, 9):
        t.append(_rows([i]))  # small files for compaction to merge
    before = lake.describe("billing.charges").num_files
    assert before >= 5
    t.compact()
    assert lake.describe("billing.charges").num_files < before
    removed = t.vacuum(retention_hours=0)
    assert removed  # the compacted-away files are deleted from the bucket
    assert sorted(t.to_arrow()["id"].to_pylist()) == [1, 2, 3, 4, 5, 6, 7, 8]


def test_unreachable_endpoint_is_one_clear_error() -> None:
    lake = Lake(
        "s3://nowhere/lake",
        {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"},
    )
    with pytest.raises(StorageUnavailable) as err:
        lake.create_table("a.b", SCHEMA)
    assert "\n" not in str(err.value)
    assert "127.0.0.1:9" in str(err.value) or "refused" in str(err.value).lower()


WRITER = """
import sys, pyarrow as pa, json
from shoal.lake import Lake
root, opts, w, n = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
t = Lake(root, opts).table("load.concurrent")
for i in range(n):
    t.append(pa.table({"writer": [w], "i": [i]}))
"""


def test_two_processes_append_100_commits_each(s3_lake_root) -> None:  # type: ignore[no-untyped-def]
    import json

    lake = Lake(s3_lake_root.root, s3_lake_root.storage_options)
    lake.create_table("load.concurrent", pa.schema([("writer", pa.int64()), ("i", pa.int64())]))
    args = [s3_lake_root.root, json.dumps(s3_lake_root.storage_options)]
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, *args, str(w), "100"]) for w in (1, 2)]
    assert [p.wait(timeout=600) for p in procs] == [0, 0]
    t = lake.table("load.concurrent")
    assert t.version == 200  # create is version 0
    rows = sorted(zip(*t.to_arrow().to_pydict().values(), strict=True))
    assert rows == sorted((w, i) for w in (1, 2) for i in range(100))

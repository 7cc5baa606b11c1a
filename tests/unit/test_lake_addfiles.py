"""Committing files another engine wrote (shoal.lake.addfiles): one commit, footer statistics
that never make a reader skip a matching row, schema checks before anything is committed."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import shoal
from shoal.config.settings import init_project
from shoal.lake import SchemaMismatch
from shoal.lake.addfiles import DataFile, add_files
from shoal.project import Project

TS = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("ts", TS),
        ("amount", pa.decimal128(18, 6)),
        ("name", pa.string()),
        ("day", pa.date32()),
    ]
)


def _write(table_dir: Path, rel: str, rows: dict[str, list[object]]) -> DataFile:
    data = pa.table({k: v for k, v in rows.items() if k != "day"}, schema=SCHEMA.remove(4))
    path = table_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(data, path)
    return DataFile(rel, {"day": str(rows["day"][0])})


def test_one_commit_creates_the_table_with_stats_rounded_outwards(tmp_path: Path) -> None:
    project = tmp_path / "p"
    init_project(project, "p")
    lake = Project.load(project).lake
    table_dir = Path(lake.root) / "ext" / "t"
    t0 = datetime(2026, 1, 1, 1, 2, 3, 456789, tzinfo=UTC)  # microseconds below the stats' ms
    files = [
        _write(
            table_dir,
            "job-1/day=2026-01-01/a.parquet",
            {
                "id": [1, 2],
                "ts": [t0, t0.replace(microsecond=1)],
                "amount": [Decimal("1.25"), None],
                "name": ["x", "y"],
                "day": [date(2026, 1, 1)],
            },
        ),
        _write(
            table_dir,
            "job-1/day=2026-01-02/b.parquet",
            {
                "id": [3],
                "ts": [t0.replace(day=2)],
                "amount": [Decimal("0.000001")],
                "name": [None],
                "day": [date(2026, 1, 2)],
            },
        ),
    ]
    version = add_files(lake, "ext.t", files, SCHEMA, partition_by=["day"], source="test")
    assert version == 0
    table = lake.table("ext.t")
    assert table.delta().metadata().configuration["delta.enableChangeDataFeed"] == "true"
    log = (table_dir / "_delta_log" / "00000000000000000000.json").read_text().splitlines()
    stats = [json.loads(json.loads(line)["add"]["stats"]) for line in log if '"add"' in line]
    first = next(s for s in stats if s["numRecords"] == 2)
    assert first["minValues"]["ts"] == "2026-01-01T01:02:03.000Z"
    assert first["maxValues"]["ts"] == "2026-01-01T01:02:03.457Z"  # .456789 rounded up, not down
    assert first["nullCount"] == {"id": 0, "ts": 0, "amount": 1, "name": 0}
    assert "amount" not in first["minValues"]
    with shoal.connect(project) as con:
        after = "TIMESTAMPTZ '2026-01-01 01:02:03.4565+00'"
        got = con.sql(f"SELECT id FROM ext.t WHERE ts > {after} AND day = DATE '2026-01-01'").fetchall()
        assert got == [(1,)]  # a maximum truncated to .456 would have skipped the file
        assert con.sql("SELECT sum(amount), min(day) FROM ext.t").fetchone() == (
            Decimal("1.250001"),
            date(2026, 1, 1),
        )


def test_append_checks_the_schema_and_overwrite_replaces_in_one_commit(tmp_path: Path) -> None:
    project = tmp_path / "p"
    init_project(project, "p")
    lake = Project.load(project).lake
    table_dir = Path(lake.root) / "ext" / "t"
    row = {
        "id": [1],
        "ts": [datetime(2026, 1, 1, tzinfo=UTC)],
        "amount": [Decimal(1)],
        "name": ["a"],
        "day": [date(2026, 1, 1)],
    }
    add_files(
        lake, "ext.t", [_write(table_dir, "j1/day=2026-01-01/a.parquet", row)], SCHEMA, partition_by=["day"]
    )
    bad = SCHEMA.set(0, pa.field("id", pa.string()))
    with pytest.raises(SchemaMismatch, match="column 'id' is int64 in the table but string"):
        add_files(lake, "ext.t", [], bad, partition_by=["day"])
    assert lake.table("ext.t").version == 0
    v = add_files(
        lake, "ext.t", [_write(table_dir, "j2/day=2026-01-01/b.parquet", row)], SCHEMA, partition_by=["day"]
    )
    assert (v, lake.table("ext.t").count()) == (1, 2)
    v = add_files(
        lake,
        "ext.t",
        [_write(table_dir, "j3/day=2026-01-01/c.parquet", row)],
        SCHEMA,
        mode="overwrite",
        partition_by=["day"],
    )
    assert (v, lake.table("ext.t").count()) == (2, 1)
    assert lake.table("ext.t").files() == [str(table_dir / "j3/day=2026-01-01/c.parquet")]

"""A merge-on-read compaction killed with SIGKILL at random moments (ADR 0040): the table reads
the same after every kill (the commit is all or nothing), the next compaction succeeds, and the
files a killed one wrote are referenced by no version (vacuum --full removes them)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

from shoal.lake import Lake, Table
from shoal.lake.mergeonread import MergeOnRead, base_rows, change_rows
from shoal.lake.morcompact import compact, tail_rows

pytestmark = pytest.mark.slow

VISIBLE = pa.schema([("id", pa.int64()), ("name", pa.string()), ("score", pa.int64())])
LAYOUT = MergeOnRead(("id",))
ROWS = 300_000

CHILD = """
import sys
from shoal.lake import Lake
from shoal.lake.morcompact import compact
table = Lake(sys.argv[1]).table("rep.items")
print("compacting", flush=True)
compact(table)
print("done", flush=True)
"""


def _rows(model: dict[int, tuple[str, int]], ids: list[int]) -> pa.Table:
    return pa.table(
        {"id": ids, "name": [model[i][0] for i in ids], "score": [model[i][1] for i in ids]}, schema=VISIBLE
    )


def _changes(table: Table, model: dict[int, tuple[str, int]], rng: random.Random, step: int) -> None:
    """A few rounds of updates and deletes spread over the whole table, and inserts."""
    for r in range(5):
        ups = {rng.randrange(1, ROWS + 1): (f"s{step}r{r}", step) for _ in range(2_000)}
        ups[ROWS + 1 + step * 10 + r] = ("new", step)
        dels = [k for k in (rng.randrange(1, ROWS + 1) for _ in range(300)) if k not in ups]
        model.update(ups)
        for k in dels:
            model.pop(k, None)
        keys = pa.table({"id": pa.array(sorted(set(dels)), pa.int64())})
        table.append(change_rows(_rows(model, sorted(ups)), keys, table.version + 1, table.schema))


def _read(table: Table) -> dict[int, tuple[str, int]]:
    data = table.to_arrow()
    rows = zip(*(data.column(c).to_pylist() for c in ("id", "name", "score")), strict=True)
    out = {int(i): (n, s) for i, n, s in rows}
    assert len(out) == data.num_rows
    return out


def _unreferenced(table: Table) -> set[str]:
    on_disk = {p.name for p in Path(table.uri).glob("*.parquet")}
    return on_disk - {Path(p).name for p in table.files()}


def test_compaction_killed_mid_way_leaves_the_table_exact(tmp_path: Path) -> None:
    rng = random.Random(40)
    lake = Lake(str(tmp_path / "lake"))
    table = lake.create_table("rep.items", pa.schema([*VISIBLE, *LAYOUT.fields()]))
    model = {i: (f"n{i}", i) for i in range(1, ROWS + 1)}
    table.append(base_rows(_rows(model, list(range(1, ROWS + 1))), table.schema))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    interrupted = committed = 0
    for step in range(8):
        _changes(table, model, rng, step)
        before = table.version
        with subprocess.Popen(
            [sys.executable, "-c", CHILD, lake.root],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        ) as child:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == b"compacting"
            time.sleep(rng.uniform(0.0, 0.8))
            os.kill(child.pid, signal.SIGKILL)
            child.wait(30)
        if table.version == before:
            interrupted += 1
        else:
            committed += 1
            assert table.version == before + 1
        assert _read(table) == model, f"after kill {step}"
    print(f"{interrupted} compactions killed before their commit, {committed} after")
    assert interrupted >= 2, "no kill landed inside a compaction: nothing was tested"
    orphans = _unreferenced(table)
    # Fresh changes, so the next compaction has a tail to fold even when the last kill came after
    # its child's commit (which left nothing to fold and made this check flaky).
    _changes(table, model, rng, 8)
    result = compact(table)
    assert result.version is not None
    assert tail_rows(table) == 0
    assert _read(table) == model
    table.vacuum(retention_hours=0, full=True)
    assert not _unreferenced(table) & orphans
    assert _read(table) == model

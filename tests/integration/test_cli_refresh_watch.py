"""``shoal refresh --watch``: models follow their source tables as they are appended to, one JSON
line per refresh cycle, and SIGTERM stops the watcher cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from shoal.config import init_project
from shoal.project import Project

pytestmark = pytest.mark.integration

MODEL_YAML = """\
models:
  - name: s.totals
    sql: select k, sum(x)::BIGINT as total from s.events group by k
    unique_key: [k]
    incremental_by: [k]
    upstream: [s.events]
"""
SCHEMA = pa.schema([("k", pa.string()), ("x", pa.int64())])


def test_watch_keeps_a_model_fresh_and_stops_on_sigterm(tmp_path: Path) -> None:
    proj_dir = tmp_path / "proj"
    init_project(proj_dir, "watch")
    (proj_dir / "models.yaml").write_text(MODEL_YAML)
    cfg = proj_dir / "shoal.yaml"
    cfg.write_text(cfg.read_text().replace("models: []", "models: [models.yaml]"))
    lake = Project.load(proj_dir).lake
    events = lake.create_table("s.events", SCHEMA)
    events.append(pa.table({"k": ["a", "b"], "x": [1, 2]}, schema=SCHEMA))

    proc = subprocess.Popen(
        [sys.executable, "-m", "shoal", "refresh", "--watch", "--interval", "0.05",
         "-p", str(proj_dir), "--format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert [(m["model"], m["mode"]) for m in first["models"]] == [("s.totals", "full")]
        events.append(pa.table({"k": ["a", "c"], "x": [10, 5]}, schema=SCHEMA))
        second = json.loads(proc.stdout.readline())
        (m,) = second["models"]
        assert (m["mode"], m["touched"], m["rows_written"]) == ("incremental", 2, 2)
        rows = lake.table("s.totals").to_arrow().select(["k", "total"]).to_pylist()
        got = sorted((r["k"], r["total"]) for r in rows)
        assert got == [("a", 11), ("b", 2), ("c", 5)]
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err

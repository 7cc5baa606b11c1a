"""The CLI as users run it (a subprocess), on the demo project: JSON output, errors, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.notebooks import execute_notebook

pytestmark = pytest.mark.integration


def shoal(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, "-m", "shoal", *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"shoal {' '.join(args)} failed: {proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("demo") / "proj"
    out = shoal("demo", "--dir", str(d), "--small", "--format", "json")
    summary = json.loads(out.stdout)
    assert "company.users" in summary["tables"]
    return d


def test_tables_json(demo_dir: Path) -> None:
    data = json.loads(shoal("tables", "-p", str(demo_dir), "--format", "json").stdout)
    by_name = {t["name"]: t for t in data}
    assert by_name["company.users"]["num_rows"] == 2000
    for key in (
        "description",
        "owner",
        "source",
        "schema",
        "partition_by",
        "num_rows",
        "size_bytes",
        "num_files",
        "last_commit",
    ):
        assert key in by_name["company.users"]


def test_sql_formats(demo_dir: Path) -> None:
    q = "select segment, count(*) as n from company.users group by 1 order by 1"
    rows = json.loads(shoal("sql", q, "-p", str(demo_dir), "--format", "json").stdout)
    assert sum(r["n"] for r in rows) == 2000
    csv_out = shoal("sql", q, "-p", str(demo_dir), "--format", "csv").stdout.splitlines()
    assert csv_out[0] == "segment,n"
    assert len(csv_out) == len(rows) + 1
    # SHOAL_PROJECT instead of --project
    env_out = subprocess.run(
        [sys.executable, "-m", "shoal", "sql", "select 42 as x", "-f", "json"],
        capture_output=True,
        text=True,
        env={**os.environ, "SHOAL_PROJECT": str(demo_dir)},
        check=True,
    )
    assert json.loads(env_out.stdout) == [{"x": 42}]


def test_errors_are_one_line_with_exit_1(demo_dir: Path) -> None:
    bad = shoal("sql", "select * from company.user", "-p", str(demo_dir), check=False)
    assert bad.returncode == 1
    assert "company.users" in bad.stderr  # close match named
    assert "Traceback" not in bad.stderr
    syntax = shoal("sql", "selec 1", "-p", str(demo_dir), check=False)
    assert syntax.returncode == 1
    assert "syntax error" in syntax.stderr
    assert len(syntax.stderr.strip().splitlines()) == 1
    debug = shoal("--debug", "sql", "selec 1", "-p", str(demo_dir), check=False)
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr


def test_maintenance_commands(demo_dir: Path) -> None:
    out = json.loads(shoal("compact", "-p", str(demo_dir), "--format", "json").stdout)
    assert {r["table"] for r in out} >= {"company.users"}
    out = json.loads(shoal("vacuum", "-p", str(demo_dir), "--dry-run", "--format", "json").stdout)
    assert all("files_to_delete" in r for r in out)
    hist = json.loads(shoal("history", "company.users", "-p", str(demo_dir), "--format", "json").stdout)
    assert hist[0]["version"] >= 1


def test_every_command_has_help() -> None:
    top = shoal("--help").stdout
    commands = ["init", "tables", "describe", "sql", "compact", "vacuum", "history", "refresh", "demo"]
    for c in commands:
        assert c in top
        assert "Usage" in shoal(c, "--help").stdout


def test_notebook_executes(demo_dir: Path, tmp_path: Path) -> None:
    """The example notebook runs headless against the demo project."""
    nb = Path(__file__).resolve().parents[2] / "examples" / "quickstart.ipynb"
    out = tmp_path / "out.ipynb"
    outputs = execute_notebook(nb, out, {"SHOAL_PROJECT": str(demo_dir)})
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the chart rendered

"""Project files: loading, env overrides, clear errors, secrets redacted."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.config import init_project
from shoal.errors import ConfigError
from shoal.project import Project


def test_init_and_load(tmp_path: Path) -> None:
    init_project(tmp_path / "p", "demo")
    proj = Project.load(tmp_path / "p")
    assert proj.settings.name == "demo"
    assert proj.lake_root == str((tmp_path / "p" / "lake").resolve())
    with pytest.raises(ConfigError, match="already exists"):
        init_project(tmp_path / "p")


def test_env_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    init_project(tmp_path, "demo")
    monkeypatch.setenv("SHOAL_LAKE__ROOT", "s3://bucket/prefix")
    monkeypatch.setenv("SHOAL_LAKE__STORAGE_OPTIONS__AWS_SECRET_ACCESS_KEY", "hunter2")
    proj = Project.load(tmp_path)
    assert proj.lake_root == "s3://bucket/prefix"
    assert "hunter2" not in str(proj.describe())


def test_project_from_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    init_project(tmp_path, "from-env")
    monkeypatch.setenv("SHOAL_PROJECT", str(tmp_path))
    assert Project.load(None).settings.name == "from-env"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("lake: [1, 2]", "lake: Input should be a valid dictionary"),
        ("lake:\n  rot: x", "lake.rot: Extra inputs are not permitted"),
        ("serve:\n  port: 99999", "serve.port: Input should be less than or equal to 65535"),
        ("name: [unclosed", "invalid YAML"),
        ("- a\n- b", "expected a mapping at the top level"),
    ],
)
def test_invalid_project_file_names_file_and_field(tmp_path: Path, text: str, needle: str) -> None:
    (tmp_path / "shoal.yaml").write_text(text)
    with pytest.raises(ConfigError) as err:
        Project.load(tmp_path)
    assert str(tmp_path / "shoal.yaml") in str(err.value)
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_project(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no shoal project here"):
        Project.load(tmp_path / "nowhere")


def test_query_settings_apply_to_the_projects_connections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `shoal sql`, `shoal.connect` and model refreshes (`shoal refresh`, watchers) share them
    init_project(tmp_path, "demo")
    monkeypatch.setenv("SHOAL_QUERY__THREADS", "1")
    monkeypatch.setenv("SHOAL_QUERY__MEMORY_LIMIT", "512MB")
    con = Project.load(tmp_path).connect()
    try:
        threads, limit = con.duckdb.sql(
            "SELECT current_setting('threads'), current_setting('memory_limit')"
        ).fetchone() or (None, None)
    finally:
        con.close()
    assert threads == 1
    assert limit == "488.2 MiB"  # 512 MB as DuckDB prints it


def test_merge_on_read_layout_needs_cdc_mode(tmp_path: Path) -> None:
    db = "databases:\n  crm:\n    kind: mysql\n    database: crm\n    user: u\n    sync:\n"
    (tmp_path / "shoal.yaml").write_text(f"name: p\n{db}      mode: cursor\n      layout: merge-on-read\n")
    with pytest.raises(ConfigError, match="merge-on-read needs mode: cdc"):
        Project.load(tmp_path)
    mor = "      layout: merge-on-read\n      compact_every_s: 5\n"
    (tmp_path / "shoal.yaml").write_text(f"name: p\n{db}{mor}")
    sync = Project.load(tmp_path).settings.databases["crm"].sync
    assert (sync.layout, sync.compact_every_s) == ("merge-on-read", 5.0)

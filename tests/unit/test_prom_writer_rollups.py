from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from shoal.lake import Lake
from shoal.models import ModelRunner
from shoal.query import connect_lake
from shoal.sources.prometheus import MetricsWriter, SampleBatch, series_id
from shoal.usecases.metrics.models import models

DAY_MS = 86_400_000
T0 = 20_000 * DAY_MS  # 2024-10-04 00:00 UTC


def _batch(points: list[tuple[str, int, float]]) -> SampleBatch:
    b = SampleBatch()
    for host, ts, v in points:
        b.add("cpu", {"host": host}, ts, v)
    return b


def test_round_is_written_once_per_app_transaction(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path))
    w = MetricsWriter(lake)
    b = _batch([("a", T0, 1.0), ("b", T0, 2.0), ("a", T0, 5.0)])
    health = [{"job": "j", "instance": "a", "up": True, "samples": 2}]
    r1 = w.write(b, first_seen_ms=T0, targets=health, app_transactions={"scrape:j": T0})
    assert (r1.samples, r1.new_series, r1.skipped, r1.targets) == (2, 2, False, 1)
    r2 = MetricsWriter(lake).write(b, first_seen_ms=T0, targets=health, app_transactions={"scrape:j": T0})
    assert r2.skipped
    assert lake.table("metrics.samples").count() == 2
    assert lake.table("metrics.targets").count() == 1
    assert lake.table("metrics.samples").app_version("scrape:j") == T0
    rows = lake.table("metrics.samples").to_arrow(columns=["series_id", "value"]).to_pylist()
    values = {r["series_id"]: r["value"] for r in rows}
    assert values[series_id("cpu", {"host": "a"})] == 5.0  # last duplicate wins
    # a later round with a known series adds samples but no series
    r3 = w.write(
        _batch([("a", T0 + 1000, 3.0)]), first_seen_ms=T0 + 1000, app_transactions={"scrape:j": T0 + 1000}
    )
    assert (r3.samples, r3.new_series) == (1, 0)
    assert lake.table("metrics.series").count() == 2


def refresh_rollups(lake: Lake) -> dict[str, list[str]]:
    """The rollup models refreshed by the model runner: the days each one recomputed."""
    before = {m.name: lake.table(m.name).version if lake.exists(m.name) else -1 for m in models()}
    with ModelRunner(lake, list(models()), con=connect_lake(lake)) as runner:
        runner.refresh()
    out: dict[str, list[str]] = {}
    for name, version in before.items():
        changes = lake.table(name).changes_since(version)  # the rows this refresh wrote
        if not changes.num_columns:
            out[name] = []
            continue
        written = changes.filter(pc.is_in(changes["_change_type"], pa.array(["insert", "update_postimage"])))
        out[name] = sorted({d.isoformat() for d in written.column("day").to_pylist()})
    return out


def test_rollups_incremental_by_day(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path))
    w = MetricsWriter(lake)
    # day 0: 00:00:00, 00:04:00 (same 5m bucket), 00:05:00 ; day 1: 00:00:00
    w.write(
        _batch([("a", T0, 1.0), ("a", T0 + 240_000, 4.0), ("a", T0 + 300_000, 2.0), ("a", T0 + DAY_MS, 9.0)]),
        first_seen_ms=T0,
    )
    assert refresh_rollups(lake) == {
        "metrics.samples_5m": ["2024-10-04", "2024-10-05"],
        "metrics.samples_1h": ["2024-10-04", "2024-10-05"],
    }
    five = sorted(lake.table("metrics.samples_5m").to_arrow().to_pylist(), key=lambda r: r["bucket"])
    assert [(r["min"], r["max"], r["sum"], r["count"], r["last"]) for r in five] == [
        (1.0, 4.0, 5.0, 2, 4.0),
        (2.0, 2.0, 2.0, 1, 2.0),
        (9.0, 9.0, 9.0, 1, 9.0),
    ]
    hour = lake.table("metrics.samples_1h").to_arrow().to_pylist()
    assert sorted((r["count"], r["sum"]) for r in hour) == [(1, 9.0), (3, 7.0)]
    assert refresh_rollups(lake) == {"metrics.samples_5m": [], "metrics.samples_1h": []}
    # new data on day 1 only: day 0 is left alone, day 1 recomputed
    w.write(_batch([("a", T0 + DAY_MS + 60_000, 1.0)]), first_seen_ms=T0)
    assert refresh_rollups(lake)["metrics.samples_5m"] == ["2024-10-05"]
    five = lake.table("metrics.samples_5m").to_arrow().to_pylist()
    assert len(five) == 3
    day1 = next(r for r in five if r["day"].isoformat() == "2024-10-05")
    assert (day1["count"], day1["min"], day1["last"]) == (2, 1.0, 1.0)


@pytest.mark.parametrize("name", ["metrics.samples_5m", "metrics.samples_1h"])
def test_rollup_models_declared(name: str) -> None:
    model = next(m for m in models() if m.name == name)
    assert model.incremental_by == ("day",)
    assert model.unique_key == ("series_id", "bucket")


def test_shoal_refresh_builds_a_rollup_of_a_project_listing_the_metrics_use_case(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    from shoal.config import init_project
    from shoal.project import Project

    init_project(tmp_path)
    config = tmp_path / "shoal.yaml"
    text = config.read_text()
    assert "\nmodels: []" in text
    config.write_text(text.replace("\nmodels: []", "\nmodels: [shoal.usecases.metrics.models]"))
    lake = Project.load(tmp_path).lake
    MetricsWriter(lake).write(_batch([("a", T0, 1.0), ("a", T0 + 60_000, 3.0)]), first_seen_ms=T0)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "shoal",
            "refresh",
            "metrics.samples_5m",
            "-p",
            str(tmp_path),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert [r["model"] for r in json.loads(out.stdout)] == ["metrics.samples_5m"]
    rows = lake.table("metrics.samples_5m").to_arrow().to_pylist()
    assert [(r["count"], r["sum"], r["last"]) for r in rows] == [(2, 4.0, 3.0)]

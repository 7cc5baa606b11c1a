"""infra.anomalies as a runner model: samples landing in two batches (the second completes a day the
first began), and after each refresh the table equals the batch computation over every sample landed
so far, made on a second lake that got them all at once; and ``shoal refresh`` through the CLI on a
demo-like project."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from shoal.lake import Lake
from shoal.models import ModelRunner
from shoal.query.engine import connect_lake
from shoal.sources.prometheus.tables import SAMPLES, SERIES, ensure_metrics_tables
from shoal.usecases.infra.anomalies import (
    ANOMALIES,
    ANOMALY_SCHEMA,
    disk_peer_anomalies,
    phase_anomalies,
    rack_peer_anomalies,
)
from shoal.usecases.infra.anomaly_models import PEER_INPUTS, anomaly_models
from shoal.usecases.infra.ew_models import ew_episodes, ew_models
from shoal.usecases.infra.history import Fleet
from shoal.usecases.infra.topology import TopologyConfig

CFG = TopologyConfig(
    seed=303,
    datacenters_per_region=1,
    podlets_per_datacenter=1,
    racks_per_podlet=4,
    hypervisors_per_rack=6,
    disks_per_hypervisor=2,
)
HALF_DAY_MS = 43_200_000


def _rows(t: pa.Table) -> list[tuple[object, ...]]:
    # floats rounded: sums and medians run in parallel, so the last bits differ between runs
    out = []
    for r in t.select(ANOMALY_SCHEMA.names).to_pylist():
        out.append(tuple(round(v, 6) if isinstance(v, float) else v for v in r.values()))
    return sorted(out, key=repr)


def _batch(samples: list[pa.Table], series: pa.Table, tmp: Path) -> pa.Table:
    """The batch computation over every sample at once, on a lake of its own: the streaming detector
    built whole, its episodes, and the peer detectors over metrics.samples."""
    lake = Lake(str(tmp))
    ensure_metrics_tables(lake)
    lake.table(SERIES).append(series)
    lake.table(SAMPLES).append(pa.concat_tables(samples))
    with ModelRunner(lake, ew_models()) as runner:
        runner.refresh()
    with connect_lake(lake) as con:
        parts = [ew_episodes(con)] + [
            fn(con, None, None, None) for fn in (rack_peer_anomalies, phase_anomalies, disk_peer_anomalies)
        ]
    return pa.concat_tables(parts)


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return Fleet.build(CFG, start=date(2026, 1, 5), days=3, seed=303)


def test_two_batches_keep_anomalies_equal_to_the_batch_computation(tmp_path: Path, fleet: Fleet) -> None:
    days = [batch for _, batch in fleet.iter_days()]
    # the second batch completes the day the first one began (a day restated, not only appended)
    cut = pc.min(days[1].column("ts")).cast(pa.int64()).as_py() + HALF_DAY_MS
    ts_ms = days[1].column("ts").cast(pa.int64())
    first = [days[0], days[1].filter(pc.less(ts_ms, cut))]
    second = [days[1].filter(pc.greater_equal(ts_ms, cut)), days[2]]
    series = fleet.series_table()
    lake = Lake(str(tmp_path / "lake"))
    ensure_metrics_tables(lake)
    lake.table(SERIES).append(series)
    landed: list[pa.Table] = []
    with ModelRunner(lake, ew_models() + anomaly_models()) as runner:
        for step, batch in enumerate((first, second)):
            lake.table(SAMPLES).append(pa.concat_tables(batch))
            landed += batch
            results = {r.model: r for r in runner.refresh()}
            if step == 1:  # the inputs reread only the days that moved
                assert results[PEER_INPUTS].mode == "incremental"
                assert results[PEER_INPUTS].touched == 2
            kept = lake.table(ANOMALIES).to_arrow()
            expected = _batch(landed, series, tmp_path / f"batch{step}")
            assert kept.num_rows > 0
            assert _rows(kept) == _rows(expected)
    detectors = set(kept.column("detector").to_pylist())
    assert {"stream_ew", "disk_peers"} <= detectors, detectors


def test_refresh_through_the_cli_keeps_anomalies_on_a_demo_like_project(tmp_path: Path) -> None:
    import json

    import typer
    from typer.testing import CliRunner

    from shoal.cli.main import app as shoal_app
    from shoal.config import init_project
    from shoal.project import Project
    from shoal.usecases.infra.cli import app as infra

    init_project(tmp_path)
    config = tmp_path / "shoal.yaml"
    text = config.read_text()
    assert "\nmodels: []" in text
    config.write_text(text.replace("\nmodels: []", "\nmodels: [shoal.usecases.infra.models]"))
    sim = typer.Typer()
    sim.add_typer(infra, name="infra")
    cli = CliRunner()
    p = str(tmp_path)
    shape = ["--podlets", "1", "--racks", "3", "--hosts", "6", "--format", "json"]
    out = cli.invoke(sim, ["infra", "simulate", "-p", p, "--days", "2", *shape])
    assert out.exit_code == 0, out.output
    lake = Project.load(tmp_path).lake
    # a project upgraded from when infra.anomalies was written by hand: the model's first refresh
    # replaces the old rows (a new definition rebuilds)
    old = pa.table(
        {
            "entity": ["stale"],
            "level": ["outlet"],
            "window_start": [datetime(2020, 1, 1, tzinfo=UTC)],
            "window_end": [datetime(2020, 1, 1, 1, tzinfo=UTC)],
            "score": [9.0],
            "metric": ["pdu_outlet_power_watts"],
            "value": [1.0],
            "baseline": [2.0],
            "deviation": [-1.0],
            "detector": ["temporal"],
        }
    )
    lake.create_table(ANOMALIES, ANOMALY_SCHEMA).append(old.cast(ANOMALY_SCHEMA))
    ref = cli.invoke(shoal_app, ["refresh", "-p", p])
    assert ref.exit_code == 0, ref.output
    first = lake.table(ANOMALIES).to_arrow()
    assert first.num_rows > 0
    assert "stale" not in first.column("entity").to_pylist()
    # a third day lands (the same fleet, one day more): the next refresh extends the table
    out = cli.invoke(sim, ["infra", "simulate", "-p", p, "--days", "3", *shape])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["days_written"] == 1
    ref = cli.invoke(shoal_app, ["refresh", "-p", p])
    assert ref.exit_code == 0, ref.output
    kept = lake.table(ANOMALIES).to_arrow()
    with connect_lake(lake) as con:
        expected = pa.concat_tables(
            [ew_episodes(con)]
            + [
                fn(con, None, None, None)
                for fn in (rack_peer_anomalies, phase_anomalies, disk_peer_anomalies)
            ]
        )
    assert _rows(kept) == _rows(expected)
    assert max(kept.column("window_end").to_pylist()) > max(first.column("window_end").to_pylist())
    ev = cli.invoke(sim, ["infra", "evaluate", "-p", p, "--format", "json"])
    assert ev.exit_code == 0, ev.output
    assert json.loads(ev.output)["recall"] > 0

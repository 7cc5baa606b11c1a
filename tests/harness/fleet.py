"""A lake holding a simulated infra fleet (shoal.usecases.infra.history.Fleet), for its models' tests."""

from __future__ import annotations

from pathlib import Path

from shoal.lake import Lake
from shoal.sources.prometheus.tables import SAMPLES, SERIES, ensure_metrics_tables
from shoal.usecases.infra.history import Fleet


def fleet_lake(root: Path, fleet: Fleet) -> Lake:
    """A new lake at ``root`` with the fleet's metrics.series and every day of its metrics.samples."""
    lake = Lake(str(root))
    ensure_metrics_tables(lake)
    lake.table(SERIES).append(fleet.series_table())
    for _, batch in fleet.iter_days():
        lake.table(SAMPLES).append(batch)
    return lake

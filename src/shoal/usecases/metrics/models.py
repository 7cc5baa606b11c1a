"""The rollups of ``metrics.samples`` declared as models for the one model runner.

Each rollup row is one series in one bucket (min, max, sum, count, last). The models are
incremental by ``day``: a refresh recomputes only the days touched by samples committed since the
last one, and the runner records its progress (the upstream version) in the same commit.
"""

from __future__ import annotations

from shoal.models import Model
from shoal.sources.prometheus.rollups import ROLLUPS, rollup_sql
from shoal.sources.prometheus.tables import SAMPLES


def models() -> tuple[Model, ...]:
    """``metrics.samples_5m`` and ``metrics.samples_1h``."""
    return tuple(
        Model(
            name=name,
            sql=rollup_sql(step),
            unique_key=("series_id", "bucket"),
            incremental_by=("day",),
            upstream=(SAMPLES,),
            description=f"metrics.samples per series and {step}s bucket: min/max/sum/count/last",
            partition_by=("day",),
        )
        for name, step in ROLLUPS.items()
    )

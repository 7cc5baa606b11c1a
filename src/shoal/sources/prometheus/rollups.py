"""Rollups of ``metrics.samples`` into ``metrics.samples_5m`` and ``metrics.samples_1h``: their SQL.

Each rollup row is one series in one bucket: min, max, sum, count and last (value at the latest
ts). The SQL is correct for any subset of days, so the rollups are plain incremental models
(``incremental_by`` day), declared in :mod:`shoal.usecases.metrics` and refreshed by the model
runner like any other (``shoal refresh metrics.samples_5m``).
"""

from __future__ import annotations

from shoal.sources.prometheus.tables import SAMPLES, SAMPLES_1H, SAMPLES_5M

#: rollup table -> bucket width in seconds
ROLLUPS: dict[str, int] = {SAMPLES_5M: 300, SAMPLES_1H: 3600}


def rollup_sql(step_s: int, source: str = SAMPLES) -> str:
    """DuckDB SELECT computing the rollup of ``source`` (correct for any subset of days)."""
    return f"""
SELECT series_id,
       to_timestamp((epoch_ms(ts) // {step_s * 1000}) * {step_s}) AS bucket,
       day,
       min(value) AS "min",
       max(value) AS "max",
       sum(value) AS "sum",
       count(*)::BIGINT AS "count",
       arg_max(value, ts) AS "last"
FROM {source}
GROUP BY series_id, bucket, day
""".strip()

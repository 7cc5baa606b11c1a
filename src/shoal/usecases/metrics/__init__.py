"""Metrics use case: rollups of Prometheus samples (``metrics.samples``) as incremental models.

List ``shoal.usecases.metrics`` under ``models:`` in shoal.yaml, then
``shoal refresh metrics.samples_5m metrics.samples_1h`` keeps them up to date (only the days that
new samples touched are recomputed).
"""

from __future__ import annotations

from shoal.usecases.metrics.models import models

__all__ = ["models"]

"""Metrics use case: Prometheus targets scraped or remote-written into ``metrics.*``, smartctl
reports into ``infra.smart_*``, and the rollups over them (``shoal metrics …``).

The rollups ``metrics.samples_5m`` / ``metrics.samples_1h`` are models: list
``shoal.usecases.metrics.models`` under ``models:`` in shoal.yaml, then
``shoal refresh metrics.samples_5m metrics.samples_1h`` (or ``shoal metrics rollup``) keeps them up
to date, recomputing only the days new samples touched.
"""

from __future__ import annotations

from shoal.usecases.registry import UseCase

# Registered as the ``metrics`` entry point of ``shoal.usecases`` (pyproject.toml).
USECASE = UseCase(
    name="metrics",
    title="Prometheus metrics and smartctl reports",
    models="shoal.usecases.metrics.models",
    cli="shoal.usecases.metrics.cli:app",
)

__all__ = ["USECASE"]

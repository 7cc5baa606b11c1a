"""Metrics use case: Prometheus targets scraped or remote-written into ``metrics.*``, smartctl
reports into ``infra.smart_*``, and the rollups over them (``shoal metrics …``)."""

from __future__ import annotations

from shoal.usecases.registry import UseCase

# Registered as the ``metrics`` entry point of ``shoal.usecases`` (pyproject.toml).
USECASE = UseCase(
    name="metrics",
    title="Prometheus metrics and smartctl reports",
    # models="shoal.usecases.metrics.models",  # the rollups as models: set once that module exists
    cli="shoal.usecases.metrics.cli:app",
)

__all__ = ["USECASE"]

"""Metrics use case: Prometheus targets scraped or remote-written into ``metrics.*``, smartctl
reports into ``infra.smart_*``, and the rollups over them (``shoal metrics …``)."""

from __future__ import annotations

from shoal.usecases.registry import UseCase

# Registered as the ``metrics`` entry point of ``shoal.usecases`` (pyproject.toml).
USECASE = UseCase(
    name="metrics",
    title="Prometheus metrics and smartctl reports",
    cli="shoal.usecases.metrics.cli:app",
)

__all__ = ["USECASE"]

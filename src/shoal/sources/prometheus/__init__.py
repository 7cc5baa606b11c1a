"""Prometheus metrics into the lake: exposition parsing, scraper, remote_write receiver, rollups.

Tables written (see :mod:`shoal.sources.prometheus.tables`): ``metrics.series``,
``metrics.samples`` (partitioned by day), ``metrics.targets``, and the rollups
``metrics.samples_5m`` / ``metrics.samples_1h``.
"""

from __future__ import annotations

from shoal.sources.prometheus.exposition import (
    EXPOSITION_SCHEMA,
    ExpositionError,
    ParsedSample,
    iter_samples,
    parse_exposition,
)
from shoal.sources.prometheus.remote_write import (
    ReceiverConfig,
    RemoteWriteDecodeError,
    create_app,
    decode_write_request,
    write_request_class,
)
from shoal.sources.prometheus.rollups import ROLLUPS, rollup_sql
from shoal.sources.prometheus.scraper import RoundResult, ScrapeConfig, Scraper, TargetResult
from shoal.sources.prometheus.series import canonical_series_bytes, series_id
from shoal.sources.prometheus.tables import ensure_metrics_tables
from shoal.sources.prometheus.targets import Target, TargetsFile, load_targets, parse_targets
from shoal.sources.prometheus.writer import MetricsWriter, SampleBatch, WriteResult

__all__ = [
    "EXPOSITION_SCHEMA",
    "ROLLUPS",
    "ExpositionError",
    "MetricsWriter",
    "ParsedSample",
    "ReceiverConfig",
    "RemoteWriteDecodeError",
    "RoundResult",
    "SampleBatch",
    "ScrapeConfig",
    "Scraper",
    "Target",
    "TargetResult",
    "TargetsFile",
    "WriteResult",
    "canonical_series_bytes",
    "create_app",
    "decode_write_request",
    "ensure_metrics_tables",
    "iter_samples",
    "load_targets",
    "parse_exposition",
    "parse_targets",
    "rollup_sql",
    "series_id",
    "write_request_class",
]

"""Arrow schemas of the ``metrics.*`` lake tables and their creation."""

from __future__ import annotations

import pyarrow as pa

from shoal.lake import Lake

TS = pa.timestamp("ms", tz="UTC")
LABELS = pa.map_(pa.string(), pa.string())

SERIES = "metrics.series"
SAMPLES = "metrics.samples"
TARGETS = "metrics.targets"
SAMPLES_5M = "metrics.samples_5m"
SAMPLES_1H = "metrics.samples_1h"

SERIES_SCHEMA = pa.schema(
    [
        pa.field("series_id", pa.int64(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("labels", LABELS),
        pa.field("first_seen", TS),
    ]
)
SAMPLES_SCHEMA = pa.schema(
    [
        pa.field("series_id", pa.int64(), nullable=False),
        pa.field("ts", TS, nullable=False),
        pa.field("value", pa.float64()),
        pa.field("day", pa.date32(), nullable=False),
    ]
)
TARGETS_SCHEMA = pa.schema(
    [
        pa.field("job", pa.string()),
        pa.field("instance", pa.string()),
        pa.field("url", pa.string()),
        pa.field("labels", LABELS),
        pa.field("scraped_at", TS),
        pa.field("up", pa.bool_()),
        pa.field("error", pa.string()),
        pa.field("duration_s", pa.float64()),
        pa.field("samples", pa.int64()),
    ]
)
ROLLUP_SCHEMA = pa.schema(
    [
        pa.field("series_id", pa.int64(), nullable=False),
        pa.field("bucket", TS, nullable=False),
        pa.field("day", pa.date32(), nullable=False),
        pa.field("min", pa.float64()),
        pa.field("max", pa.float64()),
        pa.field("sum", pa.float64()),
        pa.field("count", pa.int64()),
        pa.field("last", pa.float64()),
    ]
)

_SOURCE = "shoal.sources.prometheus"


def ensure_metrics_tables(lake: Lake) -> None:
    """Create the metrics tables if they do not exist (idempotent)."""
    lake.create_table(
        SERIES,
        SERIES_SCHEMA,
        description="Prometheus series: stable 64-bit id of metric name + sorted labels",
        source=_SOURCE,
    )
    lake.create_table(
        SAMPLES,
        SAMPLES_SCHEMA,
        partition_by=["day"],
        description="Prometheus samples (scraped or remote_write), one row per series and timestamp",
        source=_SOURCE,
    )
    lake.create_table(
        TARGETS,
        TARGETS_SCHEMA,
        description="Scrape target health, one row per target per scrape round",
        source=_SOURCE,
    )
    for name, step in ((SAMPLES_5M, "5 minute"), (SAMPLES_1H, "1 hour")):
        lake.create_table(
            name,
            ROLLUP_SCHEMA,
            partition_by=["day"],
            description=f"metrics.samples rolled up per series and {step} bucket",
            source=_SOURCE,
        )

"""Parse Prometheus text and OpenMetrics expositions into rows / Arrow columns.

The parser is chosen by the HTTP ``Content-Type``: ``application/openmetrics-text`` uses
``prometheus_client.openmetrics.parser``; anything else (``text/plain; version=0.0.4``, missing)
uses the classic text parser ``prometheus_client.parser``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
from prometheus_client import parser as text_parser
from prometheus_client.openmetrics import parser as om_parser

from shoal.errors import ShoalError, Terminal

OPENMETRICS_TYPE = "application/openmetrics-text"

#: Arrow schema of :func:`parse_exposition`'s result. ``timestamp`` is null when the exposition
#: gave none (the scraper then uses the scrape time).
EXPOSITION_SCHEMA = pa.schema(
    [
        pa.field("metric", pa.string(), nullable=False),
        pa.field("labels", pa.map_(pa.string(), pa.string()), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
        pa.field("timestamp", pa.timestamp("ms", tz="UTC")),
    ]
)


class ExpositionError(ShoalError, Terminal):
    """A scrape body is not a valid Prometheus / OpenMetrics exposition."""


@dataclass(frozen=True, slots=True)
class ParsedSample:
    metric: str
    labels: dict[str, str]
    value: float
    timestamp_ms: int | None


def is_openmetrics(content_type: str | None) -> bool:
    return bool(content_type) and content_type.split(";", 1)[0].strip().lower() == OPENMETRICS_TYPE  # type: ignore[union-attr]


def iter_samples(body: str | bytes, content_type: str | None = None) -> Iterator[ParsedSample]:
    """Yield every sample of the exposition; raises :class:`ExpositionError` if malformed.

    Native-histogram samples (no float value) are skipped: the lake stores float samples only.
    """
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    parse = om_parser.text_string_to_metric_families if is_openmetrics(content_type) else None
    try:
        families = parse(text) if parse is not None else text_parser.text_string_to_metric_families(text)  # type: ignore[no-untyped-call]
        for family in families:
            for sample in family.samples:
                if sample.value is None:
                    continue
                ts = sample.timestamp
                ts_ms = None if ts is None else round(float(ts) * 1000)
                yield ParsedSample(sample.name, sample.labels, float(sample.value), ts_ms)
    except (ValueError, TypeError, KeyError, IndexError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ExpositionError(f"malformed exposition: {first}") from err


def parse_exposition(body: str | bytes, content_type: str | None = None) -> pa.Table:
    """Parse an exposition into a table with :data:`EXPOSITION_SCHEMA`."""
    metrics: list[str] = []
    labels: list[list[tuple[str, str]]] = []
    values: list[float] = []
    stamps: list[int | None] = []
    for s in iter_samples(body, content_type):
        metrics.append(s.metric)
        labels.append(list(s.labels.items()))
        values.append(s.value)
        stamps.append(s.timestamp_ms)
    return pa.Table.from_arrays(
        [
            pa.array(metrics, pa.string()),
            pa.array(labels, pa.map_(pa.string(), pa.string())),
            pa.array(values, pa.float64()),
            pa.array(stamps, pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
        ],
        schema=EXPOSITION_SCHEMA,
    )


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def is_finite(value: float) -> bool:
    return math.isfinite(value)

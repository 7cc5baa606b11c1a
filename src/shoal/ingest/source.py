"""The record source: what the ingest loop consumes, and Kafka as its implementation.

A source delivers batches of records of (topic, partition) streams with increasing offsets, tells
the loop which partitions it was given or lost (:class:`SourceEvents`, called from inside
:meth:`RecordSource.poll`) and takes the committed positions back. Where a partition starts is the
loop's answer to ``on_assign`` (the lake table's progress), never the source's own memory, which
is what makes the lake commit exactly-once whatever the source.

:class:`shoal.sources.kafka.KafkaSource` is the implementation today; :func:`kafka_source` builds
it from a pipeline spec.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from shoal.ingest.buffer import TopicPartition
from shoal.ingest.spec import PipelineSpec
from shoal.sources.kafka import OFFSET_BEGINNING, OFFSET_END, KafkaSource, consumer_config

#: start positions ``on_assign`` may answer besides an offset: the stream's first / next new record
EARLIEST = OFFSET_BEGINNING
LATEST = OFFSET_END


class Record(Protocol):
    """One consumed record (confluent-kafka's ``Message`` has this shape)."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def timestamp(self) -> tuple[int, int]: ...  # (type, ms since the epoch; < 0: none)
    def headers(self) -> Any: ...  # [(name, bytes | None), ...] or None


class SourceEvents(Protocol):
    """What a source reports to the loop while it polls."""

    def on_assign(self, tps: list[TopicPartition]) -> Mapping[TopicPartition, int]:
        """Partitions given to this worker; returns where each starts (an offset, EARLIEST, LATEST)."""
        ...

    def on_revoke(self, tps: list[TopicPartition]) -> None:
        """Partitions taken away in an orderly way (the loop may still commit what it holds)."""
        ...

    def on_lost(self, tps: list[TopicPartition]) -> None:
        """Partitions lost (another worker may own them already: the loop commits nothing of them)."""
        ...

    def on_end(self, tp: TopicPartition) -> None:
        """A partition reached its current end (the "drained" signal)."""
        ...

    def on_error(self, code: str, detail: str) -> None:
        """A non-fatal error the source keeps going after (counted and logged by the loop)."""
        ...


class RecordSource(Protocol):
    """A stream of records the ingest loop consumes."""

    #: a fatal error's one-line description once the source cannot go on (None while healthy)
    @property
    def fatal_error(self) -> str | None: ...

    def poll(self, max_records: int, timeout: float) -> Sequence[Record]:
        """Up to ``max_records`` records, waiting at most ``timeout`` seconds for the first."""
        ...

    def commit(self, positions: Mapping[TopicPartition, int]) -> None:
        """The next positions committed to the lake (informational: the lake holds the truth)."""
        ...

    def close(self) -> None: ...


#: builds the source of a pipeline: (spec, extra client settings, events, stats callback, logger)
SourceFactory = Callable[
    [PipelineSpec, Mapping[str, Any], SourceEvents, Callable[[str], None] | None, logging.Logger],
    RecordSource,
]


def kafka_source(
    spec: PipelineSpec,
    extra_client_config: Mapping[str, Any],
    events: SourceEvents,
    on_stats: Callable[[str], None] | None,
    logger: logging.Logger,
) -> RecordSource:
    """The pipeline's Kafka consumer-group member (see :mod:`shoal.sources.kafka.consumer`)."""
    conf = consumer_config(spec.brokers, spec.group, spec.client, extra_client_config)
    return KafkaSource(
        conf,
        spec.subscription,
        on_assign=events.on_assign,
        on_revoke=events.on_revoke,
        on_lost=events.on_lost,
        on_end=events.on_end,
        on_error=events.on_error,
        on_stats=on_stats,
        logger=logger,
    )

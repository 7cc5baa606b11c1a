"""Streaming ingestion: a record source (any Kafka topic today) into a lake table, exactly once.

Source positions (Kafka offsets) travel inside the same Delta commit as the rows (``txn``
actions); bad records go to a dead-letter table; workers of one pipeline share partitions through
a consumer group. The loop consumes the :class:`~shoal.ingest.source.RecordSource` protocol.
"""

from __future__ import annotations

from shoal.ingest.buffer import DeadRecord, FlushBuffer, FlushUnit
from shoal.ingest.dead_letter import DEAD_LETTER_SCHEMA
from shoal.ingest.errors import (
    IngestError,
    KafkaFatalError,
    PipelineSpecError,
    PipelineStopped,
    TransformSqlError,
)
from shoal.ingest.runner import META_FIELDS, IngestWorker, RunStats, resolve_pipeline, run_pipeline
from shoal.ingest.source import Record, RecordSource, SourceEvents, SourceFactory, kafka_source
from shoal.ingest.spec import (
    CompactionPolicy,
    FlushPolicy,
    PartitionColumn,
    PipelineSpec,
    load_pipeline,
    parse_pipeline,
)

__all__ = [
    "DEAD_LETTER_SCHEMA",
    "META_FIELDS",
    "CompactionPolicy",
    "DeadRecord",
    "FlushBuffer",
    "FlushPolicy",
    "FlushUnit",
    "IngestError",
    "IngestWorker",
    "KafkaFatalError",
    "PartitionColumn",
    "PipelineSpec",
    "PipelineSpecError",
    "PipelineStopped",
    "Record",
    "RecordSource",
    "RunStats",
    "SourceEvents",
    "SourceFactory",
    "TransformSqlError",
    "kafka_source",
    "load_pipeline",
    "parse_pipeline",
    "resolve_pipeline",
    "run_pipeline",
]

"""Streaming ingestion: any Kafka topic into a lake table, exactly once.

Kafka offsets travel inside the same Delta commit as the rows (``txn`` actions); bad records go to
a dead-letter table; workers of one pipeline share partitions through a consumer group.
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
    "RunStats",
    "TransformSqlError",
    "load_pipeline",
    "parse_pipeline",
    "resolve_pipeline",
    "run_pipeline",
]

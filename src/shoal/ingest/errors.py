"""Errors of the ingest stage (a record source → lake table).

Each carries what it is about as attributes (``pipeline``, ``table``, ``topic``, ``partition``,
``offset``; None when not known) besides its one-line message, so a supervisor can act on them
without parsing the text.
"""

from __future__ import annotations

from shoal.errors import ConfigError, ShoalError, Terminal


class IngestError(ShoalError):
    """Root of ingest-stage errors."""

    def __init__(
        self,
        message: str,
        *,
        pipeline: str | None = None,
        table: str | None = None,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        super().__init__(message)
        self.pipeline = pipeline
        self.table = table
        self.topic = topic
        self.partition = partition
        self.offset = offset


class PipelineSpecError(ConfigError, IngestError):
    """A pipeline file is invalid; the message names the file and the field."""


class PipelineStopped(IngestError, Terminal):
    """The pipeline stopped on an error that retrying cannot fix (e.g. an incompatible schema change).

    Nothing of the failing batch was committed and the offsets were not advanced, so fixing the cause
    and restarting loses nothing.
    """


class TransformSqlError(IngestError, Terminal):
    """``transform_sql`` is invalid for every row (syntax, unknown column, dropped metadata columns)."""


class KafkaFatalError(IngestError, Terminal):
    """The Kafka client reported a fatal error (bad credentials, fenced static member, ...)."""

"""Errors of the ingest stage (Kafka topic → lake table)."""

from __future__ import annotations

from shoal.errors import ConfigError, ShoalError, Terminal


class IngestError(ShoalError):
    """Root of ingest-stage errors."""


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

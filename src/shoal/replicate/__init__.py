"""Replication of operational databases into the lake: snapshot, then change-data capture.

``shoal sync NAME [TABLE...]`` copies a database declared in ``shoal.yaml`` into Delta tables
(namespace ``NAME_replica`` by default): an initial snapshot in primary-key chunks, then row
changes from the MySQL/MariaDB binlog or PostgreSQL logical replication (pgoutput), applied by key.
The source position travels in the same Delta commit as the rows (``shoal.lake.progress``), so a
restart resumes exactly where the lake stands: nothing lost, nothing applied twice (ADR 0017).
"""

from __future__ import annotations

from shoal.replicate.errors import NoPrimaryKey, ReplicationNotConfigured, SourceUnavailable, SyncError
from shoal.replicate.model import SyncReport
from shoal.replicate.sync import Syncer

__all__ = [
    "NoPrimaryKey",
    "ReplicationNotConfigured",
    "SourceUnavailable",
    "SyncError",
    "SyncReport",
    "Syncer",
]

"""Errors of the replication stage: one line naming the database and table."""

from __future__ import annotations

from shoal.errors import ShoalError, Terminal, Transient


class SyncError(ShoalError):
    """Replicating a database into the lake failed."""


class SourceUnavailable(SyncError, Transient):
    """The source database could not be reached or dropped the connection; retrying may help."""

    retry_after = 0.5


class CredentialsRejected(SyncError, Terminal):
    """The database refused the login (wrong user or password): retrying cannot help."""


class NoPrimaryKey(SyncError, Terminal):
    """A table without a primary key cannot be applied by key (use mode: full)."""


class ReplicationNotConfigured(SyncError, Terminal):
    """The server lacks what change-data capture needs (binlog_format=ROW, wal_level=logical...)."""


class UnsupportedType(SyncError, Terminal):
    """A source column type has no exact lake type."""


class LayoutMismatch(SyncError, Terminal):
    """A replica's layout (copy-on-write or merge-on-read) is not the declared one and cannot be
    changed in place."""

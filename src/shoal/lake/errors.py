"""Errors of the lake stage."""

from __future__ import annotations

from shoal.errors import ShoalError, StorageUnavailable, Terminal, Transient

__all__ = ["CommitConflict", "LakeError", "SchemaMismatch", "StorageUnavailable", "TableExists"]


class LakeError(ShoalError):
    """A lake operation failed."""


class SchemaMismatch(LakeError, Terminal):
    """Data does not fit the table's schema and cannot be merged into it (e.g. a type change)."""


class TableExists(LakeError, Terminal):
    """A table was created twice."""


class CommitConflict(LakeError, Transient):
    """Another writer committed a conflicting change first; retrying is safe."""

    retry_after = 0.05

"""The lake stage: Delta tables on local disk or S3-compatible storage, and their catalog."""

from __future__ import annotations

from shoal.lake import progress
from shoal.lake.catalog import Lake, TableInfo, validate_name
from shoal.lake.errors import CommitConflict, LakeError, SchemaMismatch, StorageUnavailable, TableExists
from shoal.lake.progress import Progress
from shoal.lake.sqltext import sql_ident
from shoal.lake.storage import LakeLocation, redact
from shoal.lake.table import Table, sql_literal

__all__ = [
    "CommitConflict",
    "Lake",
    "LakeError",
    "LakeLocation",
    "Progress",
    "SchemaMismatch",
    "StorageUnavailable",
    "Table",
    "TableExists",
    "TableInfo",
    "progress",
    "redact",
    "sql_ident",
    "sql_literal",
    "validate_name",
]

"""Errors of shoal's Spark bridge."""

from __future__ import annotations

from shoal.errors import ShoalError, Terminal, Transient


class SparkError(ShoalError):
    """Reading or writing a shoal table from Spark failed."""


class UnsupportedTable(SparkError, Terminal):
    """The table uses a Delta feature the file-list reader cannot honour (deletion vectors,
    column mapping) or a type Spark has no equivalent for."""


class SparkWriteFailed(SparkError, Transient):
    """Spark's job failed before shoal committed anything: the table is unchanged and the
    job's files are orphans that ``shoal vacuum`` removes."""

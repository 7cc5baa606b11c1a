"""The logs stage's errors (all under :class:`shoal.errors.ShoalError`)."""

from __future__ import annotations

from shoal.errors import ShoalError, Terminal, Transient


class LogsError(ShoalError):
    """Root of the logs stage's errors."""


class LogQueryError(LogsError, Terminal):
    """A search query, ``--since`` or ``--where`` could not be understood."""


class IndexBusy(LogsError, Transient):
    """Another process holds the index writer (an indexer is already running)."""

    retry_after = 2.0


class IndexBehind(LogsError, Terminal):
    """The index cannot catch up incrementally (the files of unindexed commits were vacuumed)."""

"""Logs at scale: JSON log lines (HTTP or Kafka) into ``logs.lines``, searched with ranking.

``schema`` (the table and how a line becomes a row), ``receiver`` (``shoal logs receive``:
JSON lines over HTTP), ``kafka`` (``shoal logs consume``: a topic through the ingest pipeline),
``index`` (the tantivy index kept up to date from the table's commits), ``query`` (search
parsing), ``sql`` (``logs_search()`` in SQL), ``shipping`` (a logging handler that ships shoal's
own JSON logs to a receiver). The package sits beside the use cases: it builds on ingest, the
lake and the query engine and is mounted by the CLI through the ``shoal.commands`` entry point.
"""

from __future__ import annotations

from shoal.logs.errors import IndexBehind, IndexBusy, LogQueryError, LogsError
from shoal.logs.index import Hit, Indexer, LogIndex, UpdateResult
from shoal.logs.query import LabelFilter, LogQuery, build_query
from shoal.logs.schema import DEAD_LETTERS, LINES, LINES_SCHEMA, ensure_tables

__all__ = [
    "DEAD_LETTERS",
    "LINES",
    "LINES_SCHEMA",
    "Hit",
    "IndexBehind",
    "IndexBusy",
    "Indexer",
    "LabelFilter",
    "LogIndex",
    "LogQuery",
    "LogQueryError",
    "LogsError",
    "UpdateResult",
    "build_query",
    "ensure_tables",
]

"""Search results in SQL: ``logs_search(query, lim)`` on a query connection.

A DuckDB scalar function returning the hits as a list of structs, best first::

    SELECT h.* FROM (SELECT unnest(logs_search('card declined', 20), recursive := true)) h;
    -- filters in the query text: +service:billing, level:error, ts:[2026-01-01T00:00:00Z TO *]
    SELECT l.day, count(*) FROM (SELECT unnest(logs_search('+timeout', 1000), recursive := true)) h
      JOIN logs.lines l USING (id) GROUP BY 1;

Each struct holds ``score, id, ts, service, level, message, host, trace_id, attrs``; ``id`` joins
back to ``logs.lines``. The function reads the index as it stands (``shoal logs index``).
"""

from __future__ import annotations

from typing import Any

import duckdb
from duckdb import sqltypes

from shoal.logs.index import LogIndex
from shoal.logs.query import LogQuery

FUNCTION = "logs_search"

_HIT = sqltypes.DuckDBPyType(
    "STRUCT(score DOUBLE, id VARCHAR, ts TIMESTAMP WITH TIME ZONE, service VARCHAR, level VARCHAR, "
    "message VARCHAR, host VARCHAR, trace_id VARCHAR, attrs VARCHAR)[]"
)


def register(con: duckdb.DuckDBPyConnection, index: LogIndex) -> None:
    """Add ``logs_search(query VARCHAR, lim INTEGER)`` to ``con``."""

    def logs_search(query: str | None, lim: int | None) -> list[dict[str, Any]]:
        hits = index.search(LogQuery(text=query or "", limit=max(1, int(lim or 20))))
        return [h.as_dict() for h in hits]

    con.create_function(
        FUNCTION,
        logs_search,
        [sqltypes.VARCHAR, sqltypes.INTEGER],
        _HIT,
        side_effects=False,
    )

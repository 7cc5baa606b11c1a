"""The rewrites of queries seen before, kept while the lake columns they looked at are the same.

Before a query runs, the connection rewrites it (UTC time bucketing, partition keys and bounds:
utctime.py, partition_keys.py, partition_bounds.py). Each rewrite parses the query into DuckDB's
JSON tree and back, which costs milliseconds to tens of milliseconds for a model's SQL: a model
watcher runs the same statements every cycle (a fifth of a refresh cycle's Python time went to
rewriting the same charges query), a dashboard the same panels every few seconds.

What a rewrite produces depends only on the query's text and on what it looked up: the column
types of the lake tables it names (the views' types) and their partition sources (read once per
connection). So a rewrite is kept with the column types it saw, and reused while one catalog
query finds them unchanged: a table whose schema evolved, or a view dropped or masked, rewrites
the query again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import duckdb

#: (schema, table) in lower case -> its view's column types, or None when it is not a lake table
Seen = dict[tuple[str, str], dict[str, str] | None]
Columns = Callable[[str, str], Mapping[str, str] | None]

#: rewrites kept per connection (queries with literals in them are each their own entry)
CACHE_SIZE = 256


@dataclass(frozen=True)
class _Entry:
    text: str
    seen: Seen


class RewriteCache:
    """Rewritten queries of one connection, least recently used dropped first."""

    def __init__(self, helper: duckdb.DuckDBPyConnection, columns: Columns, size: int = CACHE_SIZE) -> None:
        """``helper`` runs the catalog query (a cursor: the session's pending result stays the
        caller's); ``columns(schema, table)`` is the connection's look-up of a lake table's view
        types (None for anything else)."""
        self._helper = helper
        self._columns = columns
        self._size = size
        self._entries: OrderedDict[tuple[str, int], _Entry] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def rewrite(self, query: str, generation: int, rewrite: Callable[[Columns], str]) -> str:
        """``rewrite(columns)`` of ``query``, or the kept result when the columns it looked at are
        unchanged. ``generation`` changes when a table is mounted (a name that was not a lake table
        may have become one)."""
        key = (query, generation)
        entry = self._entries.get(key)
        if entry is not None and self._unchanged(entry.seen):
            self._entries.move_to_end(key)
            self.hits += 1
            return entry.text
        self.misses += 1
        seen: Seen = {}

        def columns(schema: str, table: str) -> Mapping[str, str] | None:
            name = (schema.lower(), table.lower())
            if name not in seen:
                found = self._columns(schema, table)
                seen[name] = None if found is None else dict(found)
            return seen[name]

        text = rewrite(columns)
        self._entries[key] = _Entry(text, seen)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return text

    def _unchanged(self, seen: Seen) -> bool:
        tables = [name for name, cols in seen.items() if cols is not None]
        if not tables:
            return True
        rows = self._helper.execute(
            "SELECT schema_name, table_name, column_name, data_type FROM duckdb_columns() "
            "WHERE list_contains(?, schema_name || '.' || table_name)",
            [[f"{s}.{t}" for s, t in tables]],
        ).fetchall()
        now: dict[tuple[str, str], dict[str, str]] = {}
        for schema, table, column, type_ in rows:
            now.setdefault((str(schema).lower(), str(table).lower()), {})[str(column)] = str(type_)
        return all(now.get(name, {}) == seen[name] for name in tables)

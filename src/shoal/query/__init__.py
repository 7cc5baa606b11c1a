"""The query stage: SQL over every lake table with DuckDB."""

from __future__ import annotations

from shoal.query.engine import Connection, QueryError, connect_lake, version_at

__all__ = ["Connection", "QueryError", "connect_lake", "version_at"]

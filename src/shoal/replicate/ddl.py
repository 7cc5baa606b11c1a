"""Statements of a MySQL/MariaDB binlog that change a replica other than by rows.

In a ROW binlog, DDL stays a statement (a ``QueryEvent``): ``TRUNCATE`` writes no row events, so
the replica must recognise it to empty its copy. Other DDL needs nothing here: row events carry the
column names of their time (``binlog_row_metadata=FULL``), so a dropped or added column is seen in
the rows themselves (ADR 0035).
"""

from __future__ import annotations

import re

_COMMENT = re.compile(r"/\*.*?\*/|--[^\n]*\n|#[^\n]*\n", re.S)
_NAME = r"(?:`(?:[^`]|``)+`|[\w$]+)"
_TRUNCATE = re.compile(rf"TRUNCATE\s+(?:TABLE\s+)?({_NAME})(?:\s*\.\s*({_NAME}))?\s*;?", re.I)


def _unquote(name: str) -> str:
    return name[1:-1].replace("``", "`") if name.startswith("`") else name


def truncated_table(query: str, default_schema: str) -> tuple[str, str] | None:
    """``(schema, table)`` when ``query`` is a TRUNCATE (the session's ``default_schema`` when the
    statement names no schema), else None."""
    text = _COMMENT.sub(" ", query).strip()
    m = _TRUNCATE.fullmatch(text)
    if m is None:
        return None
    if m.group(2) is None:
        return default_schema, _unquote(m.group(1))
    return _unquote(m.group(1)), _unquote(m.group(2))

"""DuckDB's own parse tree (``json_serialize_sql``), as the query rewrites read it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

Node = dict[str, Any]
#: DuckDB's query_location for a node that is not in the query text
NOWHERE = 2**64 - 1


def walk(node: Any) -> Iterator[Node]:
    """Every mapping in ``node``, depth first."""
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)

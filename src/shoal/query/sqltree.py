"""DuckDB's own parse tree (``json_serialize_sql``), as the query rewrites read it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import duckdb

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


def expression_name(con: duckdb.DuckDBPyConnection, item: Node) -> str:
    """The column name DuckDB gives select-list item ``item`` when it has no alias: its text.
    A rewrite that changes such an item sets this as its alias, so the name stays the same."""
    bare: Node = {
        "type": "SELECT_NODE",
        "modifiers": [],
        "cte_map": {"map": []},
        "select_list": [item],
        "from_table": {"type": "EMPTY", "alias": "", "sample": None, "query_location": NOWHERE},
        "where_clause": None,
        "group_expressions": [],
        "group_sets": [],
        "aggregate_handling": "STANDARD_HANDLING",
        "having": None,
        "sample": None,
        "qualify": None,
    }
    one = {"error": False, "statements": [{"node": bare, "named_param_map": []}]}
    out = con.execute("SELECT json_deserialize_sql(?)", [json.dumps(one)]).fetchone()
    if not out or not out[0]:
        raise ValueError("no SQL")
    # the binder names a cast's column with the type quoted: CAST(x AS "DATE")
    return str(out[0]).removeprefix("SELECT ").replace(" AS DATE)", ' AS "DATE")')

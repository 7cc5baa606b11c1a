"""DuckDB's own parse tree (``json_serialize_sql``), as the query rewrites read it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
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


def _select_sql(con: duckdb.DuckDBPyConnection, item: Node) -> str:
    """``SELECT item`` (no FROM) as SQL, printed by DuckDB."""
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
    return str(out[0])


def expression_name(con: duckdb.DuckDBPyConnection, item: Node) -> str:
    """The column name DuckDB gives select-list item ``item`` when it has no alias: its text.
    A rewrite that changes such an item sets this as its alias, so the name stays the same."""
    # the binder names a cast's column with the type quoted: CAST(x AS "DATE")
    return _select_sql(con, item).removeprefix("SELECT ").replace(" AS DATE)", ' AS "DATE")')


def constant_value(con: duckdb.DuckDBPyConnection, item: Node) -> Any:
    """The value of expression ``item``, which names no column, evaluated by DuckDB on ``con`` (a
    cursor: the session's pending result is left alone)."""
    row = con.execute(_select_sql(con, item)).fetchone()
    return None if row is None else row[0]


def date_trunc_call(node: Node) -> tuple[str, Node] | None:
    """``(unit, argument)`` when ``node`` is DuckDB's own ``date_trunc`` (or ``datetrunc``) with a
    constant text unit, else None."""
    if node.get("class") != "FUNCTION" or node.get("schema") not in ("", "main") or node.get("distinct"):
        return None
    if str(node.get("function_name", "")).lower() not in ("date_trunc", "datetrunc"):
        return None
    args: list[Node] = list(node.get("children") or [])
    if len(args) != 2 or args[0].get("class") != "CONSTANT":
        return None
    unit = args[0].get("value", {}).get("value")
    return (unit, args[1]) if isinstance(unit, str) else None


def function_call(name: str, *children: Node, alias: str = "") -> Node:
    """The parse-tree node of a call ``name(children...)``."""
    return {
        "class": "FUNCTION",
        "type": "FUNCTION",
        "alias": alias,
        "query_location": NOWHERE,
        "function_name": name,
        "schema": "",
        "children": list(children),
        "filter": None,
        "order_bys": {"type": "ORDER_MODIFIER", "orders": []},
        "distinct": False,
        "is_operator": False,
        "export_state": False,
        "catalog": "",
    }


def rewrite_statement(con: duckdb.DuckDBPyConnection, query: str, edit: Callable[[Node], int]) -> str:
    """``query`` parsed by DuckDB (one statement), edited in place by ``edit`` (which returns how
    many changes it made) and turned back into SQL; ``query`` itself when nothing changed, or when the
    query is not one statement DuckDB can parse and print. ``con`` runs the parser: a cursor, so
    the session's pending result is left alone."""
    try:
        row = con.execute("SELECT json_serialize_sql(?)", [query]).fetchone()
        if not row:
            return query
        doc = json.loads(row[0])
        statements = doc.get("statements", [])
        if doc.get("error") or len(statements) != 1:
            return query
        if not edit(statements[0]):
            return query
        out = con.execute("SELECT json_deserialize_sql(?)", [json.dumps(doc)]).fetchone()
        return str(out[0]) if out and out[0] else query
    except (duckdb.Error, ValueError, KeyError, TypeError):
        return query

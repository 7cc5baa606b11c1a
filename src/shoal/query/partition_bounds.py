"""Partition pruning for filters on the column a partition is derived from (ADR 0037).

Ingest partitions an events table by a column derived from the event time (``event_date`` =
UTC day of ``occurred_at``) and records that in the table's sidecar (``Lake.partition_sources``).
Users filter on the time itself: ``WHERE occurred_at >= now() - INTERVAL 7 DAY``. DuckDB's delta
extension skips files by statistics for string, number and date constants but not for timestamps
(duckdb-delta ``PredicateVisitor::VisitConstantFilter``), so such a query opened every file of the
table, where Polars' ``scan_delta`` reads only the last week's.

So before a query runs, each filter ``src op c`` (``op`` in ``= < <= > >=``, either side, or
``src BETWEEN a AND b``) that is a top-level conjunct of a SELECT's WHERE, on a lake table whose
partition column ``p`` is ``T(src)``, gets the implied conjunct ``p op' T(c)`` next to it
(``T`` = the UTC day or hour, or identity; ``>``/``>=`` give ``>=``, ``<``/``<=`` give ``<=``).
``T`` never decreases, so every row the filter keeps also passes the new conjunct: the result is
the same, and the partition filter prunes files. It is added only where that holds for sure:

* the session's zone is UTC (the caller's to know; ``T(c)`` casts ``c`` as the comparison does);
* ``c`` is built from constants, casts and stable functions (``now()``, arithmetic, intervals):
  no column, subquery, parameter (its count would change) or volatile function;
* the column reference is that table's: qualified by its alias or name, or unqualified with every
  relation of the FROM a lake table and exactly one of them having such a column;
* the view (``duckdb_columns``) still has both columns, with the types the transform implies.
Anything else is left as written.

Where the partition column says all the filter says, the filter is replaced rather than joined
(ADR 0056; Iceberg calls what is left a *residual*): ``src >= c`` and ``src < c`` with ``c`` on a
boundary of ``T`` (``T(c) = c``: midnight UTC for a day partition) hold exactly when
``p >= T(c)`` and ``p < T(c)`` do, since ``T`` never decreases and ``T(x) <= x``. The row filter is
then dropped and the source column is not read for it. Only for a ``c`` of constants alone (no
``now()``: the rewrite is kept and reused), evaluated once when the query is rewritten.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from typing import Any

import duckdb

from shoal.query.sqltree import NOWHERE, Node, constant_value, function_call, rewrite_statement, walk

#: a cheap test before parsing: could the query hold a comparison in a WHERE at all?
_CANDIDATE = re.compile(r"\bwhere\b[\s\S]*(<|>|=|\bbetween\b)", re.IGNORECASE)
#: comparison -> (its mirror with the sides swapped, the comparison the partition bound uses)
_COMPARISONS = {
    "COMPARE_EQUAL": ("COMPARE_EQUAL", "COMPARE_EQUAL"),
    "COMPARE_GREATERTHAN": ("COMPARE_LESSTHAN", "COMPARE_GREATERTHANOREQUALTO"),
    "COMPARE_GREATERTHANOREQUALTO": ("COMPARE_LESSTHANOREQUALTO", "COMPARE_GREATERTHANOREQUALTO"),
    "COMPARE_LESSTHAN": ("COMPARE_GREATERTHAN", "COMPARE_LESSTHANOREQUALTO"),
    "COMPARE_LESSTHANOREQUALTO": ("COMPARE_GREATERTHANOREQUALTO", "COMPARE_LESSTHANOREQUALTO"),
}
#: functions a bound may be computed with: the same value wherever they appear in one statement
_STABLE = {
    "+",
    "-",
    "now",
    "current_timestamp",
    "get_current_timestamp",
    "transaction_timestamp",
    "current_date",
    "today",
    "make_date",
    "make_timestamp",
    "make_timestamptz",
    "to_timestamp",
    "date_trunc",
    "datetrunc",
    "trunc",
    "to_years",
    "to_months",
    "to_weeks",
    "to_days",
    "to_hours",
    "to_minutes",
    "to_seconds",
    "to_milliseconds",
    "to_microseconds",
}
#: ... of which these give a different value each time the statement runs: a bound with them is
#: never evaluated when the query is rewritten, since the rewrite is kept and reused
_NOW = {"now", "current_timestamp", "get_current_timestamp", "transaction_timestamp", "current_date", "today"}
#: comparisons ``src op c`` that ``p op T(c)`` says exactly, for ``c`` on a boundary of ``T``
_EXACT = {"COMPARE_GREATERTHANOREQUALTO", "COMPARE_LESSTHAN"}
_TZ = "TIMESTAMP WITH TIME ZONE"
#: transform -> the view type its partition column must have (source: a TIMESTAMPTZ, but identity)
_PART_TYPE = {"day": "DATE", "hour": _TZ}

#: (schema, table) -> {partition (or derived) column: (source column, transform)}, or None for
#: no lake table
Sources = Callable[[str, str], Mapping[str, tuple[str, str]] | None]
#: (schema, table) -> {column: DuckDB type} of a lake table's view, or None
Columns = Callable[[str, str], Mapping[str, str] | None]
#: (constant c, transform T) -> whether T(c) = c as instants
Aligned = Callable[[Node, str], bool]


def _is_stable_constant(node: Any) -> bool:
    if not isinstance(node, dict):
        return False
    cls = node.get("class")
    if cls == "CONSTANT":
        return True
    if cls == "CAST":
        return _is_stable_constant(node.get("child"))
    if cls == "FUNCTION":
        return (
            node.get("schema") in ("", "main")
            and str(node.get("function_name", "")).lower() in _STABLE
            and not node.get("filter")
            and not node.get("distinct")
            and all(_is_stable_constant(c) for c in node.get("children") or [])
        )
    return False


def _is_fixed_constant(node: Any) -> bool:
    """A stable constant whose value does not depend on when the statement runs."""
    return _is_stable_constant(node) and not any(
        n.get("class") == "FUNCTION" and str(n.get("function_name", "")).lower() in _NOW for n in walk(node)
    )


def _cast(child: Node, type_id: str) -> Node:
    return {
        "class": "CAST",
        "type": "OPERATOR_CAST",
        "alias": "",
        "query_location": NOWHERE,
        "child": child,
        "cast_type": {"id": type_id, "type_info": None},
        "try_cast": False,
    }


def _bound(value: Node, transform: str) -> Node:
    """``T(value)``, cast to an instant first exactly as a comparison with the column casts it."""
    instant = _cast(copy.deepcopy(value), "TIMESTAMP WITH TIME ZONE")
    if transform == "day":
        return _cast(instant, "DATE")
    if transform == "hour":
        hour: Node = {
            "class": "CONSTANT",
            "type": "VALUE_CONSTANT",
            "alias": "",
            "query_location": NOWHERE,
            "value": {"type": {"id": "VARCHAR", "type_info": None}, "is_null": False, "value": "hour"},
        }
        return function_call("date_trunc", hour, instant)
    return copy.deepcopy(value)


def _compare(kind: str, column: list[str], value: Node) -> Node:
    ref = {"class": "COLUMN_REF", "type": "COLUMN_REF", "alias": "", "query_location": NOWHERE}
    return _comparison(kind, {**ref, "column_names": column}, value)


def _comparison(kind: str, left: Node, right: Node) -> Node:
    return {
        "class": "COMPARISON",
        "type": kind,
        "alias": "",
        "query_location": NOWHERE,
        "left": left,
        "right": right,
    }


def alignment(con: duckdb.DuckDBPyConnection) -> Aligned:
    """Whether ``T(c) = c`` for a constant ``c``, evaluated on ``con`` (a UTC session, as the
    query's); False when DuckDB cannot evaluate it (a NULL, a value that does not cast)."""

    def aligned(value: Node, transform: str) -> bool:
        if transform not in _PART_TYPE or not _is_fixed_constant(value):
            return False
        floor, instant = _cast(_bound(value, transform), _TZ), _cast(copy.deepcopy(value), _TZ)
        same = _comparison("COMPARE_EQUAL", floor, instant)
        try:
            return constant_value(con, same) is True
        except (duckdb.Error, ValueError):
            return False

    return aligned


class Relation:
    """A lake table in a FROM: how its columns are named in the query, and what it derives."""

    def __init__(
        self, node: Node, columns: Mapping[str, str], derived: dict[str, list[tuple[str, str, str]]]
    ) -> None:
        self.alias = str(node.get("alias") or "").lower()
        self.schema = str(node.get("schema_name", "")).lower()
        self.name = str(node.get("table_name", "")).lower()
        self.columns = {c.lower() for c in columns}
        #: source column -> [(derived column, transform, its view type)], in declaration order
        self.derived = derived

    def qualifier(self) -> list[str]:
        return [self.alias] if self.alias else [self.name]

    def named_by(self, qualifier: list[str]) -> bool:
        q = ".".join(qualifier)
        return q == self.alias if self.alias else q in (self.name, f"{self.schema}.{self.name}")


def relations(from_table: Any, sources: Sources, columns: Columns) -> list[Relation] | None:
    """The lake tables a FROM joins, or None when it reads anything else (its columns unknown)."""
    if not isinstance(from_table, dict):
        return None
    kind = from_table.get("type")
    if kind == "JOIN":
        left = relations(from_table.get("left"), sources, columns)
        right = relations(from_table.get("right"), sources, columns)
        return None if left is None or right is None else left + right
    if kind != "BASE_TABLE" or from_table.get("catalog_name") or from_table.get("at_clause"):
        return None
    if from_table.get("column_name_alias") or from_table.get("sample"):
        return None
    schema, name = str(from_table.get("schema_name", "")), str(from_table.get("table_name", ""))
    cols = columns(schema, name) if schema else None
    if cols is None:
        return None
    types = {c.lower(): t for c, t in cols.items()}
    derived: dict[str, list[tuple[str, str, str]]] = {}
    for part_name, (src_name, transform) in (sources(schema, name) or {}).items():
        part, src = part_name.lower(), src_name.lower()
        want = _PART_TYPE.get(transform, types.get(src))
        source_ok = types.get(src) == _TZ or (transform == "identity" and src in types)
        if source_ok and want is not None and types.get(part) == want:
            derived.setdefault(src, []).append((part, transform, want))
    return [Relation(from_table, cols, derived)]


def owner(ref: Node, rels: list[Relation]) -> Relation | None:
    """The relation of ``rels`` a reference to a partition source column binds to, or None."""
    names = [str(n).lower() for n in ref.get("column_names", [])]
    if not names:
        return None
    col, qualifier = names[-1], names[:-1]
    if qualifier:
        owners = [r for r in rels if r.named_by(qualifier)]
    else:
        owners = [r for r in rels if col in r.columns]
    if len(owners) != 1 or col not in owners[0].derived:
        return None
    # the added conjunct names the partition column through the same relation: it must be unique
    if sum(1 for r in rels if r.qualifier() == owners[0].qualifier()) != 1:
        return None
    return owners[0]


def _implied(term: Node, rels: list[Relation], aligned: Aligned | None) -> tuple[list[Node], bool]:
    """The partition conjuncts ``term`` implies (none when it is not ``src op constant``), and
    whether they say all it says (then they replace it)."""
    kind = term.get("type")
    #: (the comparison with the column on the left, the constant)
    bounds: list[tuple[str, Any]]
    if term.get("class") == "BETWEEN" and kind == "COMPARE_BETWEEN":
        ref, bounds = (
            term.get("input") or {},
            [
                ("COMPARE_GREATERTHANOREQUALTO", term.get("lower")),
                ("COMPARE_LESSTHANOREQUALTO", term.get("upper")),
            ],
        )
    elif term.get("class") == "COMPARISON" and kind in _COMPARISONS:
        left, right = term.get("left") or {}, term.get("right") or {}
        if left.get("class") == "COLUMN_REF":
            ref, bounds = left, [(kind, right)]
        elif right.get("class") == "COLUMN_REF":
            ref, bounds = right, [(_COMPARISONS[kind][0], left)]
        else:
            return [], False
    else:
        return [], False
    if ref.get("class") != "COLUMN_REF":
        return [], False
    rel = owner(ref, rels)
    values = [(op, v) for op, v in bounds if _is_stable_constant(v)]
    if rel is None or len(values) != len(bounds):
        return [], False
    derived = rel.derived[str(ref["column_names"][-1]).lower()]
    if aligned is not None and len(values) == 1 and values[0][0] in _EXACT:
        op, v = values[0]
        for part, transform, _ in derived:
            if transform != "identity" and aligned(v, transform):
                return [_compare(op, [*rel.qualifier(), part], _bound(v, transform))], True
    return [
        _compare(_COMPARISONS[op][1], [*rel.qualifier(), part], _bound(v, transform))
        for part, transform, _ in derived
        for op, v in values
    ], False


def add_bounds(tree: Any, sources: Sources, columns: Columns, aligned: Aligned | None = None) -> int:
    """Add the implied partition conjuncts to every SELECT in ``tree`` (in place), in place of the
    filters they say exactly when ``aligned`` is given; how many were added."""
    added = 0
    for node in list(walk(tree)):
        if node.get("type") != "SELECT_NODE" or not isinstance(node.get("where_clause"), dict):
            continue
        rels = relations(node.get("from_table"), sources, columns)
        if not rels or not any(r.derived for r in rels):
            continue
        where: Node = node["where_clause"]
        terms = list(where["children"]) if where.get("type") == "CONJUNCTION_AND" else [where]
        kept: list[Node] = []
        new: list[Node] = []
        for term in terms:
            implied, exact = _implied(term, rels, aligned)
            new += implied
            if not exact:
                kept.append(term)
        if new:
            children = [*kept, *new]
            node["where_clause"] = (
                children[0]
                if len(children) == 1
                else {
                    "class": "CONJUNCTION",
                    "type": "CONJUNCTION_AND",
                    "alias": "",
                    "query_location": NOWHERE,
                    "children": children,
                }
            )
            added += len(new)
    return added


def add_partition_bounds(
    con: duckdb.DuckDBPyConnection, query: str, sources: Sources, columns: Columns
) -> str:
    """``query`` with the partition conjuncts its filters imply, or unchanged (see the module).

    ``con`` runs the parser (a cursor, so the session's pending result is left alone); the session
    must be in UTC (the caller's to know).
    """
    if not _CANDIDATE.search(query):
        return query
    aligned = alignment(con)
    return rewrite_statement(con, query, lambda statement: add_bounds(statement, sources, columns, aligned))

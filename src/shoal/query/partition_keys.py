"""Time buckets read from the partition or derived column they come from (ADRs 0039, 0047).

Ingest partitions an events table by the UTC day (or hour) of its event time and records that in
the table's sidecar (``event_date`` = day of ``occurred_at``, ``Lake.partition_sources``; ADR 0037).
A daily rollup groups by ``date_trunc('day', occurred_at)`` or ``CAST(occurred_at AS DATE)``: the
same value as the partition column, which the scan hands over as one constant per file, where the
truncation decodes and floors every row's timestamp (10M rows: most of what the daily billable
users query spends besides its hash table; docs/benchmarks.md).

Ingest also writes plain derived columns (``derive``: ``event_hour`` = hour of ``occurred_at``,
NULL where it is NULL), recorded in the sidecar when it creates the table (``Lake.derived_columns``,
ADR 0047): an hourly rollup reads the hour a time-ordered file stores almost for free instead of
flooring every row's timestamp. Both are ``p = T(src)`` below.

So before a query runs, in a SELECT whose FROM reads lake tables only, a call on such a source
column ``src`` of a table with a column ``p = T(src)`` is replaced by one on ``p`` (with several,
the coarsest that fits the unit: a day partition is one constant per file, an hour column is read):

* transform ``day`` (``p`` a DATE): ``CAST(src AS DATE)`` is ``p``; ``date_trunc(u, src)`` for
  ``u`` of a day or longer (day, week, month, quarter, year) is ``date_trunc(u, p)`` as an instant
  (``make_timestamptz(epoch_us(...))`` of the plain UTC timestamp: no ICU, same type);
* transform ``hour`` (``p`` a TIMESTAMPTZ): ``date_trunc(u, src)`` for ``u`` of an hour or longer
  is ``date_trunc(u, p)`` (which the UTC rewrite then floors in integers).

Truncating to a unit of at least the partition's gives the same value from the truncated time
(``T`` is itself a truncation in UTC), so the result is the same row for row, NULLs included (ingest
never writes a row whose source is NULL to a partitioned table: it has no partition value; a
derived column is NULL where its source is, as the truncation). It holds in a session in UTC,
which is the caller's to know. The replacement is made only where it is sure to bind the same:

* the column reference is that table's (``partition_bounds.owner``), no alias or lambda of the
  query reuses the source column's name, and the view has both columns with the implied types;
* in a SELECT, every reference to the source column outside its WHERE and outside aggregate calls
  is one that is replaced: the replaced expression is then grouped, ordered and matched with
  ``GROUP BY`` exactly as the original was (a query grouping by ``occurred_at`` itself and
  selecting its day is left as written);
* a select-list item without an alias keeps its column name (the original text as alias).
Anything else is left as written. Nested queries (subqueries, CTEs) are looked at on their own.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import duckdb

from shoal.query.partition_bounds import Columns, Relation, Sources, owner, relations
from shoal.query.sqltree import (
    NOWHERE,
    Node,
    date_trunc_call,
    expression_name,
    function_call,
    rewrite_statement,
    walk,
)

#: a cheap test before parsing: a truncation or a cast to DATE at all?
_CANDIDATE = re.compile(r"date_?trunc|::\s*date\b|\bas\s+date\b", re.IGNORECASE)
#: date_trunc units, in the order of their length (each is a whole number of the previous ones
#: from a UTC truncation point: truncating the truncated time gives the same value)
_UNITS = {
    "hour": 0,
    "hours": 0,
    "day": 1,
    "days": 1,
    "week": 2,
    "weeks": 2,
    "month": 3,
    "months": 3,
    "quarter": 4,
    "quarters": 4,
    "year": 5,
    "years": 5,
}
_TRANSFORM_UNIT = {"hour": 0, "day": 1}
#: query nodes: a nested query is rewritten on its own, with its own FROM
_QUERY_NODES = {"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"}
#: DuckDB's common aggregate functions: a reference inside one is per row and needs no GROUP BY
#: match. A name missing here only makes the rewrite more cautious.
_AGGREGATE_NAMES = (
    "any_value approx_count_distinct arbitrary arg_max arg_min argmax argmin array_agg avg bit_and "
    "bit_or bool_and bool_or count count_if count_star countif favg first fsum histogram kahan_sum "
    "last list max max_by mean median min min_by mode product quantile quantile_cont quantile_disc "
    "stddev stddev_pop stddev_samp string_agg sum sumkahan var_pop var_samp variance"
)
_AGGREGATES = frozenset(_AGGREGATE_NAMES.split())


def _column(names: list[str]) -> Node:
    ref: Node = {"class": "COLUMN_REF", "type": "COLUMN_REF", "alias": "", "query_location": NOWHERE}
    return {**ref, "column_names": names}


def _cast(child: Node, type_id: str, alias: str = "") -> Node:
    return {
        "class": "CAST",
        "type": "OPERATOR_CAST",
        "alias": alias,
        "query_location": NOWHERE,
        "child": child,
        "cast_type": {"id": type_id, "type_info": None},
        "try_cast": False,
    }


class _Node:
    """One SELECT: the lake relations of its FROM and what it may replace."""

    def __init__(self, rels: list[Relation], shadowed: set[str]) -> None:
        self.rels = rels
        self.shadowed = shadowed

    def source(self, node: Node) -> tuple[Relation, list[tuple[str, str, str]]] | None:
        """(relation, its columns derived from it) when ``node`` names a derivation's source."""
        if node.get("class") != "COLUMN_REF":
            return None
        names = [str(n).lower() for n in node.get("column_names", [])]
        if not names or names[-1] in self.shadowed:
            return None
        rel = owner(node, self.rels)
        if rel is None:
            return None
        return rel, rel.derived[names[-1]]

    def replacement(self, node: Node) -> Node | None:
        """The call on a derived column that gives what ``node`` gives, or None."""
        cls = node.get("class")
        alias = str(node.get("alias", ""))
        if cls == "CAST" and not node.get("try_cast") and node.get("cast_type", {}).get("id") == "DATE":
            found = self.source(node.get("child") or {})
            days = [part for part, transform, _ in found[1] if transform == "day"] if found else []
            if found and days:
                return _column([*found[0].qualifier(), days[0]]) | {"alias": alias}
            return None
        call = date_trunc_call(node)
        found = self.source(call[1]) if call is not None else None
        if call is None or found is None:
            return None
        unit, unit_node = call[0], node["children"][0]
        rank = _UNITS.get(unit.lower())
        rel, derivations = found
        usable = [
            (_TRANSFORM_UNIT[t], part, t)
            for part, t, _ in derivations
            if t in _TRANSFORM_UNIT and rank is not None and _TRANSFORM_UNIT[t] <= rank
        ]
        if not usable:
            return None
        # the coarsest one: a day partition is one constant per file, an hour column is read per row
        _, part, transform = max(usable, key=lambda u: u[0])
        column = _column([*rel.qualifier(), part])
        if transform == "hour":  # p is the hour as an instant: truncate it further if asked
            if rank == _TRANSFORM_UNIT["hour"]:
                return column | {"alias": alias}
            return dict(node, children=[unit_node, column])  # which the UTC rewrite then floors
        # p is a DATE: the day as a plain UTC timestamp, truncated further if asked, as an instant
        plain = _cast(column, "TIMESTAMP")
        if rank is not None and rank > _TRANSFORM_UNIT["day"]:
            plain = function_call("date_trunc", unit_node, plain)
        return function_call("make_timestamptz", function_call("epoch_us", plain), alias=alias)


def _replace(node: Any, scope: _Node, free: list[Node], in_where: bool, in_agg: bool) -> tuple[Any, int]:
    """``node`` with every replaceable call replaced (not descending into nested queries), and how
    many were; references to a source column left outside WHERE and aggregates go to ``free``."""
    if isinstance(node, list):
        out: list[Any] = []
        n = 0
        for v in node:
            r, k = _replace(v, scope, free, in_where, in_agg)
            out.append(r)
            n += k
        return out, n
    if not isinstance(node, dict) or str(node.get("type")) in _QUERY_NODES:
        return node, 0
    new = scope.replacement(node)
    if new is not None:
        return new, 1
    if not in_where and not in_agg and scope.source(node) is not None:
        free.append(node)
    agg = in_agg or (
        node.get("class") == "FUNCTION" and str(node.get("function_name", "")).lower() in _AGGREGATES
    )
    done = 0
    out_node: Node = {}
    for k, v in node.items():
        out_node[k], n = _replace(v, scope, free, in_where, agg)
        done += n
    return out_node, done


def replace_keys(tree: Any, sources: Sources, columns: Columns, name_of: Callable[[Node], str]) -> int:
    """Replace truncations of partition sources in every SELECT of ``tree`` (in place); how many.
    A changed select-list item without an alias gets ``name_of(item)``, its name as written."""
    shadowed: set[str] = set()
    for node in walk(tree):
        if node.get("type") == "LAMBDA" or node.get("class") == "LAMBDA":
            return 0
        if node.get("alias"):
            shadowed.add(str(node["alias"]).lower())
        shadowed.update(str(a).lower() for a in node.get("column_name_alias", []) or [])
        for entry in (node.get("cte_map") or {}).get("map", []):
            shadowed.update(str(a).lower() for a in entry["value"].get("aliases", []))
    done = 0
    for node in [n for n in walk(tree) if n.get("type") == "SELECT_NODE"]:
        rels = relations(node.get("from_table"), sources, columns)
        if not rels or not any(r.derived for r in rels):
            continue
        scope = _Node(rels, shadowed)
        free: list[Node] = []
        new: dict[str, Any] = {}
        n = 0
        for key, value in node.items():
            if key in ("from_table", "cte_map"):
                continue
            new[key], k = _replace(value, scope, free, key == "where_clause", False)
            n += k
        if n and not free:
            items = zip(new.get("select_list") or [], node.get("select_list") or [], strict=True)
            for item, original in items:
                if item != original and not original.get("alias"):
                    item["alias"] = name_of(original)
            node.update(new)
            done += n
    return done


def rewrite_partition_keys(
    con: duckdb.DuckDBPyConnection, query: str, sources: Sources, columns: Columns
) -> str:
    """``query`` with day and hour buckets of partition sources read from the partition column,
    or unchanged (see the module). ``con`` runs the parser (a cursor: the session's pending result
    is left alone); the session must be in UTC (the caller's to know)."""
    if not _CANDIDATE.search(query):
        return query
    return rewrite_statement(
        con,
        query,
        lambda statement: replace_keys(statement, sources, columns, lambda item: expression_name(con, item)),
    )

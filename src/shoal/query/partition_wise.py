"""Aggregations with a DISTINCT, run one partition range at a time (ADR 0050).

``count(DISTINCT user_id)`` grouped by day builds a hash table of every (day, user) pair the scan
meets: on 50M billing events that is millions of entries, and DuckDB spends most of the query in
cache misses on it (``FindOrCreateGroups``, a perf profile in docs/benchmarks.md). When the groups
cannot span partitions -- one of the GROUP BY keys is the day partition column or a truncation of
its source to a day or an hour -- the same query over each range of partitions gives the result's
groups for that range, whole. So the query is written as one branch per range of partitions, glued
by ``UNION ALL``: each branch's hash table holds one range's pairs and stays in cache.

The ranges cover every value of the partition column (the first is open below and takes NULL, the
last is open above), so rows in partitions added after the split points were read, or rows this
connection's snapshot has and the split points did not know of, are still counted, once: the split
points only decide how fast the query runs, never what it returns. A key that truncates to a week
or longer (``date_trunc('month', occurred_at)``, monthly active users) is split only where that
unit starts, so a month is never cut in two.

A branch that holds one day, of a query whose keys are all the same for every row of a day (the
day itself, its week or month), has one group at most: it runs without its GROUP BY, the keys
taken with ``any_value`` and ``HAVING count(*) > 0`` so that a day without rows still gives none.
The distinct aggregate's hash table then keys on its argument alone (0.92x the time of the
grouped branches on the 50M-row benchmark, docs/benchmarks.md, fourteenth session).

Left as written (the query is not sure to give the same rows, or the split would not pay):

* anything but one SELECT over one lake table with a day partition (no join, CTE, subquery, window
  function, QUALIFY, SAMPLE, grouping sets, ROLLUP or CUBE, SELECT DISTINCT, prepared-statement
  parameter);
* a query without a DISTINCT aggregate: without one the hash table has a row per group only, which
  is small for the rollups users run, and splitting measured no gain (docs/benchmarks.md);
* ORDER BY other than by output position or output name, a LIMIT or OFFSET that is not a constant;
* a table whose partitions hold too few rows for two ranges of ``MIN_BRANCH_ROWS``.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import duckdb

from shoal.lake import sql_ident as ident
from shoal.query.partition_bounds import Columns, Sources
from shoal.query.sqltree import NOWHERE, Node, date_trunc_call, expression_name, function_call, walk

#: a range holds at least this many rows (below it, a branch's own cost outweighs a smaller table)
MIN_BRANCH_ROWS = 250_000
#: at most this many branches (a bigger UNION costs planning time; ranges then hold several days)
MAX_BRANCHES = 128
#: date_trunc units a key may truncate to, by the length of their classes: 0 within a day
_UNITS = {
    "microsecond": 0, "microseconds": 0, "millisecond": 0, "milliseconds": 0, "second": 0,
    "seconds": 0, "minute": 0, "minutes": 0, "hour": 0, "hours": 0, "day": 0, "days": 0,
    "week": 1, "weeks": 1, "month": 2, "months": 2, "quarter": 3, "quarters": 3, "year": 4, "years": 4,
}  # fmt: skip
#: date_trunc units whose classes hold whole days (a key truncated to them is the same all day)
_WHOLE_DAYS = {"day", "days", "week", "weeks", "month", "months", "quarter", "quarters", "year", "years"}
#: node classes a branch cannot carry as it is (a parameter repeated in every branch would ask
#: the caller for one value per branch)
_UNSAFE = {"SUBQUERY", "WINDOW", "PARAMETER"}
#: how a branch's range is marked in the tree before it is printed
_MARKER = "__shoal_partition_range__"
_PARTS = "__shoal_partition_ranges__"

#: (schema, table, p) -> rows per value of partition column p (``Table.partition_rows``)
Splits = Callable[[str, str, str], Mapping[object, int]]


@dataclass(frozen=True)
class Lookups:
    """What the split looks up on the connection: partition sources, derived columns, rows per
    partition value, a lake table's view column types (None for anything else)."""

    sources: Sources
    derived: Sources
    splits: Splits
    columns: Columns


def _unit_start(d: date, unit: int) -> date:
    """The first day of ``d``'s class for a truncation of length ``unit`` (as DuckDB truncates:
    ISO weeks start on Monday)."""
    if unit == 0:
        return d
    if unit == 1:
        return d - timedelta(days=d.weekday())
    if unit == 2:
        return d.replace(day=1)
    if unit == 3:
        return d.replace(month=(d.month - 1) // 3 * 3 + 1, day=1)
    return d.replace(month=1, day=1)


def ranges(rows: Mapping[object, int], unit: int) -> list[date]:
    """The starts of the ranges after the first (empty: do not split). Partition values are
    grouped into classes of the unit, classes into ranges of at least ``MIN_BRANCH_ROWS`` rows and
    at most ``MAX_BRANCHES`` ranges."""
    classes: dict[date, int] = {}
    for value, n in rows.items():
        if not isinstance(value, date):
            return []
        start = _unit_start(value, unit)
        classes[start] = classes.get(start, 0) + n
    total = sum(classes.values())
    target = max(MIN_BRANCH_ROWS, -(-total // MAX_BRANCHES))
    starts: list[date] = []
    held = 0
    for start in sorted(classes):
        if held >= target:
            starts.append(start)
            held = 0
        held += classes[start]
    if starts and held < target // 2:  # a small tail joins the range before it
        starts.pop()
    return starts


def _column_name(node: Node, qualifiers: set[str]) -> str | None:
    """The column a COLUMN_REF names on the FROM table (lower case), else None."""
    if node.get("class") != "COLUMN_REF":
        return None
    names = [str(n).lower() for n in node.get("column_names", [])]
    if len(names) == 1 or (len(names) == 2 and names[0] in qualifiers):
        return names[-1]
    return None


class _Table:
    def __init__(self, part: str, source: str, derived: Mapping[str, tuple[str, str]]) -> None:
        self.part = part
        self.source = source
        self.derived = derived

    def unit_of(self, node: Node, qualifiers: set[str]) -> int | None:
        """The class length of a GROUP BY key (see ``_UNITS``) when its value is the same for
        every row of a day partition, else None."""
        name = _column_name(node, qualifiers)
        if name is not None:
            if name in (self.part, self.source):  # an instant lies in one day, as its hour does
                return 0
            src, transform = self.derived.get(name, ("", ""))
            return 0 if src == self.source and transform in ("hour", "day") else None
        cls = node.get("class")
        if cls == "CAST":
            child = _column_name(node.get("child") or {}, qualifiers)
            is_date = node.get("cast_type", {}).get("id") == "DATE" and not node.get("try_cast")
            return 0 if is_date and child in (self.source, self.part) else None
        call = date_trunc_call(node)
        if call is None:
            return None
        unit = _UNITS.get(call[0].lower())
        inner = self.unit_of(call[1], qualifiers)
        if unit is None or inner is None:
            return None
        return max(unit, inner)

    def per_day(self, node: Node, qualifiers: set[str]) -> bool:
        """Whether a GROUP BY key has one value for every row of a day partition."""
        name = _column_name(node, qualifiers)
        if name is not None:
            src, transform = self.derived.get(name, ("", ""))
            return name == self.part or (src == self.source and transform == "day")
        if node.get("class") == "CAST":
            return self.unit_of(node, qualifiers) == 0  # a DATE cast of the source or partition
        call = date_trunc_call(node)
        if call is None:
            return False
        if call[0].lower() in _WHOLE_DAYS:
            return self.unit_of(call[1], qualifiers) is not None
        return self.per_day(call[1], qualifiers)


def _one_day_branch(con: duckdb.DuckDBPyConnection, node: Node) -> Node | None:
    """A copy of the branch ``node`` without its GROUP BY (keys by ``any_value``, at least one row
    by ``HAVING count(*) > 0``), or None when a select item's kind is not known for sure."""
    if node.get("having") is not None:
        return None
    names = con.execute(
        "SELECT DISTINCT lower(function_name), function_type FROM duckdb_functions() "
        "WHERE function_type IN ('aggregate', 'scalar')"
    ).fetchall()
    aggregates = {n for n, kind in names if kind == "aggregate"}
    scalars = {n for n, kind in names if kind == "scalar"}
    out = copy.deepcopy(node)
    items: list[Node] = []
    for item in out.get("select_list") or []:
        calls = {str(n.get("function_name", "")).lower() for n in walk(item) if n.get("class") == "FUNCTION"}
        if calls & aggregates:
            if _column_outside(item, aggregates):
                return None  # `count(DISTINCT u) / day(event_date)`: a key outside the aggregate
            items.append(item)
        elif calls <= scalars:  # a key, or an expression of keys: one value in the branch
            alias = str(item.get("alias") or "") or expression_name(con, item)
            items.append(function_call("any_value", {**item, "alias": ""}, alias=alias))
        else:
            return None  # a macro or a function of an extension: not known to be no aggregate
    count_star = function_call("count_star")
    zero: Node = {
        "class": "CONSTANT",
        "type": "VALUE_CONSTANT",
        "alias": "",
        "query_location": NOWHERE,
        "value": {"type": {"id": "INTEGER", "type_info": None}, "is_null": False, "value": 0},
    }
    out.update(
        select_list=items,
        group_expressions=[],
        group_sets=[],
        aggregate_handling="STANDARD_HANDLING",
        having={
            "class": "COMPARISON",
            "type": "COMPARE_GREATERTHAN",
            "alias": "",
            "query_location": NOWHERE,
            "left": count_star,
            "right": zero,
        },
    )
    return out


def _column_outside(node: Any, aggregates: set[str]) -> bool:
    """Whether ``node`` names a column outside every aggregate call in it."""
    if isinstance(node, list):
        return any(_column_outside(n, aggregates) for n in node)
    if not isinstance(node, dict):
        return False
    if node.get("class") == "COLUMN_REF":
        return True
    if node.get("class") == "FUNCTION" and str(node.get("function_name", "")).lower() in aggregates:
        return False
    return any(_column_outside(v, aggregates) for v in node.values())


def _position(expr: Node, width: int) -> int | None:
    """The 1-based output position a constant GROUP BY or ORDER BY term names, else None."""
    pos = expr.get("value", {}).get("value")
    ok = isinstance(pos, int) and not isinstance(pos, bool) and 1 <= pos <= width
    return pos if ok else None


def _keys(node: Node, columns: set[str]) -> list[Node] | None:
    """The GROUP BY keys as expressions (positions and output names resolved), or None."""
    items: list[Node] = list(node.get("select_list") or [])
    aliases = {str(i.get("alias", "")).lower(): i for i in items if i.get("alias")}
    keys: list[Node] = []
    for expr in node.get("group_expressions") or []:
        if expr.get("class") == "CONSTANT":
            pos = _position(expr, len(items))
            if pos is None:
                return None
            keys.append(items[pos - 1])
            continue
        names = [str(n).lower() for n in expr.get("column_names", [])]
        if expr.get("class") == "COLUMN_REF" and len(names) == 1 and names[0] not in columns:
            if names[0] not in aliases:
                return None
            keys.append(aliases[names[0]])  # an output name (DuckDB binds table columns first)
            continue
        keys.append(expr)
    return keys


def _modifiers_ok(node: Node, outputs: set[str], width: int) -> bool:
    for mod in node.get("modifiers") or []:
        kind = mod.get("type")
        if kind == "ORDER_MODIFIER":
            for order in mod.get("orders") or []:
                expr = order.get("expression") or {}
                if expr.get("class") == "CONSTANT":
                    if _position(expr, width) is None:
                        return False
                    continue
                names = [str(n).lower() for n in expr.get("column_names", [])]
                if expr.get("class") != "COLUMN_REF" or len(names) != 1 or names[0] not in outputs:
                    return False
        elif kind == "LIMIT_MODIFIER":
            for part in ("limit", "offset"):
                expr = mod.get(part)
                if expr is not None and expr.get("class") != "CONSTANT":
                    return False
        else:
            return False
    return True


def _date(d: date) -> str:
    return f"DATE '{d.isoformat()}'"


def split_by_partition(con: duckdb.DuckDBPyConnection, query: str, lookups: Lookups) -> str:
    """``query`` as a UNION ALL of one branch per range of day partitions when that gives the same
    rows (module docstring), else ``query`` itself. ``con`` runs the parser (a cursor)."""
    if "distinct" not in query.lower():
        return query
    try:
        row = con.execute("SELECT json_serialize_sql(?)", [query]).fetchone()
        doc = json.loads(row[0]) if row else {}
        statements = doc.get("statements", [])
        if doc.get("error") or len(statements) != 1:
            return query
        return _split(con, doc, lookups) or query
    except (duckdb.Error, ValueError, KeyError, TypeError, AttributeError):
        return query


def _split(con: duckdb.DuckDBPyConnection, doc: dict[str, Any], lookups: Lookups) -> str | None:
    node: Node = doc["statements"][0]["node"]
    if node.get("type") != "SELECT_NODE" or (node.get("cte_map") or {}).get("map"):
        return None
    if node.get("qualify") is not None or node.get("sample") is not None:
        return None
    # GROUP BY ALL groups by every select item without an aggregate: the keys looked for below
    # (columns, their truncations) are such items
    group_all = node.get("aggregate_handling") == "FORCE_AGGREGATES" and not node.get("group_expressions")
    if not group_all and (
        node.get("aggregate_handling") != "STANDARD_HANDLING" or len(node.get("group_sets") or []) != 1
    ):
        return None
    if any(n.get("class") in _UNSAFE for n in walk(node)):
        return None
    if not any(
        n.get("class") == "FUNCTION" and n.get("distinct")
        for n in walk([node.get("select_list"), node.get("having")])
    ):
        return None
    src = node.get("from_table") or {}
    if src.get("type") != "BASE_TABLE" or src.get("sample") is not None or src.get("at_clause") is not None:
        return None
    schema, table = str(src.get("schema_name", "")), str(src.get("table_name", ""))
    if not schema or not table or src.get("catalog_name"):
        return None
    cols = lookups.columns(schema, table)
    parts = lookups.sources(schema, table)
    if not cols or not parts:
        return None
    day_parts = [(p, s) for p, (s, t) in parts.items() if t == "day" and cols.get(p) == "DATE"]
    if len(day_parts) != 1:
        return None
    part, source = day_parts[0]
    table_cols = {c.lower() for c in cols}
    derived = {k.lower(): v for k, v in (lookups.derived(schema, table) or {}).items()}
    info = _Table(part.lower(), source.lower(), derived)
    qualifiers = {table.lower(), str(src.get("alias", "")).lower()} - {""}
    keys = list(node.get("select_list") or []) if group_all else _keys(node, table_cols)
    if not keys:
        return None
    units = [u for u in (info.unit_of(k, qualifiers) for k in keys) if u is not None]
    if not units:
        return None
    # the output names an outer ORDER BY can use: aliases and bare columns, each named once
    named = [
        str(i.get("alias") or (i.get("column_names") or [""])[-1]).lower()
        for i in node.get("select_list") or []
        if i.get("alias") or i.get("class") == "COLUMN_REF"
    ]
    outputs = {n for n in named if named.count(n) == 1}
    if not _modifiers_ok(node, outputs, len(node.get("select_list") or [])):
        return None
    starts = ranges(lookups.splits(schema, table, part), min(units))
    if not starts:
        return None

    # the branch: the query without its modifiers, its WHERE and-ed with a marker for the range
    modifiers = node.get("modifiers") or []
    node["modifiers"] = []
    marker: Node = {
        "class": "COLUMN_REF",
        "type": "COLUMN_REF",
        "alias": "",
        "query_location": NOWHERE,
        "column_names": [_MARKER],
    }
    where = node.get("where_clause")
    node["where_clause"] = marker if where is None else {
        "class": "CONJUNCTION", "type": "CONJUNCTION_AND", "alias": "", "query_location": NOWHERE,
        "children": [where, marker],
    }  # fmt: skip
    text = _print(con, doc)
    if text is None or text.count(_MARKER) != 1:
        return None
    one_day = None  # the branch for a range of one day, when every key is the same all day
    if all(info.per_day(k, qualifiers) for k in keys):
        ungrouped = _one_day_branch(con, node)
        if ungrouped is not None:
            one_day = _print(con, {**doc, "statements": [{**doc["statements"][0], "node": ungrouped}]})
            if one_day is None or one_day.count(_MARKER) != 1:
                one_day = None
    alias = str(src.get("alias", ""))
    column = f"{ident(alias)}.{ident(part)}" if alias else ident(part)
    # the first branch is always grouped: the union takes its column names from it
    branches: list[str] = [text.replace(_MARKER, f"({column} < {_date(starts[0])} OR {column} IS NULL)")]
    for a, b in itertools.pairwise(starts):
        branch = one_day if one_day is not None and b - a == timedelta(days=1) else text
        branches.append(branch.replace(_MARKER, f"({column} >= {_date(a)} AND {column} < {_date(b)})"))
    branches.append(text.replace(_MARKER, f"{column} >= {_date(starts[-1])}"))
    union = " UNION ALL ".join(f"({b})" for b in branches)
    if not modifiers:
        return union
    outer = con.execute("SELECT json_serialize_sql(?)", [f"SELECT * FROM {_PARTS}"]).fetchone()
    if not outer:
        return None
    wrap = json.loads(outer[0])
    wrap["statements"][0]["node"]["modifiers"] = modifiers
    shell = _print(con, wrap)
    if shell is None or shell.count(_PARTS) != 1:
        return None
    return shell.replace(_PARTS, f"({union}) AS {_PARTS}")


def _print(con: duckdb.DuckDBPyConnection, doc: dict[str, Any]) -> str | None:
    out = con.execute("SELECT json_deserialize_sql(?)", [json.dumps(doc)]).fetchone()
    return str(out[0]) if out and out[0] else None

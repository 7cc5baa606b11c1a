"""Merge-on-read tables: a base of one row per key plus a tail of change rows, resolved on read.

A replica that takes updates spread over the whole table cannot afford a Delta merge per round:
delta-rs rewrites every file holding a matched row (copy-on-write; it writes no deletion vectors),
so each round would rewrite the table (ADR 0040). Instead a round *appends* its changes:

* ``_shoal_op``: NULL on a base row; ``'u'`` (the key's full row as of the change) or ``'d'``
  (a delete: only the key is meaningful) on a change row;
* ``_shoal_seq``: NULL on a base row; on a change row, a number that grows with every commit of
  changes (the table version the round read, plus one). Every change row is newer than every base
  row of its key, and a later round's rows are newer than an earlier one's.

A table's rows are: for each key, its change row of the highest ``_shoal_seq`` if it has any,
else its base row -- unless that row is a delete. Compaction (``shoal.lake.morcompact``) folds
the tail into the base in one commit, so every version of the table reads the same either way.

The layout is recorded in the table's own schema, so it is versioned with the data: the
``_shoal_seq`` field carries the key columns as field metadata (delta-rs refuses table
properties it does not know). A reader that ignores it sees the raw rows: every change as a row of
its own, and the two columns above.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from shoal.lake.sqltext import sql_ident

OP = "_shoal_op"
SEQ = "_shoal_seq"
UPSERT = "u"
DELETE = "d"
#: the Delta field metadata on ``_shoal_seq`` naming the key columns (a JSON list)
KEYS_METADATA = "shoal.mergeOnRead.keys"
#: the columns this layout adds to a table
COLUMNS = (OP, SEQ)
_RANK = "__shoal_rank"


@dataclass(frozen=True)
class MergeOnRead:
    """A merge-on-read table's key columns (the rows are resolved per key)."""

    keys: tuple[str, ...]

    def fields(self) -> list[pa.Field]:
        """The two columns the layout adds, the key columns recorded on ``_shoal_seq``."""
        return [
            pa.field(OP, pa.string(), nullable=True),
            pa.field(SEQ, pa.int64(), nullable=True, metadata={KEYS_METADATA: json.dumps(list(self.keys))}),
        ]


def layout_of_fields(fields: Iterable[Any]) -> MergeOnRead | None:
    """The layout recorded in a Delta schema's fields (``DeltaTable.schema().fields``), or None."""
    names = set()
    keys: tuple[str, ...] | None = None
    for f in fields:
        names.add(f.name)
        if f.name == SEQ:
            raw = (f.metadata or {}).get(KEYS_METADATA)
            if isinstance(raw, str):
                parsed = json.loads(raw)
                if isinstance(parsed, list) and parsed and all(isinstance(k, str) for k in parsed):
                    keys = tuple(parsed)
    if keys is None or OP not in names or not set(keys) <= names:
        return None
    return MergeOnRead(keys)


def resolve_sql(source: str, layout: MergeOnRead | None, *, fixed: bool = False) -> str:
    """A query over ``source`` (a relation: table, view or ``delta_scan(...) AS x``) giving the
    table's rows: ``SELECT * FROM source`` for a plain table.

    ``fixed``: every mention of ``source`` reads the same rows (a pinned snapshot, one given
    version, an Arrow table). The base rows are then anti-joined with the tail's keys, so a filter
    on any column reaches the base's scan (file and row-group skipping) and only the tail is
    ranked per key. Otherwise ``source`` is read **once** and every row ranked: two ``delta_scan``s
    of the latest version each resolve a snapshot, and a compaction committed between them would
    show a row twice or not at all.
    """
    if layout is None:
        return f"SELECT * FROM {source}"
    keys = ", ".join(sql_ident(k) for k in layout.keys)
    if not fixed:
        rank = f"row_number() OVER (PARTITION BY {keys} ORDER BY {sql_ident(SEQ)} DESC NULLS LAST)"
        return (
            f"SELECT * EXCLUDE ({sql_ident(OP)}, {sql_ident(SEQ)}, {sql_ident(_RANK)}) FROM ("
            f"SELECT *, {rank} AS {sql_ident(_RANK)} FROM {source}) "
            f"WHERE {sql_ident(_RANK)} = 1 AND {sql_ident(OP)} IS DISTINCT FROM '{DELETE}'"
        )
    on = " AND ".join(f"b.{sql_ident(k)} = t.{sql_ident(k)}" for k in layout.keys)
    changed = f"SELECT {keys} FROM {source} WHERE {sql_ident(OP)} IS NOT NULL"
    latest = (
        f"SELECT * FROM {source} WHERE {sql_ident(OP)} IS NOT NULL "
        f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {sql_ident(SEQ)} DESC) = 1"
    )
    return (
        f"SELECT * EXCLUDE ({sql_ident(OP)}, {sql_ident(SEQ)}) FROM ("
        f"SELECT b.* FROM {source} AS b ANTI JOIN ({changed}) AS t ON {on} WHERE b.{sql_ident(OP)} IS NULL "
        f"UNION ALL SELECT * FROM ({latest}) WHERE {sql_ident(OP)} = '{UPSERT}')"
    )


def resolve(
    raw: pa.Table,
    layout: MergeOnRead,
    columns: Sequence[str] | None = None,
    filter: str | None = None,
) -> pa.Table:
    """The rows of a merge-on-read table from its raw rows (``columns``; ``filter``: a DuckDB SQL
    boolean expression on the resolved rows)."""
    import duckdb

    con = duckdb.connect()
    try:
        con.register("__shoal_raw", raw)
        cols = ", ".join(sql_ident(c) for c in columns) if columns else "*"
        where = f" WHERE {filter}" if filter else ""
        body = resolve_sql("__shoal_raw", layout, fixed=True)
        return con.sql(f"SELECT {cols} FROM ({body}){where}").to_arrow_table()
    finally:
        con.close()


def visible_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` without the layout's columns (what a reader of the resolved rows sees)."""
    return pa.schema([f for f in schema if f.name not in COLUMNS])


def base_rows(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """``data`` (rows of the visible columns) as base rows of a table of ``schema``: the layout's
    columns NULL, a column ``data`` lacks NULL, in the table's column order and types."""
    arrays = [
        data.column(f.name).cast(f.type)
        if f.name in data.column_names and f.name not in COLUMNS
        else pa.nulls(data.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def change_rows(upserts: pa.Table, deletes: pa.Table, seq: int, schema: pa.Schema) -> pa.Table:
    """One commit's change rows in the table's ``schema``: ``upserts`` (full rows) as ``'u'``,
    ``deletes`` (key columns, the rest NULL) as ``'d'``, all with sequence ``seq``."""
    parts = []
    for rows, op in ((upserts, UPSERT), (deletes, DELETE)):
        if rows.num_rows == 0:
            continue
        n = rows.num_rows
        part = base_rows(rows, schema)
        for name, values in ((OP, pa.array([op] * n, pa.string())), (SEQ, pa.array([seq] * n, pa.int64()))):
            part = part.set_column(schema.get_field_index(name), schema.field(name), values)
        parts.append(part)
    if not parts:
        return schema.empty_table()
    return pa.concat_tables(parts)

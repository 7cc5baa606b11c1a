"""Applying source rows to a replica's Delta table, with the source position in the same commit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
from deltalake import Field

from shoal.lake import Table
from shoal.lake.table import translate_errors
from shoal.replicate.model import Change, SourceTable


def key_of(table: SourceTable, row: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(row.get(k) for k in table.key)


def reduce_changes(
    table: SourceTable, changes: Sequence[Change]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The net effect of ``changes`` in order: rows to upsert and keys to delete (last change wins)."""
    state: dict[tuple[Any, ...], tuple[str, dict[str, Any]]] = {}
    for change in changes:
        if change.old_key is not None:
            state[key_of(table, change.old_key)] = ("delete", dict(change.old_key))
        state[key_of(table, change.row)] = (change.op, change.row)
    upserts = [row for op, row in state.values() if op == "upsert"]
    deletes = [{k: row.get(k) for k in table.key} for op, row in state.values() if op == "delete"]
    return upserts, deletes


def add_new_columns(target: Table, source: SourceTable) -> list[str]:
    """Add the source's columns the Delta table lacks (an upstream ADD COLUMN); returns their names."""
    have = set(target.schema.names)
    new = [pa.field(c.name, c.type, nullable=True) for c in source.columns if c.name not in have]
    if new:
        with translate_errors(f"add columns to {target.name}"):
            target.delta().alter.add_columns([Field.from_arrow(f) for f in new])
    return [f.name for f in new]


def apply_changes(
    target: Table, source: SourceTable, changes: Sequence[Change], positions: Mapping[str, int]
) -> tuple[int, int]:
    """Upsert and delete by key in one commit that also records ``positions``; (upserted, deleted)."""
    upserts, deletes = reduce_changes(source, changes)
    add_new_columns(target, source)
    data = source.to_arrow(upserts)
    key_schema = pa.schema([source.schema.field(k) for k in source.key])
    delete_keys = (
        pa.Table.from_arrays([source.to_arrow(deletes).column(k) for k in source.key], schema=key_schema)
        if deletes
        else None
    )
    if not upserts and not deletes:
        target.append(data, app_transactions=positions)
    else:
        target.merge(data, list(source.key), delete_keys=delete_keys, app_transactions=positions)
    return len(upserts), len(deletes)

"""Applying source rows to a replica's Delta table, with the source position in the same commit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from deltalake import Field

from shoal.lake import Table
from shoal.lake.mergeonread import MergeOnRead, base_rows, change_rows
from shoal.lake.table import translate_errors
from shoal.replicate.model import Change, SourceTable


def key_of(table: SourceTable, row: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(row.get(k) for k in table.key)


@dataclass
class NetChanges:
    """The net effect of a round's changes by key: what a commit has to write."""

    #: rows whose key is new since the round began (inserted, maybe updated after): appended
    fresh: list[dict[str, Any]] = field(default_factory=list)
    #: rows of keys that may already be in the replica: merged by key
    upserts: list[dict[str, Any]] = field(default_factory=list)
    #: keys to delete
    deletes: list[dict[str, Any]] = field(default_factory=list)


def reduce_changes(table: SourceTable, changes: Sequence[Change], *, converged: bool = False) -> NetChanges:
    """The net effect of ``changes`` in order (last change wins).

    ``converged``: the replica equals the source at the round's start (the snapshot's overlap is
    replayed), so a key first seen as an insert is not in the replica: its final row is appended
    and a key inserted then deleted is left out, without a merge reading the table.
    """
    state: dict[tuple[Any, ...], tuple[str, dict[str, Any]]] = {}
    fresh: set[tuple[Any, ...]] = set()
    for change in changes:
        if change.old_key is not None:
            state[key_of(table, change.old_key)] = ("delete", dict(change.old_key))
        key = key_of(table, change.row)
        if converged and change.insert and key not in state:
            fresh.add(key)
        state[key] = (change.op, change.row)
    net = NetChanges()
    for key, (op, row) in state.items():
        if key in fresh:
            if op == "upsert":
                net.fresh.append(row)
        elif op == "upsert":
            net.upserts.append(row)
        else:
            net.deletes.append({k: row.get(k) for k in table.key})
    return net


def add_new_columns(target: Table, source: SourceTable) -> list[str]:
    """Add the source's columns the Delta table lacks (an upstream ADD COLUMN); returns their names."""
    have = set(target.schema.names)
    new = [pa.field(c.name, c.type, nullable=True) for c in source.columns if c.name not in have]
    if new:
        with translate_errors(f"add columns to {target.name}"):
            target.delta().alter.add_columns([Field.from_arrow(f) for f in new])
    return [f.name for f in new]


def apply_changes(
    target: Table,
    source: SourceTable,
    changes: Sequence[Change],
    positions: Mapping[str, int],
    *,
    converged: bool = False,
    layout: MergeOnRead | None = None,
) -> tuple[int, int]:
    """Upsert and delete by key in one commit that also records ``positions``; (upserted, deleted).

    Only new keys (``converged``, see :func:`reduce_changes`): a plain append, which costs a
    fraction of a merge (a merge joins against the table's files). A ``truncate`` among the
    changes: the table is overwritten with what follows it. A merge-on-read replica (``layout``):
    the round's net changes are appended as change rows, whatever they are (ADR 0040).
    """
    add_new_columns(target, source)
    truncated = [i for i, c in enumerate(changes) if c.op == "truncate"]
    if truncated:
        # an upstream TRUNCATE: the table is the rows written after the last one, in one
        # overwrite that also records the position (an interrupted round redoes it whole)
        net = reduce_changes(source, changes[truncated[-1] + 1 :], converged=True)
        rows = source.to_arrow(net.upserts + net.fresh)
        if layout is not None:  # merge-on-read: they are the new base, the tail goes with the rest
            rows = base_rows(rows, target.schema)
        target.overwrite(rows, app_transactions=positions)
        return len(net.upserts) + len(net.fresh), 0
    net = reduce_changes(source, changes, converged=converged)
    if layout is not None:
        return _append_changes(target, source, net, positions)
    if not net.upserts and not net.deletes:
        target.append(source.to_arrow(net.fresh), app_transactions=positions)
        return len(net.fresh), 0
    data = source.to_arrow(net.upserts + net.fresh)
    key_schema = pa.schema([source.schema.field(k) for k in source.key])
    delete_keys = (
        pa.Table.from_arrays([source.to_arrow(net.deletes).column(k) for k in source.key], schema=key_schema)
        if net.deletes
        else None
    )
    target.merge(data, list(source.key), delete_keys=delete_keys, app_transactions=positions)
    return len(net.upserts) + len(net.fresh), len(net.deletes)


def _append_changes(
    target: Table, source: SourceTable, net: NetChanges, positions: Mapping[str, int]
) -> tuple[int, int]:
    """A merge-on-read round: the net changes appended as change rows, with the position.

    Their sequence is the table version this round read, plus one: the sync is the only writer of
    change rows and its rounds run one after the other, so each round's sequence exceeds the last
    one's (it read at least the version that round committed), whatever compactions commit.
    """
    seq = target.version + 1
    upserts = source.to_arrow(net.upserts + net.fresh)
    deletes = source.to_arrow(net.deletes)
    target.append(change_rows(upserts, deletes, seq, target.schema), app_transactions=positions)
    return upserts.num_rows, deletes.num_rows

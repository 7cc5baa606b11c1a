"""Recent rows: a holding runner's in-memory copy of a restating model's rows from a floor on,
indexed by slice, read in place of the Delta scan for the rows a refresh restates (ADR 0052).

A model with ``restate_from`` (``billing.charges_hourly``: running totals per resource-month, in
hour order) recomputes each touched slice from its earliest changed value on, and compares the
result with its current rows there (``__shoal_old``). Those rows lie in the recent past: a late
event restates its slice from its own hour, at most a few days back. Read from Delta, one scan
serves every late slice of a cycle, bounded below by the earliest of them, so it decodes most of
the recent rows of the table to return a few thousand (110-210 CPU-ms a cycle in
``bench/bench_refresh_scaling.py``).

A runner that holds state (a watcher) keeps instead every row whose restate value is at least a
``floor`` in Arrow, with each row's slice as a dense integer code and its restate value as an
int64. The rows in scope are then one gather and compare over those arrays and a ``take`` of the
few thousand rows. The copy is kept exact the way :mod:`shoal.models.arrangements` keeps its
copies: it reflects one Delta version; the runner's own commits are applied to it (the rows of
the keys it replaced or deleted are marked dead, its new rows appended); a commit it did not make,
a rebuild, or anything it cannot apply drops it, and the next refresh reads Delta or reloads.

The floor starts at the earliest restate point the first refresh needs and is lowered, by reading
just the missing range, when a later refresh reaches further back. How far back restates reach
(the ``span``, the newest restate value less the earliest requested) bounds what is kept: rows
older than the newest value less the span are dropped once they are a third of the copy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shoal.lake import Table
from shoal.lake import sql_ident as ident
from shoal.models.model import Model
from shoal.models.sql import ARROW_ERRORS, literal, plain

#: restate columns taken (as int64: microseconds, days, or the integer itself)
_ORDERED = (pa.types.is_timestamp, pa.types.is_date32, pa.types.is_integer)
_FROM = "__shoal_from"
_MAX_CHUNKS = 32  # appended tables are combined beyond this many (a take over many chunks is slow)


def _restate_ints(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Restate values as int64 (NULLs must have been ruled out)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_timestamp(values.type):
        values = values.cast(pa.int64())
    elif pa.types.is_date32(values.type):
        values = values.cast(pa.int32())
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.int64)


def _slice_keys(table: pa.Table, by: tuple[str, ...]) -> pa.Array:
    """One string per row naming its slice, injectively: each value but the last is prefixed by
    its length, so no two slices share a key whatever their values hold."""
    cols = [plain(pc.cast(table[c], pa.string())) for c in by]
    if len(cols) == 1:
        return cols[0].combine_chunks()
    parts: list[pa.ChunkedArray | str] = []
    for col in cols[:-1]:
        parts += [pc.cast(pc.utf8_length(col), pa.string()), ":", col]
    parts.append(cols[-1])
    return pc.binary_join_element_wise(*parts, "").combine_chunks()


def _restate_value(value: int, type_: pa.DataType) -> object:
    """An int64 restate value back as a Python value of the column's type (for a SQL bound)."""
    ints = pa.array([value], pa.int64())
    return (ints.cast(pa.int32()) if pa.types.is_date32(type_) else ints).cast(type_)[0].as_py()


@dataclass
class _Copy:
    """One model's recent rows at ``version``: appended tables (``chunks``) and, per row, its
    slice's code, its restate value and whether it is still the table's (replaced and deleted
    rows are marked dead, not removed, until :meth:`RecentRows._prune` rewrites the copy)."""

    version: int
    schema: pa.Schema
    restate_type: pa.DataType
    floor: int  # every row with a restate value >= floor is here, alive
    chunks: list[pa.Table]
    codes: np.ndarray  # each row's slice: a position in ``keys``
    restate: np.ndarray
    alive: np.ndarray
    keys: pa.Array  # the slice keys seen, by code
    span: int = 0
    newest: int = field(default=np.iinfo(np.int64).min)

    def table(self) -> pa.Table:
        return pa.concat_tables(self.chunks) if len(self.chunks) != 1 else self.chunks[0]

    def take(self, positions: np.ndarray, columns: list[str] | None = None) -> pa.Table:
        """The rows at ``positions`` (ascending), chunk by chunk: Arrow's take over a table of many
        chunks concatenates each column first, which costs as much as the Delta read it replaces."""
        if len(self.chunks) > _MAX_CHUNKS:
            self.chunks = [pa.concat_tables(self.chunks).combine_chunks()]
        parts = []
        start = 0
        for chunk in self.chunks:
            end = start + chunk.num_rows
            lo, hi = np.searchsorted(positions, [start, end])
            if hi > lo:
                part = chunk if columns is None else chunk.select(columns)
                parts.append(part.take(pa.array(positions[lo:hi] - start)))
            start = end
        if not parts:
            return (
                self.schema if columns is None else pa.schema([self.schema.field(c) for c in columns])
            ).empty_table()
        return pa.concat_tables(parts)

    def code(self, keys: pa.Array) -> np.ndarray:
        """The codes of ``keys``, new ones added (only they are hashed a second time)."""
        found = pc.index_in(keys, value_set=self.keys)
        codes = np.asarray(pc.fill_null(found, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
        if found.null_count:
            missing = np.flatnonzero(codes < 0)
            new_keys = keys.take(pa.array(missing))
            new = pc.unique(new_keys)
            at = pc.index_in(new_keys, value_set=new).to_numpy(zero_copy_only=False)
            codes[missing] = len(self.keys) + np.asarray(at, dtype=np.int64)
            self.keys = pa.concat_arrays([self.keys, new])
        return codes

    def add(self, rows: pa.Table, codes: np.ndarray, restate: np.ndarray) -> None:
        if not rows.num_rows:
            return
        self.chunks.append(rows.combine_chunks())
        self.codes = np.concatenate([self.codes, codes])
        self.restate = np.concatenate([self.restate, restate])
        self.alive = np.concatenate([self.alive, np.ones(rows.num_rows, dtype=bool)])
        self.newest = max(self.newest, int(restate.max()))

    def select(self, scope_codes: np.ndarray, scope_from: np.ndarray) -> np.ndarray:
        """Positions of the live rows of the scope's slices from each slice's restate point on."""
        start = np.full(len(self.keys), np.iinfo(np.int64).max, dtype=np.int64)
        known = scope_codes >= 0
        start[scope_codes[known]] = scope_from[known]
        return np.flatnonzero(self.alive & (self.restate >= start[self.codes]))


class RecentRows:
    """The copies one runner's session keeps (see the module docstring); ``enabled`` by a runner
    that holds state."""

    def __init__(self, con: Callable[[], duckdb.DuckDBPyConnection]) -> None:
        self._con = con
        self.enabled = False
        self._copies: dict[str, _Copy] = {}

    @staticmethod
    def fits(model: Model, schema: pa.Schema) -> bool:
        """Whether ``model``'s rows in scope can be served from a copy: it restates from an ordered
        column, and its unique key holds the slice and that column, so a replaced or deleted row
        lies in the scope of the refresh that writes its key."""
        rf = model.restate_from
        if rf is None or rf not in schema.names or not model.incremental_by:
            return False
        if not {*model.incremental_by, rf} <= set(model.unique_key):
            return False
        return any(test(schema.field(rf).type) for test in _ORDERED)

    def rows(self, model: Model, table: Table, version: int | None, scope: pa.Table) -> pa.Table | None:
        """``model``'s rows at ``version`` in the slices of ``scope`` from each one's ``__shoal_from``
        on; None when the copy cannot serve them (then read the Delta table)."""
        if not self.enabled or version is None or not self.fits(model, table.schema):
            return None
        if scope.num_rows == 0 or any(scope[c].null_count for c in (*model.incremental_by, _FROM)):
            return None  # a whole slice (no restate point) or a NULL slice: the scan's
        try:
            copy = self._ready(model, table, version, scope)
            if copy is None:
                return None
            frm = _restate_ints(scope[_FROM])
            copy.span = max(copy.span, copy.newest - int(frm.min()))
            codes = np.asarray(
                pc.fill_null(
                    pc.index_in(_slice_keys(scope, model.incremental_by), value_set=copy.keys), -1
                ).to_numpy(zero_copy_only=False),
                dtype=np.int64,
            )
            return copy.take(copy.select(codes, frm))
        except (*ARROW_ERRORS, duckdb.Error):
            self.drop(model.name)
            return None

    def apply(
        self,
        model: Model,
        *,
        before: int | None,
        version: int,
        scope: pa.Table,
        rows: pa.Table,
        stale: pa.Table,
        existed: bool,
    ) -> None:
        """The runner committed ``rows`` (upserts; ``existed``: some of their keys were in the
        table) and deletes of ``stale`` keys at ``version``, all in the slices of ``scope`` (with
        their restate points) where keys existed: apply them to the copy if it reflects ``before``
        and the commit landed right on it, else drop the copy."""
        copy = self._copies.get(model.name)
        if copy is None:
            return
        if copy.version != before or version != (before or 0) + 1:
            self.drop(model.name)
            return
        by, rf = model.incremental_by, model.restate_from
        assert rf is not None
        try:
            if any(t[c].null_count for t in (scope, rows) for c in (*by, rf if t is rows else _FROM)):
                raise ValueError("NULL slice or restate value")  # nothing to index it by: drop
            key = list(model.unique_key)
            gone = pa.concat_tables([rows.select(key), stale.select(key).cast(rows.select(key).schema)])
            if any(c.null_count for c in gone.columns):
                raise ValueError("NULL in a key")  # Arrow's join would not match it, SQL's does
            if existed or stale.num_rows:
                self._kill(copy, model, scope, gone)
            restate = _restate_ints(rows[rf])
            keep = restate >= copy.floor
            if keep.any():
                kept = rows.filter(pa.array(keep)).select(copy.schema.names).cast(copy.schema)
                copy.add(kept, copy.code(_slice_keys(kept, by)), restate[keep])
            copy.version = version
            self._prune(copy)
        except (*ARROW_ERRORS, ValueError):
            self.drop(model.name)

    def moved(self, name: str, *, before: int | None, version: int) -> None:
        """The runner committed nothing but its progress at ``version``."""
        copy = self._copies.get(name)
        if copy is not None:
            if copy.version == before and version == (before or 0) + 1:
                copy.version = version
            else:
                self.drop(name)

    def held(self, name: str) -> int | None:
        """The number of rows the copy of ``name`` holds (None: no copy)."""
        copy = self._copies.get(name)
        return None if copy is None else int(copy.alive.sum())

    def drop(self, name: str) -> None:
        self._copies.pop(name, None)

    def forget(self) -> None:
        self._copies.clear()

    # -- internals --------------------------------------------------------------------------------
    def _ready(self, model: Model, table: Table, version: int, scope: pa.Table) -> _Copy | None:
        """The copy at ``version`` reaching down to the scope's earliest restate point (loaded or
        extended from Delta as needed)."""
        copy = self._copies.get(model.name)
        if copy is not None and copy.version != version:
            self.drop(model.name)
            copy = None
        low = pc.min(scope[_FROM])
        low_int = int(_restate_ints(pa.array([low.as_py()], scope.schema.field(_FROM).type))[0])
        if copy is not None and low_int >= copy.floor:
            return copy
        rf = model.restate_from or ""
        bound = literal(low.as_py())
        upper = None if copy is None else literal(_restate_value(copy.floor, copy.restate_type))
        if bound is None or (copy is not None and upper is None):
            return None
        where = f"{ident(rf)} >= {bound}" + ("" if copy is None else f" AND {ident(rf)} < {upper}")
        uri = table.uri.replace("'", "''")
        read = (
            self._con()
            .sql(f"SELECT * FROM delta_scan('{uri}', version => {int(version)}) WHERE {where}")
            .to_arrow_table()
            .select(table.schema.names)
            .cast(table.schema)
        )
        if copy is None:
            copy = _Copy(
                version=version,
                schema=table.schema,
                restate_type=table.schema.field(rf).type,
                floor=low_int,
                chunks=[table.schema.empty_table()],
                codes=np.zeros(0, dtype=np.int64),
                restate=np.zeros(0, dtype=np.int64),
                alive=np.zeros(0, dtype=bool),
                keys=pa.array([], pa.string()),
            )
            self._copies[model.name] = copy
        copy.floor = low_int
        copy.add(read, copy.code(_slice_keys(read, model.incremental_by)), _restate_ints(read[rf]))
        return copy

    def _kill(self, copy: _Copy, model: Model, scope: pa.Table, keys: pa.Table) -> None:
        """Mark dead the rows of ``keys`` (replaced or deleted): they lie in ``scope``."""
        if keys.num_rows == 0:
            return
        codes = np.asarray(
            pc.fill_null(
                pc.index_in(_slice_keys(scope, model.incremental_by), value_set=copy.keys), -1
            ).to_numpy(zero_copy_only=False),
            dtype=np.int64,
        )
        frm = _restate_ints(scope[_FROM])
        positions = copy.select(codes, np.maximum(frm, copy.floor))
        if not len(positions):
            return
        key = list(model.unique_key)
        candidates = copy.take(positions, key)
        candidates = candidates.append_column("__shoal_p", pa.array(positions))
        hit = candidates.join(
            keys.cast(candidates.select(key).schema), keys=key, join_type="left semi", use_threads=False
        )
        copy.alive[np.asarray(hit["__shoal_p"].to_numpy(), dtype=np.int64)] = False

    def _prune(self, copy: _Copy) -> None:
        """Drop the rows no restate reaches any more (and dead ones) once they are a third."""
        floor = max(copy.floor, copy.newest - copy.span)
        keep = copy.alive & (copy.restate >= floor)
        if keep.sum() * 3 > len(keep) * 2:
            return
        copy.chunks = [copy.take(np.flatnonzero(keep)).combine_chunks()]
        copy.codes, copy.restate = copy.codes[keep], copy.restate[keep]
        copy.alive = np.ones(len(copy.codes), dtype=bool)
        copy.floor = max(copy.floor, floor)

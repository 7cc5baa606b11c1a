"""Keyed sums: a held model's in-memory copy as numpy sums found by a hash of the key.

A holding runner adds each cycle's signed sums to its copy of ``billing.invoice_lines`` (ADR
0038). Done as a DuckDB ``MERGE`` into a temp table, that costs in proportion to the copy, not to
the change: the join scans every line of the month and the update rewrites the matched rows
(48 CPU-ms for 20,000 changed lines of 60,000, 93 of 200,000, in an ad-hoc run). Here the copy
is its key columns in Arrow and one numpy array per sum, with a sorted index of a 64-bit hash of
each key (DuckDB's ``hash``). An add hashes the change's keys, finds their rows by binary search,
checks that the keys found are the keys asked for (a hash collision is never trusted: the add is
refused, and the arrangement turns the copy back into a temp table that the ``MERGE`` adds to),
and adds in place.

Only models whose columns are their key and their sums, each sum an integer or a decimal of at
most 18 digits, fit (:meth:`KeyedSums.fits`); the others keep the ``MERGE``. What readers see is
the same table: :meth:`KeyedSums.table` gives the rows whose count is not zero (a ``MERGE`` deletes
them), registered in DuckDB under the copy's name by :mod:`shoal.models.arrangements`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shoal.lake import sql_ident as ident
from shoal.models.model import Model

_MAX_KEY_CHUNKS = 16  # key columns are combined beyond this many appended chunks (takes slow down)


@dataclass(frozen=True)
class Prepared:
    """An add checked and computed, not yet applied (:meth:`KeyedSums.prepare`)."""

    size: int  # the copy's row count it was computed on
    rows: np.ndarray  # the copy row of each key of the change (new keys: appended rows)
    values: dict[str, np.ndarray]  # each sum's value after the add, per key of the change
    live: np.ndarray  # per key of the change: it had a row (a nonzero count) before
    keys: pa.Table  # the change's keys, typed as the copy's
    new: np.ndarray  # positions in the change of keys the copy does not have
    new_hashes: np.ndarray


def nonzero_rows(delta: pa.Table, sums: Sequence[str]) -> pa.Table:
    """The rows of ``delta`` that move a sum (``coalesce(sum, 0) <> 0`` for any of ``sums``)."""
    moves = None
    for name in sums:
        m = pc.fill_null(pc.not_equal(delta[name], pa.scalar(0, pa.int64())), False)
        moves = m if moves is None else pc.or_(moves, m)
    return delta if moves is None else delta.filter(moves)


def _sum_type(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or (pa.types.is_decimal128(t) and t.precision <= 18))


def _units(values: pa.ChunkedArray | pa.Array, type_: pa.DataType) -> np.ndarray:
    """Values of a sum column as int64 (decimals in units of their scale); NULL is 0, as the
    MERGE's ``coalesce(o.sum, 0) + d.sum`` would read an absent row."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if values.type != type_:
        values = values.cast(type_)  # a safe cast: raises rather than lose digits
    if pa.types.is_decimal128(type_):
        values = values.view(pa.decimal128(type_.precision, 0)).cast(pa.int64())
    else:
        values = values.cast(pa.int64())
    return np.asarray(pc.fill_null(values, 0).to_numpy(zero_copy_only=False), dtype=np.int64)


def _column(units: np.ndarray, type_: pa.DataType) -> pa.Array:
    """int64 units back as a column of ``type_``."""
    if pa.types.is_decimal128(type_):
        wide = np.empty((len(units), 2), dtype=np.int64)
        wide[:, 0] = units
        wide[:, 1] = units >> 63  # two's complement sign extension to 128 bits
        return pa.Array.from_buffers(type_, len(units), [None, pa.py_buffer(wide)])
    return pa.array(units, pa.int64()).cast(type_)


def _limit(type_: pa.DataType) -> int | None:
    """The bound a sum of ``type_`` must stay under in absolute value (None: int64's own)."""
    if pa.types.is_decimal128(type_):
        return int(10**type_.precision)
    if type_.bit_width < 64:
        return int(np.iinfo(type_.to_pandas_dtype()).max)
    return None


def _same(a: pa.ChunkedArray | pa.Array, b: pa.ChunkedArray | pa.Array) -> bool:
    """Whether two key columns are equal row by row, NULL equal to NULL (IS NOT DISTINCT FROM)."""
    equal = pc.equal(a, b)
    both_null = pc.and_(pc.is_null(a), pc.is_null(b))
    return bool(pc.all(pc.fill_null(pc.or_kleene(equal, both_null), False)).as_py())


class KeyedSums:
    """One held model's copy (see the module docstring)."""

    def __init__(self, model: Model, schema: pa.Schema) -> None:
        assert model.additive_count is not None
        self.model = model
        self.schema = schema
        self._key = list(model.unique_key)
        self._sums = list(model.additive)
        self._count = model.additive_count
        self._keys = pa.schema([schema.field(c) for c in self._key]).empty_table()
        self._values = {c: np.zeros(0, dtype=np.int64) for c in self._sums}
        self._hashes = np.zeros(0, dtype=np.uint64)  # sorted
        self._rows = np.zeros(0, dtype=np.int64)  # the row of each hash above

    @staticmethod
    def fits(model: Model, schema: pa.Schema) -> bool:
        """Whether ``model``'s table (``schema``) can be held as keyed sums."""
        if model.additive_count is None or set(schema.names) != {*model.unique_key, *model.additive}:
            return False
        return all(_sum_type(schema.field(c).type) for c in model.additive)

    @classmethod
    def of(cls, con: duckdb.DuckDBPyConnection, model: Model, rows: pa.Table) -> KeyedSums | None:
        """The keyed sums of ``rows`` (the copy as loaded); None if two keys share a hash."""
        sums = cls(model, rows.schema)
        return sums if sums.add(con, rows) is not None else None

    def add(self, con: duckdb.DuckDBPyConnection, delta: pa.Table) -> np.ndarray | None:
        """Add ``delta``'s signed sums (one row per key) and return each of its keys' new count;
        None, with nothing changed, when a hash collides, a sum would leave its type, or a column
        does not convert (the caller then keeps the copy as a temp table and merges there)."""
        prepared = self.prepare(con, delta)
        if prepared is None:
            return None
        self.commit(prepared)  # prepared on the copy as it is
        return prepared.values[self._count]

    def prepare(self, con: duckdb.DuckDBPyConnection, delta: pa.Table) -> Prepared | None:
        """What adding ``delta`` would make of its keys' rows, with every check done and nothing
        changed yet (:meth:`commit` applies it); None as :meth:`add` says."""
        n = delta.num_rows
        try:
            # the key columns as the copy types them (DuckDB may hand strings over as views)
            keys = delta.select(self._key).cast(self._keys.schema)
            hashes = self._hash(con, keys) if n else np.zeros(0, dtype=np.uint64)
            adds = {c: _units(delta[c], self.schema.field(c).type) for c in self._sums}
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, duckdb.Error):
            return None
        at = np.searchsorted(self._hashes, hashes)
        found = at < len(self._hashes)
        found[found] = self._hashes[at[found]] == hashes[found]
        rows = np.full(n, -1, dtype=np.int64)
        rows[found] = self._rows[at[found]]
        old = np.flatnonzero(found)
        if len(old) and not self._keys_match(keys, old, rows[old]):
            return None  # two keys share a hash
        new = np.flatnonzero(~found)
        new_hashes = hashes[new]
        if len(np.unique(new_hashes)) != len(new):
            return None
        start = self._keys.num_rows
        rows[new] = np.arange(start, start + len(new), dtype=np.int64)
        # a key deleted (count 0) and now added again starts from this change's values
        live = np.zeros(n, dtype=bool)
        live[old] = self._values[self._count][rows[old]] != 0
        values: dict[str, np.ndarray] = {}
        for c in self._sums:
            before = np.zeros(n, dtype=np.int64)
            before[live] = self._values[c][rows[live]]
            after = before + adds[c]
            limit = _limit(self.schema.field(c).type)
            if limit is not None and np.any(np.abs(after) >= limit):
                return None
            values[c] = after
        return Prepared(start, rows, values, live, keys, new, new_hashes)

    def commit(self, prepared: Prepared) -> bool:
        """Apply what :meth:`prepare` computed; False (nothing applied) when the copy changed
        since."""
        if prepared.size != self._keys.num_rows:
            return False
        grow = len(prepared.new)
        for c in self._sums:
            column = self._values[c]
            if grow:
                column = np.concatenate([column, np.zeros(grow, dtype=np.int64)])
            column[prepared.rows] = prepared.values[c]
            self._values[c] = column
        if grow:
            self._keys = pa.concat_tables([self._keys, prepared.keys.take(pa.array(prepared.new))])
            if self._keys.column(0).num_chunks > _MAX_KEY_CHUNKS:
                self._keys = self._keys.combine_chunks()
            order = np.argsort(prepared.new_hashes)
            sorted_new = prepared.new_hashes[order]
            where = np.searchsorted(self._hashes, sorted_new)
            self._hashes = np.insert(self._hashes, where, sorted_new)
            self._rows = np.insert(self._rows, where, prepared.rows[prepared.new][order])
        return True

    def changed_rows(self, prepared: Prepared) -> tuple[pa.Table, pa.Table, bool]:
        """A prepared add as a commit of the model's table: (the new rows of its keys whose count
        is not zero, the keys whose count reached zero and that had a row, whether any new row's
        key had one already)."""
        count = prepared.values[self._count]
        keep = count != 0
        gone = ~keep & prepared.live
        columns = {c: prepared.keys[c] for c in self._key}
        for c in self._sums:
            columns[c] = _column(prepared.values[c], self.schema.field(c).type)
        every = pa.table([columns[c] for c in self.schema.names], schema=self.schema)
        rows = every.filter(pa.array(keep))
        stale = prepared.keys.filter(pa.array(gone))
        return rows, stale, bool(np.any(prepared.live & keep))

    def table(self) -> pa.Table:
        """The copy's rows: every key whose count is not zero, in the table's column order."""
        live = np.flatnonzero(self._values[self._count] != 0) if self._sums else np.zeros(0, np.int64)
        every = len(live) == self._keys.num_rows
        keys = self._keys if every else self._keys.take(pa.array(live))
        columns = {c: keys[c] for c in self._key}
        for c in self._sums:
            units = self._values[c] if every else self._values[c][live]
            columns[c] = _column(units, self.schema.field(c).type)
        return pa.table([columns[c] for c in self.schema.names], schema=self.schema)

    def _hash(self, con: duckdb.DuckDBPyConnection, rows: pa.Table) -> np.ndarray:
        con.register("__shoal_keyed", rows.select(self._key))
        try:
            out = con.sql(
                f"SELECT hash({', '.join(ident(c) for c in self._key)}) FROM __shoal_keyed"
            ).to_arrow_table()
        finally:
            con.unregister("__shoal_keyed")
        return np.asarray(out.column(0).to_numpy(), dtype=np.uint64)

    def _keys_match(self, keys: pa.Table, at_delta: np.ndarray, at_copy: np.ndarray) -> bool:
        mine = pa.array(at_copy)
        theirs = pa.array(at_delta)
        return all(_same(self._keys[c].take(mine), keys[c].take(theirs)) for c in self._key)

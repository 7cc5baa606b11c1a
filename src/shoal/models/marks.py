"""Restate marks: per slice, the greatest ``restate_from`` value among a model's rows (ADR 0043).

A slice refresh of a model with ``restate_from`` compares the recomputed rows with the target's rows
in scope (``__shoal_old``: the touched slices from their restate point on). In a live stream most
slices are touched at a point past every row they hold (a resource's next hour), so that read finds
nothing, yet it costs a join of every touched slice with the target's recent files: a quarter of
``billing.charges_hourly``'s cycle. The runner therefore keeps, per slice, an upper bound of the
``restate_from`` values the target holds, and reads the target only for slices whose restate point
is at or below it (late events, duplicates, whole-slice restates).

The marks are loaded per value of the first ``incremental_by`` column (e.g. per month) the first
time a refresh touches it, from the table at the version the refresh read, and raised from the
rows each of the runner's commits writes. They are used only while the table stands at the
version they reflect: a commit the runner did not make drops them, as it drops an arrangement.
Deleted rows do not lower a mark: an upper bound only ever makes a refresh read more than it must.

A model with ``restate_scope`` (ADR 0055) also gets, kept the same way: per slice the least value
of each ``scope_lows`` column (a lower bound: deleted rows do not raise it), and the 64-bit hashes
of every ``scope_seen`` value of the loaded groups' rows (8 bytes a row), with which its function
tells which candidate slices need no read at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shoal.errors import ShoalError
from shoal.lake import Table, sql_literal
from shoal.lake import sql_ident as ident
from shoal.models.model import Model, ScopeInputs
from shoal.models.sql import ARROW_ERRORS, ROW_INDEX, literal, plain, with_row_index

MARK = "__shoal_mark"
_LOW = "__shoal_low_"  # + a scope_lows column: its least value per slice


class HashSet:
    """A set of 64-bit hashes, in two sorted arrays: a recent one that takes each cycle's hashes
    (an insert into a small array) and a base it is merged into once it reaches an eighth of it,
    so an add costs in proportion to the change, not to the set (amortised)."""

    def __init__(self) -> None:
        self._base = np.zeros(0, dtype=np.uint64)
        self._recent = np.zeros(0, dtype=np.uint64)

    def __len__(self) -> int:
        return len(self._base) + len(self._recent)

    def add(self, hashes: np.ndarray) -> None:
        if not len(hashes):
            return
        new = np.sort(np.asarray(hashes, dtype=np.uint64))
        self._recent = np.insert(self._recent, np.searchsorted(self._recent, new), new)
        if len(self._recent) * 8 >= len(self._base):
            self._base = np.insert(self._base, np.searchsorted(self._base, self._recent), self._recent)
            self._recent = np.zeros(0, dtype=np.uint64)

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        out = np.zeros(len(hashes), dtype=bool)
        for part in (self._base, self._recent):
            if len(part):
                at = np.minimum(np.searchsorted(part, hashes), len(part) - 1)
                out |= part[at] == hashes
        return out


def value_hashes(con: duckdb.DuckDBPyConnection, values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """DuckDB's 64-bit ``hash`` of each value (what :class:`HashSet` holds)."""
    con.register("__shoal_hashed", pa.table({"v": values}))
    try:
        out = con.sql("SELECT hash(v) FROM __shoal_hashed").to_arrow_table()
    finally:
        con.unregister("__shoal_hashed")
    return np.asarray(out.column(0).to_numpy(), dtype=np.uint64)


@dataclass
class _Marks:
    #: the Delta version of the model's table the marks reflect
    version: int
    #: the first ``incremental_by`` column's values (as SQL literals) whose slices are loaded
    groups: set[str] = field(default_factory=set)
    #: one row per slice: the ``incremental_by`` columns, ``MARK`` and the ``scope_lows``' least
    #: values (None: no slice loaded yet)
    rows: pa.Table | None = None
    #: the hashes of the ``scope_seen`` values of the loaded groups' rows (None: not kept)
    seen: HashSet | None = None


class RestateMarks:
    """The marks of one runner's session (see the module docstring).

    The marks are an Arrow table per model, matched and raised with Arrow's hash join and hash
    aggregation: a cycle's few thousand slices cost a few milliseconds there, against ~30 ms for
    the DuckDB join and ``MERGE`` over a temp table they replace (issue 18, seventh session).
    A slice with a NULL slice value is never matched (Arrow's join does not match NULLs), so
    such slices are always read: an upper bound missing only makes a refresh read more."""

    def __init__(self, con: Callable[[], duckdb.DuckDBPyConnection]) -> None:
        self._con = con
        self._held: dict[str, _Marks] = {}

    @staticmethod
    def applies(model: Model) -> bool:
        return bool(model.restate_from and model.incremental_by)

    def in_scope(
        self,
        model: Model,
        table: Table,
        version: int | None,
        touched: pa.Table,
        *,
        changes: pa.Table | None = None,
        query: Callable[[str], pa.Table] | None = None,
    ) -> pa.Table:
        """The slices of ``touched`` (``incremental_by`` columns and ``__shoal_from``) whose scope
        may hold rows of ``table`` at ``version``: a slice restated whole, or from a point at or
        below its mark. Slices with no rows, or whose restate point is past their mark, are left
        out. All of ``touched`` when marks cannot be kept for it. With ``restate_scope`` (and
        ``changes``, the upstream's change rows), only those of them its function keeps."""
        if not self.applies(model) or version is None or touched.num_rows == 0:
            return touched
        first = model.incremental_by[0]
        values = plain(touched[first])
        found = [literal(v) for v in pc.unique(values).to_pylist()]
        groups = [g for g in found if g is not None]
        if values.null_count or len(groups) != len(found):
            return touched  # NULL or exotic slice values: no marks, read as before
        held = self._held.get(model.name)
        if held is None or held.version != version:
            self.drop(model.name)
            held = self._held[model.name] = _Marks(version)
        missing = [g for g in groups if g not in held.groups]
        if missing:
            try:
                self._load(model, table, version, held, missing)
            except (duckdb.Error, *ARROW_ERRORS):
                self.drop(model.name)
                return touched
            held.groups.update(missing)
        assert held.rows is not None
        by = list(model.incremental_by)
        try:
            probe = with_row_index(touched.select(by).cast(held.rows.select(by).schema))
            joined = probe.join(held.rows, keys=by, join_type="left outer", use_threads=False)
            start = touched["__shoal_from"].take(joined[ROW_INDEX]).cast(joined[MARK].type)
        except ARROW_ERRORS:
            self.drop(model.name)
            return touched
        # a slice restated whole, or from a point at or below its mark (no mark: no rows)
        keep = pc.or_(pc.is_null(start), pc.fill_null(pc.greater_equal(joined[MARK], start), False))
        for c in by:
            # Arrow's join matches no NULL key: such a slice is read (an unknown mark)
            keep = pc.or_(keep, pc.is_null(joined[c]))
        kept = touched.take(joined[ROW_INDEX].filter(keep))
        if model.restate_scope is None or changes is None or query is None or kept.num_rows == 0:
            return kept
        return self._narrowed(model, held, kept, joined.filter(keep), changes=changes, query=query)

    def _narrowed(
        self,
        model: Model,
        held: _Marks,
        kept: pa.Table,
        joined: pa.Table,
        *,
        changes: pa.Table,
        query: Callable[[str], pa.Table],
    ) -> pa.Table:
        """``kept`` less the slices ``model.restate_scope`` vouches need no read (ADR 0055)."""
        assert model.restate_scope is not None
        if model.scope_seen and held.seen is None:
            return kept
        candidates = kept
        for c in model.scope_lows:
            candidates = candidates.append_column(c, joined[_LOW + c])
        seen = held.seen
        con = self._con

        def may_be_seen(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
            if seen is None:
                return np.ones(len(values), dtype=bool)
            return seen.contains(value_hashes(con(), values))

        try:
            narrowed = model.restate_scope(ScopeInputs(candidates, changes, may_be_seen, query))
        except (ShoalError, duckdb.Error, *ARROW_ERRORS):
            return kept  # the function could not decide: read every candidate, as without it
        if narrowed is None:
            return kept
        return narrowed.select(kept.column_names).cast(kept.schema)

    def _load(self, model: Model, table: Table, version: int, held: _Marks, groups: list[str]) -> None:
        """The marks of the slices whose first ``incremental_by`` value is one of ``groups``, from
        the table at ``version`` (replacing any raised before the group was loaded)."""
        assert model.restate_from
        by = [*model.incremental_by]
        cols = ", ".join(ident(c) for c in by)
        first = ident(model.incremental_by[0])
        in_groups = f"{first} IN ({', '.join(groups)})"
        scan = f"delta_scan({sql_literal(table.uri)}, version => {int(version)})"
        lows = "".join(f", min({ident(c)}) AS {ident(_LOW + c)}" for c in model.scope_lows)
        loaded = (
            self._con()
            .sql(
                f"SELECT {cols}, max({ident(model.restate_from)}) AS {MARK}{lows} FROM {scan} "
                f"WHERE {in_groups} GROUP BY {cols}"
            )
            .to_arrow_table()
        )
        if model.scope_seen:
            if held.seen is None:
                held.seen = HashSet()
            hashed = self._con().sql(f"SELECT hash({ident(model.scope_seen)}) FROM {scan} WHERE {in_groups}")
            held.seen.add(np.asarray(hashed.to_arrow_table().column(0).to_numpy(), dtype=np.uint64))
        schema = table.schema
        types = pa.schema(
            [
                *(schema.field(c) for c in by),
                schema.field(model.restate_from).with_name(MARK),
                *(schema.field(c).with_name(_LOW + c) for c in model.scope_lows),
            ]
        )
        loaded = loaded.cast(types)
        if held.rows is None:
            held.rows = loaded
            return
        # replace what was raised before for these groups
        stale = pc.is_in(plain(held.rows[by[0]]), value_set=plain(loaded[by[0]]).unique())
        held.rows = pa.concat_tables([held.rows.filter(pc.invert(stale)), loaded])

    def written(self, model: Model, *, before: int | None, version: int, rows: pa.Table) -> None:
        """The runner committed ``rows`` (upserts) at ``version``: raise the marks of their slices
        when the marks reflect ``before`` and the commit landed directly on it, else drop them."""
        held = self._held.get(model.name)
        if held is None:
            return
        if before is None or held.version != before or version != before + 1:
            self.drop(model.name)
            return
        assert model.restate_from
        lows = [_LOW + c for c in model.scope_lows]
        cols = [*model.incremental_by, model.restate_from, *model.scope_lows]
        seen_ok = not model.scope_seen or model.scope_seen in rows.column_names
        if rows.num_rows and all(c in rows.column_names for c in cols) and seen_ok and held.rows is not None:
            by = list(model.incremental_by)
            try:
                new = rows.select(cols).rename_columns([*by, MARK, *lows]).cast(held.rows.schema)
                both = pa.concat_tables([held.rows, new])
                aggs = [(MARK, "max"), *((low, "min") for low in lows)]
                agg = both.group_by(by, use_threads=False).aggregate(aggs)
                # by name: the output order is pyarrow's
                agg = agg.select([*by, f"{MARK}_max", *(f"{low}_min" for low in lows)])
                held.rows = agg.rename_columns([*by, MARK, *lows]).cast(held.rows.schema)
                if held.seen is not None and model.scope_seen:
                    held.seen.add(value_hashes(self._con(), rows[model.scope_seen]))
            except (duckdb.Error, *ARROW_ERRORS):
                self.drop(model.name)  # e.g. a type Arrow cannot hash or order: read as before
                return
        elif rows.num_rows:
            self.drop(model.name)
            return
        held.version = version

    def moved(self, name: str, *, before: int, version: int) -> None:
        """``name``'s table went from ``before`` to ``version`` with no data change (a fold of its
        files): its marks hold at ``version`` if they held at ``before``, else they are dropped."""
        held = self._held.get(name)
        if held is None:
            return
        if held.version != before or version != before + 1:
            self.drop(name)
            return
        held.version = version

    def drop(self, name: str) -> None:
        self._held.pop(name, None)

    def forget(self) -> None:
        """The connection is closing: nothing is held any more."""
        self._held.clear()

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

Kept the same way, for the models that declare them (ADR 0055): per slice the least value of each
``scope_lows`` column (a lower bound: deleted rows do not raise it), which a ``restate_scope``
function reads to tell which slices need no read; and the ``dedupe_by`` ids of the loaded groups'
rows (:mod:`shoal.models.seen`), by which re-delivered upstream rows are dropped unread.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shoal.errors import ShoalError
from shoal.lake import Table, sql_literal
from shoal.lake import sql_ident as ident
from shoal.models.model import Model, ScopeInputs
from shoal.models.seen import SeenIds, id_hashes
from shoal.models.sql import ARROW_ERRORS, ROW_INDEX, literal, plain, with_row_index

MARK = "__shoal_mark"
_LOW = "__shoal_low_"  # + a scope_lows column: its least value per slice
#: groups (e.g. months) held per model; the least recently touched beyond this are let go, so
#: that a runner that runs for months holds the marks and ids of the last few, not of all
MAX_GROUPS = 3


@dataclass(frozen=True)
class Scope:
    """What :meth:`RestateMarks.in_scope` found: the slices whose rows in scope a refresh reads,
    and the upstream's change rows less the re-deliveries it recognised (``dedupe_by``)."""

    slices: pa.Table
    changes: pa.Table | None


@dataclass
class _Marks:
    #: the Delta version of the model's table the marks reflect
    version: int
    #: the first ``incremental_by`` column's values (as SQL literals) whose slices are loaded
    groups: set[str] = field(default_factory=set)
    #: one row per slice: the ``incremental_by`` columns, ``MARK`` and the ``scope_lows``' least
    #: values (None: no slice loaded yet)
    rows: pa.Table | None = None
    #: per loaded group, the ``dedupe_by`` ids of its rows (models with ``dedupe_by``)
    seen: dict[str, SeenIds] = field(default_factory=dict)
    #: per group whose ids are being read in the background: the read, and the hashes of the
    #: ids the runner committed since the version it reads
    loading: dict[str, tuple[Future[SeenIds], list[tuple[np.ndarray, np.ndarray]]]] = field(
        default_factory=dict
    )
    #: per loaded group: its first ``incremental_by`` value, and the refresh that last touched it
    values: dict[str, object] = field(default_factory=dict)
    used: dict[str, int] = field(default_factory=dict)


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
        self._tick = 0
        self._loader: ThreadPoolExecutor | None = None  # reads ids in the background

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
    ) -> Scope:
        """The slices of ``touched`` (``incremental_by`` columns and ``__shoal_from``) whose scope
        may hold rows of ``table`` at ``version``: a slice restated whole, or from a point at or
        below its mark. Slices with no rows, or whose restate point is past their mark, are left
        out. All of ``touched`` when marks cannot be kept for it. With ``changes`` (the single
        upstream's change rows): those rows less the re-deliveries ``dedupe_by`` finds, and only
        the slices ``restate_scope`` keeps of the rest."""
        unchanged = Scope(touched, changes)
        if not self.applies(model) or version is None or touched.num_rows == 0:
            return unchanged
        first = model.incremental_by[0]
        values = plain(touched[first])
        distinct = pc.unique(values).to_pylist()
        found = {literal(v): v for v in distinct}
        groups = [g for g in found if g is not None]
        if values.null_count or len(groups) != len(distinct):
            return unchanged  # NULL or exotic slice values: no marks, read as before
        held = self._held.get(model.name)
        if held is None or held.version != version:
            self.drop(model.name)
            held = self._held[model.name] = _Marks(version)
        self._tick += 1
        missing = [g for g in groups if g not in held.groups]
        if missing:
            try:
                self._load(model, table, version, held, missing)
            except (duckdb.Error, *ARROW_ERRORS):
                self.drop(model.name)
                return unchanged
            held.groups.update(missing)
        for g in groups:
            held.values[g], held.used[g] = found[g], self._tick
        if len(held.groups) > MAX_GROUPS:
            self._let_go(model, held, keep=set(groups))
        assert held.rows is not None
        by = list(model.incremental_by)
        try:
            probe = with_row_index(touched.select(by).cast(held.rows.select(by).schema))
            joined = probe.join(held.rows, keys=by, join_type="left outer", use_threads=False)
            start = touched["__shoal_from"].take(joined[ROW_INDEX]).cast(joined[MARK].type)
        except ARROW_ERRORS:
            self.drop(model.name)
            return unchanged
        # a slice restated whole, or from a point at or below its mark (no mark: no rows)
        keep = pc.or_(pc.is_null(start), pc.fill_null(pc.greater_equal(joined[MARK], start), False))
        for c in by:
            # Arrow's join matches no NULL key: such a slice is read (an unknown mark)
            keep = pc.or_(keep, pc.is_null(joined[c]))
        kept = touched.take(joined[ROW_INDEX].filter(keep))
        if changes is None or kept.num_rows == 0 or not (model.dedupe_by or model.restate_scope):
            return Scope(kept, changes)
        inside = _rows_in(kept, changes, list(model.incremental_by))
        if inside is None:
            return Scope(kept, changes)
        if model.dedupe_by:
            _settle(held)
            if any(g not in held.seen for g in groups):
                # a group's ids are still being read: as without dedupe_by and restate_scope
                # (the slices are read, the model dedupes against their rows)
                return Scope(kept, changes)
            lookup = _GroupIds(first, held.seen, {held.values[g]: g for g in groups})
            changes, inside = _without_redeliveries(model.dedupe_by, lookup, changes, inside)
        nulls = any(kept[c].null_count for c in by)  # such slices' rows are not in `inside`
        if model.restate_scope is not None and query is not None and not nulls:
            rows = changes.take(pa.array(inside))
            kept = self._narrowed(model, kept, joined.filter(keep), rows=rows, query=query)
        return Scope(kept, changes)

    def _let_go(self, model: Model, held: _Marks, keep: set[str]) -> None:
        """Let the least recently touched groups beyond ``MAX_GROUPS`` go (not those in ``keep``):
        their marks and ids are loaded again if a refresh touches them."""
        old = sorted((g for g in held.groups if g not in keep), key=lambda g: held.used.get(g, 0))
        gone = old[: max(0, len(held.groups) - MAX_GROUPS)]
        if not gone:
            return
        first = model.incremental_by[0]
        values = [held.values[g] for g in gone if g in held.values]
        for g in gone:
            held.groups.discard(g)
            held.seen.pop(g, None)
            held.loading.pop(g, None)
            held.values.pop(g, None)
            held.used.pop(g, None)
        if held.rows is not None and values:
            try:
                value_set = pa.array(values, held.rows.schema.field(first).type)
                out = pc.is_in(plain(held.rows[first]), value_set=value_set)
                held.rows = held.rows.filter(pc.invert(out))
            except ARROW_ERRORS:
                self.drop(model.name)

    def _narrowed(
        self,
        model: Model,
        kept: pa.Table,
        joined: pa.Table,
        *,
        rows: pa.Table,
        query: Callable[[str], pa.Table],
    ) -> pa.Table:
        """``kept`` less the slices ``model.restate_scope`` vouches need no read (ADR 0055);
        ``rows``: the change rows of ``kept``'s slices."""
        assert model.restate_scope is not None
        candidates = kept
        for c in model.scope_lows:
            candidates = candidates.append_column(c, joined[_LOW + c])
        try:
            narrowed = model.restate_scope(ScopeInputs(candidates, rows, query))
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
        if model.dedupe_by:
            # a month's ids are millions of strings: read in a thread of the runner's, on a cursor
            # of its own, while cycles go on without them (the first read stalled a cycle by
            # seconds at 168 hours of history)
            col = ident(model.dedupe_by)
            if self._loader is None:
                self._loader = ThreadPoolExecutor(1, thread_name_prefix="shoal-marks")
            for group in groups:
                held.seen.pop(group, None)
                sql = f"SELECT {col} FROM {scan} WHERE {first} = {group} AND {col} IS NOT NULL"
                held.loading[group] = (self._loader.submit(_read_ids, self._con().cursor(), sql), [])
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
        seen_ok = not model.dedupe_by or model.dedupe_by in rows.column_names
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
                if model.dedupe_by and (held.seen or held.loading):
                    _add_ids(rows, by[0], model.dedupe_by, held)
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
        """The connection is closing: nothing is held any more (a read of ids under way ends
        first: it runs on a cursor of the connection)."""
        self._held.clear()
        if self._loader is not None:
            self._loader.shutdown(wait=True, cancel_futures=True)
            self._loader = None


def _rows_in(slices: pa.Table, changes: pa.Table, by: list[str]) -> np.ndarray | None:
    """The positions of the change rows that fall in one of ``slices`` (None: Arrow cannot join
    these types)."""
    try:
        keys = with_row_index(changes.select(by).cast(slices.select(by).schema))
        inside = keys.join(slices.select(by), keys=by, join_type="left semi", use_threads=False)[ROW_INDEX]
    except ARROW_ERRORS:
        return None
    return np.sort(np.asarray(inside.to_numpy(), dtype=np.int64))


@dataclass(frozen=True)
class _GroupIds:
    """The ids held for the groups of one refresh: ``first`` is the group column, ``groups`` maps
    each group's value to its literal (the key of ``seen``)."""

    first: str
    seen: dict[str, SeenIds]
    groups: dict[object, str]

    def contains(self, rows: pa.Table, ids: pa.ChunkedArray | pa.Array) -> np.ndarray:
        """Per row (``rows`` holds ``first``), whether its id is held for its group (False for a
        group with no ids held: not looked up, so not dropped)."""
        out = np.zeros(rows.num_rows, dtype=bool)
        column = plain(rows[self.first])
        for value, group in self.groups.items():
            seen = self.seen.get(group)
            if seen is None:
                continue
            equal = pc.fill_null(pc.equal(column, value), False)
            mine = np.asarray(equal.to_numpy(zero_copy_only=False), dtype=bool)
            if mine.any():
                out[mine] = seen.contains(*id_hashes(ids.filter(pa.array(mine))))
        return out


def _add_ids(rows: pa.Table, first: str, dedupe_by: str, held: _Marks) -> None:
    """Add the ids of the runner's committed ``rows`` to their groups' held ids (or to those a
    background read will be completed with)."""
    column = plain(rows[first])
    for group, value in held.values.items():
        seen, loading = held.seen.get(group), held.loading.get(group)
        if seen is None and loading is None:
            continue
        mine = pc.and_(pc.fill_null(pc.equal(column, value), False), pc.is_valid(rows[dedupe_by]))
        ids = rows[dedupe_by].filter(mine)
        if not len(ids):
            continue
        if seen is not None:
            seen.add(*id_hashes(ids))
        elif loading is not None:
            loading[1].append(id_hashes(ids))


def _read_ids(cursor: duckdb.DuckDBPyConnection, sql: str) -> SeenIds:
    """The ids ``sql`` returns, hashed (in the loader's thread)."""
    seen = SeenIds()
    try:
        for batch in cursor.sql(sql).to_arrow_reader(1 << 20):
            seen.add(*id_hashes(batch.column(0)))
    finally:
        cursor.close()
    return seen


def _settle(held: _Marks) -> None:
    """Take the background reads of ids that finished: each group's ids from the table at the
    version read, plus those the runner committed since. A read that failed leaves its group
    without ids (its slices are read, as without ``dedupe_by``) until it is loaded again."""
    for group, (future, since) in list(held.loading.items()):
        if not future.done():
            continue
        del held.loading[group]
        try:
            seen = future.result()
        except (duckdb.Error, *ARROW_ERRORS):
            held.groups.discard(group)  # loaded again, marks and ids, when next touched
            continue
        for first, second in since:
            seen.add(first, second)
        held.seen[group] = seen


def _without_redeliveries(
    dedupe_by: str, seen: _GroupIds, changes: pa.Table, inside: np.ndarray
) -> tuple[pa.Table, np.ndarray]:
    """``changes`` less its inserted rows whose ``dedupe_by`` id the table holds, and ``inside``
    (positions of the candidate slices' rows) for the rows left. Only those rows are looked up:
    a re-delivery shares its slice and restate point with the row it repeats, so its slice holds
    a row at or past that point and is a candidate."""
    if "_change_type" not in changes.column_names or dedupe_by not in changes.column_names or not len(inside):
        return changes, inside
    try:
        rows = changes.select(["_change_type", dedupe_by, seen.first]).take(pa.array(inside))
        lookup = pc.and_(pc.equal(rows["_change_type"], "insert"), pc.is_valid(rows[dedupe_by]))
        mask = np.asarray(lookup.to_numpy(zero_copy_only=False), dtype=bool)
        if not mask.any():
            return changes, inside
        looked = rows.filter(lookup)
        found = seen.contains(looked, looked[dedupe_by])
    except ARROW_ERRORS:
        return changes, inside  # not looked up: the slices are read and the model dedupes, as before
    if not found.any():
        return changes, inside
    drop = np.zeros(changes.num_rows, dtype=bool)
    drop[inside[np.flatnonzero(mask)[found]]] = True
    moved = np.cumsum(~drop) - 1  # each remaining row's position once the others are gone
    left = inside[~drop[inside]]
    return changes.filter(pa.array(~drop)), moved[left]

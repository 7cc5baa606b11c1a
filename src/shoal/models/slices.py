"""Slice refreshes: recompute the ``incremental_by`` slices new upstream rows touched.

The change data feed of each upstream since the version last consumed names the slices touched
(and, with ``restate_from``, the smallest changed value in each: a slice is recomputed from there
on). The model's SQL (or its ``incremental_sql``) recomputes those slices; only the rows that
differ from the target's rows in scope are written, and rows of a touched slice that no longer
exist are deleted (ADR 0005, 0007).
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from shoal.errors import ShoalError
from shoal.lake import sql_ident as ident
from shoal.models.context import RefreshContext, RefreshResult, Scratch
from shoal.models.model import Model, SliceInputs
from shoal.models.sql import ARROW_ERRORS, ROW_INDEX, constant_bound, literal, plain, with_row_index

SPLIT_GROUPS_MAX = 8  # restate scopes are read per group of slices up to this many groups


def refresh_slices(ctx: RefreshContext) -> RefreshResult:
    """An incremental refresh of a model with ``incremental_by`` (a rebuild when it cannot be)."""
    model = ctx.model
    found = touched_slices(ctx)
    if found is None:
        return ctx.rebuild()
    touched, changes = found
    if touched.num_rows == 0:
        return ctx.unchanged() if ctx.inputs_current else ctx.consumed()
    with ctx.scratch() as scratch:
        scratch.register("__shoal_touched", touched)
        # the model's current rows in scope: what the new ones are compared with (and what an
        # incremental_sql may build on); read only for slices that may hold some (marks.py) and,
        # with restate_scope, whose rows the new ones may change; re-deliveries dropped unread
        # with dedupe_by (ADR 0055)
        scope = ctx.session.marks.in_scope(
            model, ctx.table, ctx.progress.table_version, touched, changes=changes, query=ctx.run_sql
        )
        old_scope, changes = scope.slices, scope.changes
        if changes is not None:
            scratch.register("__shoal_changes", changes)
        if old_scope.num_rows == 0:
            old_rows = ctx.table.schema.empty_table()
            scratch.register("__shoal_old", old_rows)
        else:
            if old_scope.num_rows == touched.num_rows:
                select = scoped(model, touched, model.name)
            else:
                scratch.register("__shoal_touched_old", old_scope)
                select = scoped(model, old_scope, model.name, slices="__shoal_touched_old")
            if model.incremental_arrow is None:
                scratch.temp("__shoal_old", select)
            else:  # read once, for the function and (registered) for the diff below
                old_rows = ctx.con.sql(select).to_arrow_table()
                scratch.register("__shoal_old", old_rows)
        new_rows = None
        if model.incremental_arrow is not None:
            inputs = SliceInputs(touched, changes, old_rows, ctx.table.schema, ctx.run_sql)
            new_rows = model.incremental_arrow(inputs)
        if new_rows is None:
            new_rows = ctx.run_sql(model.incremental_sql or scoped(model, touched, f"({model.sql})"))
        ctx.check_columns(new_rows.schema)
        ctx.check_unique(new_rows, "incremental SQL" if model.incremental_sql else "SQL")
        changed, stale, updates = _diff(ctx, new_rows, scratch, old_scope)
        feed = None
        if ctx.feeds_downstream and _old_holds_every_key(model, ctx.table.schema, new_rows.schema):
            feed = ctx.change_rows(scratch, "__shoal_old", changed, stale, existed=updates)
    return ctx.write(changed, stale, existed=updates, touched=touched.num_rows, changes=feed)


def _old_holds_every_key(model: Model, target: pa.Schema, new: pa.Schema) -> bool:
    """Whether ``__shoal_old`` holds the current row of every key a refresh writes, so the commit's
    change rows can be derived without reading the target: true when the key holds every scope
    column (a row's key names its slice and restate position) and no column is added."""
    scope_cols = {*model.incremental_by, *([model.restate_from] if model.restate_from else [])}
    return scope_cols <= set(model.unique_key) and set(new.names) == set(target.names)


def touched_slices(ctx: RefreshContext) -> tuple[pa.Table, pa.Table | None] | None:
    """Distinct incremental_by values in upstream changes (with ``__shoal_from``, the smallest
    changed ``restate_from`` value of each, when the model has one), and with a single upstream
    its change rows; None means 'rebuild fully'."""
    model = ctx.model
    cols = [*model.incremental_by, *([model.restate_from] if model.restate_from else [])]
    parts = []
    feeds = []
    for name in ctx.upstream:
        since = ctx.since(name)
        if since is None:
            return None
        if ctx.current[name] == since:
            continue
        try:
            changes = ctx.changes(name)
        except ShoalError:
            return None  # change feed unavailable (e.g. vacuumed): recompute everything
        if changes.num_rows == 0:
            continue
        if any(c not in changes.column_names for c in cols):
            return None
        parts.append(changes.select(cols))
        feeds.append(changes)
    single = feeds[0] if len(ctx.upstream) == 1 and feeds else None
    if not parts:
        return pa.table({c: [] for c in model.incremental_by}), single
    touched = pa.concat_tables(parts, promote_options="permissive")
    if not model.restate_from:
        return touched.group_by(cols).aggregate([]), single
    return restate_points(ctx.con, touched, list(model.incremental_by), model.restate_from), single


def restate_points(
    con: duckdb.DuckDBPyConnection, touched: pa.Table, by: list[str], restate_from: str
) -> pa.Table:
    """One row per slice (``by``) with ``__shoal_from``, the smallest ``restate_from`` value of its
    changes, NULL (the whole slice) when any of them is NULL. A hash aggregation in Arrow: a
    cycle's few thousand change rows cost about a fifth of a DuckDB statement over them."""
    try:
        agg = touched.group_by(by, use_threads=False).aggregate(
            [(restate_from, "min"), (restate_from, "count"), ([], "count_all")]
        )
    except (pa.ArrowNotImplementedError, pa.ArrowTypeError):  # a type Arrow cannot hash or order
        return restate_points_sql(con, touched, by, restate_from)
    whole = pc.less(agg[f"{restate_from}_count"], agg["count_all"])
    start = pc.if_else(whole, pa.scalar(None, agg[f"{restate_from}_min"].type), agg[f"{restate_from}_min"])
    return agg.select(by).append_column("__shoal_from", start)


def restate_points_sql(
    con: duckdb.DuckDBPyConnection, touched: pa.Table, by: list[str], restate_from: str
) -> pa.Table:
    """:func:`restate_points` in DuckDB (any type it can group)."""
    cols = ", ".join(ident(c) for c in by)
    rf = ident(restate_from)
    con.register("__shoal_changed_values", touched)
    try:
        return con.sql(
            f"SELECT {cols}, CASE WHEN count(*) > count({rf}) THEN NULL ELSE min({rf}) END AS __shoal_from "
            f"FROM __shoal_changed_values GROUP BY {cols}"
        ).to_arrow_table()
    finally:
        con.unregister("__shoal_changed_values")


def scoped(
    model: Model,
    touched: pa.Table,
    relation: str,
    columns: Sequence[str] | None = None,
    *,
    slices: str = "__shoal_touched",
) -> str:
    """SELECT ``columns`` of ``relation``'s rows that lie in a touched slice (from its restate
    point on). A hash join on the slice columns (``__shoal_touched`` has one row per slice):
    DuckDB runs an EXISTS form several times slower. Constant bounds implied by the join (IN
    lists or ranges of the touched values) let it push filters into the Delta scans.

    With ``restate_from``, slices are read per value of the first ``incremental_by`` column
    (e.g. per month), each group with its own bounds: one slice restated from an old point
    (a late event for last month) would otherwise lower the restate bound of every slice and
    make each refresh read the current month whole. ``slices`` is the registered relation
    ``touched`` is read from in SQL."""
    if model.restate_from and model.incremental_by:
        first = model.incremental_by[0]
        keys = plain(touched[first])
        groups = pc.unique(keys)
        literals = [literal(v) for v in groups.to_pylist()] if len(groups) <= SPLIT_GROUPS_MAX else []
        if len(literals) > 1 and all(lit is not None for lit in literals):
            branches = [
                _scoped_group(
                    model,
                    touched.filter(pc.equal(keys, value)),
                    relation,
                    columns,
                    f"(SELECT * FROM {slices} WHERE {ident(first)} = {lit})",
                )
                for value, lit in zip(groups, literals, strict=True)
            ]
            return " UNION ALL ".join(branches)
    return _scoped_group(model, touched, relation, columns, slices)


def _scoped_group(
    model: Model, touched: pa.Table, relation: str, columns: Sequence[str] | None, slices: str
) -> str:
    """:func:`scoped` for the slices of ``touched``, read from the relation ``slices``."""
    on = [f"__t.{ident(c)} IS NOT DISTINCT FROM __s.{ident(c)}" for c in model.incremental_by]
    where = [
        b
        for c in model.incremental_by
        if (b := constant_bound(f"__s.{ident(c)}", touched[c], exact=True)) is not None
    ]
    if model.restate_from:
        rf = ident(model.restate_from)
        where.append(f"(__t.__shoal_from IS NULL OR __s.{rf} >= __t.__shoal_from)")
        low = constant_bound(f"__s.{rf}", touched["__shoal_from"], exact=False)
        if low is not None:
            where.append(low)
    cols = "__s.*" if columns is None else ", ".join(f"__s.{ident(c)}" for c in columns)
    sql = f"SELECT {cols} FROM {relation} AS __s JOIN {slices} AS __t ON {' AND '.join(on)}"
    return f"{sql} WHERE {' AND '.join(where)}" if where else sql


def _diff(
    ctx: RefreshContext, new_rows: pa.Table, scratch: Scratch, old_scope: pa.Table
) -> tuple[pa.Table, pa.Table, bool]:
    """(rows that differ from the target's rows in scope, ``__shoal_old``; keys of those that are
    gone; whether any changed row's key already exists in the target). Writing only what
    changed keeps commits small and the change feed — what downstream models recompute from —
    precise. ``old_scope``: the slices ``__shoal_old`` was read from."""
    model, con = ctx.model, ctx.con
    key = ", ".join(ident(c) for c in model.unique_key)
    target_cols = set(ctx.table.schema.names)
    same_cols = all(c in target_cols for c in new_rows.column_names)
    scope_cols = {*model.incremental_by, *([model.restate_from] if model.restate_from else [])}
    (in_scope,) = con.execute("SELECT count(*) FROM __shoal_old").fetchone() or (0,)
    if not in_scope:
        # nothing in scope yet (new hours of a live stream, the usual case): every row is new and
        # nothing is stale, without the three joins below
        stale = pa.table({c: pa.array([], new_rows.schema.field(c).type) for c in model.unique_key})
        if same_cols and scope_cols <= set(model.unique_key):
            return new_rows, stale, False
        return new_rows, stale, _any_exists(ctx, new_rows, scratch)
    fresh = None
    if same_cols and scope_cols <= set(model.unique_key):
        # a key names its slice, and __shoal_old holds rows of old_scope's slices only: a new row
        # of any other slice matches no old row, so only the rest is compared in DuckDB (a cycle
        # with a few late slices would otherwise hash every new row against them)
        split = _outside_slices(new_rows, old_scope, list(model.incremental_by))
        if split is not None:
            fresh, new_rows = split
    scratch.register("__shoal_new", new_rows)
    match = " AND ".join(f"o.{ident(c)} IS NOT DISTINCT FROM n.{ident(c)}" for c in model.unique_key)
    stale = con.sql(
        f"SELECT {key} FROM __shoal_old AS o WHERE NOT EXISTS (SELECT 1 FROM __shoal_new AS n WHERE {match})"
    ).to_arrow_table()
    if not same_cols:
        changed = new_rows  # the target lacks a column: every row gains it
        return changed, stale, _any_exists(ctx, new_rows, scratch)
    # Rows with a key not in scope are new; the others are joined to the old row of their key
    # and kept if any value differs (an EXCEPT ALL would hash every column of every row).
    others = [c for c in new_rows.column_names if c not in model.unique_key]
    differs = " OR ".join(f"n.{ident(c)} IS DISTINCT FROM o.{ident(c)}" for c in others) or "FALSE"
    added = con.sql(f"SELECT n.* FROM __shoal_new AS n ANTI JOIN __shoal_old AS o ON {match}")
    updated = con.sql(
        f"SELECT n.* FROM __shoal_new AS n JOIN __shoal_old AS o ON {match} WHERE {differs}"
    ).to_arrow_table()
    parts = [added.to_arrow_table(), updated, *([fresh] if fresh is not None else [])]
    changed = pa.concat_tables([t.select(new_rows.column_names).cast(new_rows.schema) for t in parts])
    if changed.num_rows == 0:
        return changed, stale, False
    # Does any changed key exist already (then merge, else a plain append)? When the key holds
    # every scope column it names its slice, so only in-scope rows can hold it (the updated
    # ones); otherwise (e.g. keyed by event id) look through the whole target.
    if scope_cols <= set(model.unique_key):
        return changed, stale, updated.num_rows > 0
    return changed, stale, _any_exists(ctx, changed, scratch)


def _outside_slices(rows: pa.Table, slices: pa.Table, by: list[str]) -> tuple[pa.Table, pa.Table] | None:
    """(``rows`` of no slice in ``slices``, the others): a hash semi join on the slice columns. A
    row with a NULL slice value counts as inside (Arrow's join matches no NULL, SQL's
    ``IS NOT DISTINCT FROM`` does). None when Arrow cannot join these types."""
    if not by:
        return None
    try:
        keys = with_row_index(rows.select(by))
        wanted = slices.select(by).cast(rows.select(by).schema)
        hit = keys.join(wanted, keys=by, join_type="left semi", use_threads=False)[ROW_INDEX]
    except ARROW_ERRORS:
        return None
    inside = pc.is_in(keys[ROW_INDEX], value_set=hit.combine_chunks())
    for c in by:
        inside = pc.or_(inside, pc.is_null(rows[c]))
    return rows.filter(pc.invert(inside)), rows.filter(inside)


def _any_exists(ctx: RefreshContext, rows: pa.Table, scratch: Scratch) -> bool:
    """Whether the target holds any of ``rows``' keys."""
    model = ctx.model
    scratch.register("__shoal_changed", rows)
    kmatch = " AND ".join(f"t.{ident(c)} IS NOT DISTINCT FROM c.{ident(c)}" for c in model.unique_key)
    (n_existing,) = ctx.con.sql(
        f"SELECT count(*) FROM {model.name} AS t "
        f"WHERE EXISTS (SELECT 1 FROM __shoal_changed AS c WHERE {kmatch})"
    ).fetchone() or (0,)
    return bool(n_existing)

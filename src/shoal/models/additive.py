"""Additive maintenance: models of sums kept from their upstream's change feed, and state models.

An ``additive_sql`` model adds the signed sums of its single upstream's changed rows to its own
rows, without recomputing any group; a row whose ``additive_count`` reaches 0 is deleted (see
:class:`~shoal.models.model.Model`). Such models often serve as another model's *state*
(``state_models``: e.g. month-to-date totals its ``incremental_sql`` reads), kept at that model's
version so the state always matches the rows it sums (ADR 0007).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from shoal.errors import ConfigError, ShoalError
from shoal.lake import Progress
from shoal.lake import sql_ident as ident
from shoal.lake.progress import model_input
from shoal.models.context import RefreshContext, RefreshResult, Scratch
from shoal.models.errors import ModelError
from shoal.models.keyed import nonzero_rows
from shoal.models.model import Model
from shoal.models.sql import constant_bound


def refresh_additive(ctx: RefreshContext) -> RefreshResult:
    """Add the signed sums of the upstream's changed rows to the model's rows (a rebuild when the
    change feed is unavailable or the model is out of step with it)."""
    model = ctx.model
    assert model.additive_sql is not None
    (name,) = ctx.upstream
    since = ctx.since(name)
    if since is None:
        return ctx.rebuild()
    if ctx.current[name] == since:
        return ctx.unchanged()
    try:
        changes = ctx.changes(name)
    except ShoalError:
        return ctx.rebuild()  # change feed unavailable (e.g. vacuumed)
    if changes.num_rows == 0:
        return ctx.consumed()
    arranged = ctx.session.arranged
    before = ctx.progress.table_version
    if model.name in arranged.models and before is not None and arranged.held(model.name) != before:
        # the first refresh of this runner: keep the model's rows in memory from now on
        arranged.load(model.name, ctx.table, before)
    negative = pc.is_in(changes["_change_type"], value_set=pa.array(["delete", "update_preimage"]))
    sign = pc.if_else(negative, pa.scalar(-1, pa.int64()), pa.scalar(1, pa.int64()))
    deferred = ctx.session.deferred
    if deferred.holds(model, ctx.feeds_downstream):
        # held in memory, committed every commit_every_s (ADR 0038)
        with ctx.scratch() as scratch:
            scratch.register("__shoal_delta", changes.append_column("__shoal_sign", sign))
            delta = ctx.run_sql(model.additive_sql)
            ctx.check_unique(delta, "additive_sql")
            assert before is not None
            added = deferred.add(
                model, delta, names=ctx.table.schema.names, table_version=before, txns=ctx.txns
            )
        if not added:
            deferred.drop(model.name)
            return ctx.rebuild()  # a count below zero: out of step, rebuild
        return RefreshResult(model.name, "incremental", touched=delta.num_rows, held=True)
    with ctx.scratch() as scratch:
        scratch.register("__shoal_delta", changes.append_column("__shoal_sign", sign))
        delta = ctx.run_sql(model.additive_sql)
        absent = [c for c in ctx.table.schema.names if c not in delta.column_names]
        if absent:
            raise ModelError(f"model {model.name}: its additive_sql does not return {', '.join(absent)}")
        ctx.check_unique(delta, "additive_sql")
        if not ctx.feeds_downstream and arranged.reads_copy(model.name) and arranged.keyable(model.name):
            # a keyed copy (ADR 0054): the commit's rows come from its numpy sums, which take
            # them once the commit lands (a model whose commits feed another needs pre-images)
            keyed = arranged.prepare(model, nonzero_rows(delta, model.additive))
            if keyed is not None:
                rows, stale, existed = keyed
                schema = ctx.table.schema  # the copy's types are DuckDB's reading of the table
                rows = rows.select(schema.names).cast(schema)
                stale = stale.cast(pa.schema([schema.field(c) for c in model.unique_key]))
                assert model.additive_count is not None
                if pc.any(pc.less(rows[model.additive_count], 0)).as_py():
                    arranged.drop(model.name)
                    return ctx.rebuild()  # a count below zero: out of step, rebuild
                return ctx.write(rows, stale, existed=existed, touched=delta.num_rows)
        merged = _add_to_current(ctx, delta, scratch)
        feed = None
        if merged is not None and ctx.feeds_downstream:
            # __shoal_cur holds the current row of every key written: the commit's change rows
            rows, stale, existed = merged
            feed = ctx.change_rows(scratch, "__shoal_cur", rows, stale, existed=existed)
    if merged is None:
        return ctx.rebuild()  # a count below zero: out of step, rebuild
    rows, stale, existed = merged
    return ctx.write(rows, stale, existed=existed, touched=delta.num_rows, changes=feed)


def _add_to_current(
    ctx: RefreshContext, delta: pa.Table, scratch: Scratch
) -> tuple[pa.Table, pa.Table, bool] | None:
    """(new values of the changed rows, keys of rows whose count reached 0, whether any changed
    row exists already); None when a count would go below zero. ``delta`` is checked already
    (its columns, one row per key)."""
    model, target, con = ctx.model, ctx.table, ctx.con
    assert model.additive_count is not None
    names = target.schema.names
    add = [ident(c) for c in model.additive]
    nonzero = " OR ".join(f"coalesce({a}, 0) <> 0" for a in add)
    scratch.register("__shoal_d0", delta)
    # a change that moves no sum (e.g. an update of other columns) writes nothing
    scratch.temp("__shoal_d", f"SELECT * FROM __shoal_d0 WHERE {nonzero}")
    on = " AND ".join(f"o.{ident(c)} IS NOT DISTINCT FROM d.{ident(c)}" for c in model.unique_key)
    keys = con.sql(f"SELECT {', '.join(ident(c) for c in model.unique_key)} FROM __shoal_d")
    key_values = keys.to_arrow_table()
    # constant bounds (IN lists, ranges) let DuckDB skip partitions and files of the target; an
    # in-memory copy has none to skip
    bounds = [
        b
        for c in model.unique_key
        if not ctx.session.arranged.reads_copy(model.name)
        and (b := constant_bound(f"o.{ident(c)}", key_values[c], exact=True)) is not None
    ]
    where = f" WHERE {' AND '.join(bounds)}" if bounds else ""
    scratch.temp(
        "__shoal_cur",
        f"SELECT o.*, TRUE AS __shoal_hit FROM {model.name} AS o SEMI JOIN __shoal_d AS d ON {on}{where}",
    )
    cols = [
        f"coalesce(o.{ident(c)}, 0) + d.{ident(c)} AS {ident(c)}" if c in model.additive else f"d.{ident(c)}"
        for c in names
    ]
    merged = con.sql(
        f"SELECT {', '.join(cols)}, o.__shoal_hit IS NOT NULL AS __shoal_hit "
        f"FROM __shoal_d AS d LEFT JOIN __shoal_cur AS o ON {on}"
    ).to_arrow_table()
    count = merged[model.additive_count]
    if pc.any(pc.less(count, 0)).as_py():
        return None
    gone = pc.equal(count, 0)
    keep = pc.invert(gone)
    rows = merged.filter(keep).select(names).cast(target.schema)
    stale = merged.filter(pc.and_(gone, merged["__shoal_hit"])).select(list(model.unique_key))
    existed = bool(pc.any(merged.filter(keep)["__shoal_hit"]).as_py())
    return rows, stale, existed


# -- state models ------------------------------------------------------------------------------
def check_state_models(models: Sequence[Model]) -> None:
    """Each model's state models are refreshed with it and read it."""
    by_name = {m.name: m for m in models}
    for m in models:
        for name in m.state_models:
            state = by_name.get(name)
            if state is None:
                raise ConfigError(f"model {m.name} reads state model {name}: refresh them together")
            if m.name not in state.upstream:
                raise ConfigError(f"model {m.name}: state model {name} must read it (upstream)")


def lagging_state_models(ctx: RefreshContext, progress: Callable[[str, list[str]], Progress]) -> list[str]:
    """The state models of ``ctx.model`` not at its version (they lag after a crash between its
    commit and theirs, or when refreshed apart): the runner refreshes them first. ``progress``
    reads a model's progress keys (with what the runner holds in memory laid over them)."""
    key = model_input(ctx.model.name)
    version = ctx.progress.table_version
    assert version is not None
    return [name for name in ctx.model.state_models if not progress(name, [key]).at({key: version})]

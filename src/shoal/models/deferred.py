"""Held changes: additive models a continuously running runner commits at most every
``commit_every_s`` (ADR 0038).

A watcher that commits ``billing.invoice_lines`` on every cycle rewrites the month's lines each
time (one row per resource and month, and nearly every resource meters every hour), although
the only reader that needs them at once is ``billing.charges_hourly``, in the same runner, as its
state. A model with ``commit_every_s`` is therefore kept in the runner's in-memory copy
(:mod:`shoal.models.arrangements`): each refresh adds its sums there (as keyed sums in numpy,
:mod:`shoal.models.keyed`, when the model's columns are its key and exact sums, ADR 0054; else with
one ``MERGE`` into a temp table) and notes the keys it touched, and the runner commits the
touched keys' rows to the Delta table when the oldest held change is ``commit_every_s`` old, and
when it stops.

Exactly-once is unchanged: the commit carries the upstream versions the held rows reflect, and
is built on the table version the copy was loaded at, so another writer's commit since then is a
conflict. Until then the table's progress says what is committed; the runner reads the model's
progress with the held positions laid over (:meth:`Deferred.progress`), so its own refreshes go
on from where memory stands. A crash loses only the held changes: the next runner finds the
table behind and takes them again from the upstream's change feed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from shoal.lake import Progress, Table
from shoal.lake import sql_ident as ident
from shoal.lake.progress import MODEL_DEFINITION
from shoal.models.arrangements import Arrangements
from shoal.models.keyed import nonzero_rows
from shoal.models.model import Model


@dataclass
class _Held:
    #: the version of the model's table the copy was loaded at (nothing committed since)
    table_version: int
    #: the progress positions the copy's rows reflect (the definition and upstream versions)
    positions: dict[str, int] = field(default_factory=dict)
    #: when the oldest held change was added (time.monotonic)
    since: float = field(default_factory=time.monotonic)
    #: the keys each held change touched (repeats across changes; made distinct at the commit)
    pending: list[pa.Table] = field(default_factory=list)


class Deferred:
    """The held changes of one runner's session (see the module docstring)."""

    def __init__(self, con: Callable[[], duckdb.DuckDBPyConnection], arranged: Arrangements) -> None:
        self._con = con
        self._arranged = arranged
        #: hold changes at all: set while the runner runs continuously (watch, ingest commits)
        self.enabled = False
        self._held: dict[str, _Held] = {}

    def holds(self, model: Model, feeds_downstream: bool) -> bool:
        """Whether a refresh of ``model`` adds its changes in memory instead of committing them:
        an additive model with ``commit_every_s`` whose copy the runner keeps, and whose commits no
        model of the runner reads (those take a commit's rows, ADR 0020)."""
        return (
            self.enabled
            and model.commit_every_s is not None
            and model.name in self._arranged.models
            and not feeds_downstream
        )

    @property
    def held(self) -> list[str]:
        return list(self._held)

    def progress(self, name: str, progress: Progress) -> Progress:
        """``progress`` as read from ``name``'s table, with the positions of the held changes laid
        over it; the held changes are dropped when the table or the copy moved without them."""
        held = self._held.get(name)
        if held is None:
            return progress
        if progress.table_version != held.table_version or self._arranged.held(name) != held.table_version:
            self.drop(name)
            return progress
        return Progress({**progress.positions, **held.positions}, progress.table_version)

    def add(
        self, model: Model, delta: pa.Table, *, names: list[str], table_version: int, txns: dict[str, int]
    ) -> bool:
        """Add the signed sums ``delta`` (the model's ``additive_sql`` result) to the copy of the
        table (columns ``names``, loaded at ``table_version``) and note their keys; ``txns`` are
        the progress positions they bring it to. False when a count would go below zero (the
        model is out of step)."""
        con = self._con()
        assert model.additive_count is not None
        # a change that moves no sum (e.g. an update of other columns) touches nothing
        moving = nonzero_rows(delta, model.additive)
        keyed = self._arranged.keyed(model)
        if keyed is not None:  # numpy sums found by key hash: cost in proportion to the change
            after_keyed = keyed.add(con, moving.select(keyed.schema.names))
            if after_keyed is not None:
                self._arranged.publish(model.name)
                if bool((after_keyed < 0).any()):
                    return False
                self._note(model, moving, table_version, txns)
                return True
            self._arranged.unkey(model.name)  # refused, nothing changed: the MERGE below adds
        copy = self._arranged.copy_table(model.name)
        keys = [ident(c) for c in model.unique_key]
        match = " AND ".join(f"o.{k} IS NOT DISTINCT FROM d.{k}" for k in keys)
        sets = [
            f"{ident(c)} = coalesce(o.{ident(c)}, 0) + d.{ident(c)}"
            if c in model.additive
            else f"{ident(c)} = d.{ident(c)}"
            for c in names
            if c not in model.unique_key
        ]
        count = ident(model.additive_count)
        cols = ", ".join(ident(c) for c in names)
        # the rows stay in Arrow, registered, where a temp table per cycle cost more than the join
        con.register("__shoal_held_d", moving)
        try:
            # RETURNING gives each merged key's new count: no second join to check them
            counts = con.execute(
                f"MERGE INTO {copy} AS o USING __shoal_held_d AS d ON {match} "
                f"WHEN MATCHED THEN UPDATE SET {', '.join(sets)} "
                f"WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({', '.join(f'd.{ident(c)}' for c in names)}) "
                f"RETURNING o.{count}"
            ).to_arrow_table()
            after = counts.column(0)
            if pc.any(pc.less(after, 0)).as_py():
                return False
            if pc.any(pc.equal(after, 0)).as_py():  # rare (a key's last row restated away)
                con.execute(
                    f"DELETE FROM {copy} AS o USING __shoal_held_d AS d WHERE {match} AND o.{count} = 0"
                )
        finally:
            con.unregister("__shoal_held_d")
        self._note(model, moving, table_version, txns)
        return True

    def _note(self, model: Model, moving: pa.Table, table_version: int, txns: dict[str, int]) -> None:
        """Hold the positions ``txns`` and the keys ``moving`` touched."""
        held = self._held.setdefault(model.name, _Held(table_version))
        held.positions.update(txns)
        held.pending.append(moving.select(list(model.unique_key)))

    def consumed(self, model: Model, *, table_version: int, txns: dict[str, int]) -> bool:
        """Upstream commits that change no row of ``model`` were read: when changes are held for
        it (on ``table_version``), hold the positions ``txns`` too and say so (True); else the
        caller records them with a commit of its own."""
        held = self._held.get(model.name)
        if held is None or held.table_version != table_version:
            return False
        held.positions.update(txns)
        return True

    def due(self, models: dict[str, Model], *, force: bool) -> list[str]:
        """The held models to commit now: all with ``force``, else those whose oldest held change
        is ``commit_every_s`` old."""
        now = time.monotonic()
        out = []
        for name, held in self._held.items():
            every = models[name].commit_every_s if name in models else None
            if force or every is None or now - held.since >= every:
                out.append(name)
        return out

    def commit(self, model: Model, table: Table) -> tuple[int, int, int]:
        """Commit ``model``'s held changes (the touched keys' rows, deletes of keys whose count
        reached zero) in one commit with the positions they reflect: (version, rows, deletes)."""
        held = self._held[model.name]
        con = self._con()
        copy = self._arranged.copy_table(model.name)
        keys = [ident(c) for c in model.unique_key]
        match = " AND ".join(f"o.{k} IS NOT DISTINCT FROM k.{k}" for k in keys)
        touched = f"(SELECT DISTINCT {', '.join(keys)} FROM __shoal_pending)"
        schema = table.schema
        pending = _concat(held.pending, [schema.field(c) for c in model.unique_key])
        con.register("__shoal_pending", pending)
        try:
            rows = con.sql(
                f"SELECT o.* FROM {copy} AS o SEMI JOIN {touched} AS k ON {match}"
            ).to_arrow_table()
            gone = con.sql(
                f"SELECT k.* FROM {touched} AS k ANTI JOIN {copy} AS o ON {match}"
            ).to_arrow_table()
        finally:
            con.unregister("__shoal_pending")
        rows = rows.select(schema.names).cast(schema)
        txns = {MODEL_DEFINITION: model.sql_hash, **held.positions}
        try:
            version = table.merge(
                rows,
                model.unique_key,
                delete_keys=gone,
                app_transactions=txns,
                read_version=held.table_version,
            )
        except Exception:
            self.drop(model.name)  # the next refresh starts again from what the table holds
            raise
        self._forget(model.name)
        self._arranged.moved(model.name, before=held.table_version, version=version)
        return version, rows.num_rows, gone.num_rows

    def drop(self, name: str) -> None:
        """Forget ``name``'s held changes and its copy (they are no longer what the copy adds to)."""
        if name in self._held:
            self._forget(name)
            self._arranged.drop(name)

    def forget(self) -> None:
        """The connection is closing: nothing is held any more."""
        self._held.clear()

    def _forget(self, name: str) -> None:
        self._held.pop(name, None)


def _concat(parts: list[pa.Table], fields: list[pa.Field]) -> pa.Table:
    """The held key tables as one (none held: an empty table of the key's columns)."""
    if not parts:
        return pa.schema(fields).empty_table()
    return pa.concat_tables(parts, promote_options="permissive")

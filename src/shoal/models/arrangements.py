"""Arrangements: in-memory copies of the additive models a runner writes, read in place of their
Delta tables while those stand at the version the copy reflects (ADR 0020).

An additive model's refresh reads its own current rows, and other models of the chain read it
(``billing.charges_hourly`` reads ``billing.invoice_lines`` as state, ``billing.run_rate`` reads
``billing.revenue_hourly``). Each such read of a Delta table replays its log and opens its files,
a fixed cost per query that dominates a short cycle. Like Materialize's arrangements, the runner
keeps such a model's rows in a DuckDB temp table, applies each of its own commits to it, and points
the model's view in its connection at that copy instead of the Delta scan. A held model's copy
(ADR 0038) may instead be keyed sums in numpy (:mod:`shoal.models.keyed`, ADR 0054), registered
under the same name.

The copy is used only while the table's Delta version is the one it reflects: every refresh checks
that first (:meth:`Arrangements.check`), and a commit the runner did not make, or one it cannot
apply exactly, drops the copy (the view reads Delta again; the next refresh loads a new copy).
Between cycles every view reads Delta, so anything else using the runner's connection sees the
tables as they are; a runner that owns its connection and refreshes continuously (a watcher, a
worker refreshing in its commits) leaves them on the copies (``keep_pointed``).
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import pyarrow as pa

from shoal.lake import Table
from shoal.lake import sql_ident as ident
from shoal.models.keyed import KeyedSums, Prepared
from shoal.models.model import Model


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _view(name: str) -> str:
    ns, table = name.split(".", 1)
    return f"{ident(ns)}.{ident(table)}"


def _copy_name(name: str) -> str:
    return "__shoal_arranged_" + name.replace(".", "__")


def _copy(name: str) -> str:
    return ident(_copy_name(name))


class Arrangements:
    """The copies one runner's session keeps (see the module docstring)."""

    def __init__(
        self, con: Callable[[], duckdb.DuckDBPyConnection], find: Callable[[str], Table | None]
    ) -> None:
        self._con = con
        self._find = find
        #: the models to keep copies of (set by the runner)
        self.models: frozenset[str] = frozenset()
        self._held: dict[str, int] = {}  # model -> the Delta version its copy reflects
        self._pointed: set[str] = set()  # models whose view reads the copy now
        # copies kept as keyed sums (shoal.models.keyed), registered as Arrow, not temp tables
        self._keyed: dict[str, KeyedSums] = {}
        self._unkeyed: set[str] = set()  # models a keyed add refused once: the temp table serves
        # a keyed add whose commit apply() applies, with the commit's row and stale-key counts
        self._prepared: dict[str, tuple[Prepared, int, int]] = {}
        #: leave the views on the copies between cycles: set for a runner that owns its connection
        #: and refreshes continuously (nobody else reads through it, and each refresh checks the
        #: copies first), where re-pointing them twice a cycle cost ~3.5 ms a view each time
        self.keep_pointed = False

    def check(self) -> None:
        """Drop every copy whose table moved without this runner; point the views of the others
        at their copies."""
        for name, version in list(self._held.items()):
            table = self._find(name)
            if table is None or table.version != version:
                self.drop(name)
            elif name not in self._pointed:
                self._point(name, to_copy=True)

    def held(self, name: str) -> int | None:
        return self._held.get(name)

    def reads_copy(self, name: str) -> bool:
        """Whether ``name``'s view reads its in-memory copy now."""
        return name in self._pointed

    def load(self, name: str, table: Table, version: int) -> None:
        """Copy ``table`` as of ``version`` (the first refresh that can use it)."""
        self.drop(name)
        self._con().execute(
            f"CREATE OR REPLACE TEMP TABLE {_copy(name)} AS "
            f"SELECT * FROM delta_scan({_quote(table.uri)}, version => {int(version)})"
        )
        self._hold(name, version)

    def replace(self, name: str, version: int, rows: pa.Table) -> None:
        """The model was rebuilt as ``rows`` at ``version``."""
        self.drop(name)
        con = self._con()
        con.register("__shoal_arrange", rows)
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {_copy(name)} AS SELECT * FROM __shoal_arrange")
        finally:
            con.unregister("__shoal_arrange")
        self._hold(name, version)

    def apply(
        self,
        name: str,
        rows: pa.Table,
        stale: pa.Table,
        *,
        key: tuple[str, ...],
        before: int | None,
        version: int,
    ) -> None:
        """This runner committed ``rows`` (upserts by ``key``) and deletes of ``stale`` keys at
        ``version``: apply them when the copy reflects ``before`` and nothing else committed in
        between, else drop the copy."""
        if self._held.get(name) != before or before is None or version != before + 1:
            self.drop(name)
            return
        if name in self._keyed:
            self._apply_keyed(name, rows, stale, version)
            return
        con, copy = self._con(), _copy(name)
        match = " AND ".join(f"{copy}.{ident(c)} IS NOT DISTINCT FROM k.{ident(c)}" for c in key)
        cols = ", ".join(ident(c) for c in key)
        names = ", ".join(ident(f.name) for f in rows.schema)
        con.register("__shoal_arr_rows", rows)
        con.register("__shoal_arr_stale", stale.select(list(key)))
        try:
            con.execute(
                f"DELETE FROM {copy} USING (SELECT {cols} FROM __shoal_arr_rows UNION ALL "
                f"SELECT {cols} FROM __shoal_arr_stale) AS k WHERE {match}"
            )
            con.execute(f"INSERT INTO {copy} ({names}) SELECT {names} FROM __shoal_arr_rows")
        except duckdb.Error:
            self.drop(name)  # e.g. a column the copy lacks (the table's schema grew): reload later
            return
        finally:
            con.unregister("__shoal_arr_rows")
            con.unregister("__shoal_arr_stale")
        self._held[name] = version

    def keyed(self, model: Model) -> KeyedSums | None:
        """``model``'s copy as keyed sums, converted from its temp table on first use; None when
        there is no copy or the model does not fit (then its temp table stays)."""
        name = model.name
        found = self._keyed.get(name)
        if found is not None or name not in self._held or name in self._unkeyed:
            return found
        con, copy = self._con(), _copy(name)
        rows = con.sql(f"SELECT * FROM {copy}").to_arrow_table()
        if not KeyedSums.fits(model, rows.schema):
            self._unkeyed.add(name)  # asked once: its temp table serves
            return None
        sums = KeyedSums.of(con, model, rows)
        if sums is None:
            self._unkeyed.add(name)  # two keys share a hash: the temp table serves
            return None
        con.execute(f"DROP TABLE {copy}")
        self._keyed[name] = sums
        self.publish(name)
        return sums

    def prepare(self, model: Model, delta: pa.Table) -> tuple[pa.Table, pa.Table, bool] | None:
        """A keyed add of ``delta`` to ``model``'s copy, checked and computed but kept until the
        commit it makes lands (:meth:`apply`): the commit's (rows, stale keys, whether any row's
        key exists). None when the copy is not keyed or the add is refused (then it is a temp
        table from now on)."""
        sums = self.keyed(model)
        if sums is None:
            return None
        self._prepared.pop(model.name, None)
        prepared = sums.prepare(self._con(), delta.select(sums.schema.names))
        if prepared is None:
            self.unkey(model.name)
            return None
        rows, stale, existed = sums.changed_rows(prepared)
        self._prepared[model.name] = (prepared, rows.num_rows, stale.num_rows)
        return rows, stale, existed

    def _apply_keyed(self, name: str, rows: pa.Table, stale: pa.Table, version: int) -> None:
        """:meth:`apply` to a keyed copy: the add prepared for this commit (an empty commit, of
        progress alone, changes nothing)."""
        stashed = self._prepared.pop(name, None)
        if stashed is None:
            if rows.num_rows or stale.num_rows:
                self.drop(name)  # rows this copy was not told of: read Delta, reload later
                return
        else:
            prepared, n_rows, n_stale = stashed
            if (n_rows, n_stale) != (rows.num_rows, stale.num_rows) or not self._keyed[name].commit(prepared):
                self.drop(name)
                return
            self.publish(name)
        self._held[name] = version

    def unkey(self, name: str) -> None:
        """Keep ``name``'s copy as a temp table from now on (a keyed add was refused: a hash
        collision or a sum out of its type), with the rows it holds."""
        self._unkeyed.add(name)
        sums = self._keyed.pop(name, None)
        if sums is None:
            return
        con = self._con()
        rows = sums.table()
        con.unregister(_copy_name(name))
        con.register("__shoal_arrange", rows)
        try:
            con.execute(f"CREATE TEMP TABLE {_copy(name)} AS SELECT * FROM __shoal_arrange")
        finally:
            con.unregister("__shoal_arrange")

    def keyable(self, name: str) -> bool:
        """Whether ``name``'s copy is, or may become, keyed sums (not refused or unfit yet)."""
        return name not in self._unkeyed

    def is_keyed(self, name: str) -> bool:
        """Whether ``name``'s copy is held as keyed sums now."""
        return name in self._keyed

    def publish(self, name: str) -> None:
        """Register the keyed sums' current rows under the copy's name (after a change)."""
        self._con().register(_copy_name(name), self._keyed[name].table())

    def copy_table(self, name: str) -> str:
        """The temp table holding ``name``'s copy (quoted)."""
        return _copy(name)

    def moved(self, name: str, *, before: int, version: int) -> None:
        """The runner committed at ``version`` what the copy already holds (held changes, ADR 0038):
        the copy reflects ``version`` now, if the commit landed directly on ``before``."""
        if self._held.get(name) != before or version != before + 1:
            self.drop(name)
            return
        self._held[name] = version

    def drop(self, name: str) -> None:
        self._prepared.pop(name, None)
        if name in self._pointed:
            self._point(name, to_copy=False)
        if self._held.pop(name, None) is not None:
            if self._keyed.pop(name, None) is not None:
                self._con().unregister(_copy_name(name))
            else:
                self._con().execute(f"DROP TABLE IF EXISTS {_copy(name)}")

    def forget(self) -> None:
        """The connection is closing: nothing is held any more."""
        self._held.clear()
        self._pointed.clear()
        self._keyed.clear()
        self._prepared.clear()

    def release(self, *, force: bool = False) -> None:
        """End of a cycle: every view reads Delta again (the copies are kept for the next one),
        unless ``keep_pointed`` (``force``: regardless)."""
        if self.keep_pointed and not force:
            return
        for name in list(self._pointed):
            self._point(name, to_copy=False)

    def _hold(self, name: str, version: int) -> None:
        self._held[name] = version
        self._point(name, to_copy=True)

    def _point(self, name: str, *, to_copy: bool) -> None:
        """Point ``name``'s view at its copy, or back at its Delta table (the engine's mount)."""
        if to_copy:
            source = f"SELECT * FROM {_copy(name)}"
            self._pointed.add(name)
        else:
            self._pointed.discard(name)
            table = self._find(name)
            if table is None:
                return
            source = f"SELECT * FROM delta_scan({_quote(table.uri)})"
        self._con().execute(f"CREATE OR REPLACE VIEW {_view(name)} AS {source}")

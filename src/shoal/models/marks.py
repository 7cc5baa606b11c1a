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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from shoal.lake import Table, sql_literal
from shoal.models.model import Model
from shoal.models.sql import ident, literal, plain

MARK = "__shoal_mark"


def _marks(name: str) -> str:
    return ident("__shoal_marks_" + name.replace(".", "__"))


@dataclass
class _Marks:
    #: the Delta version of the model's table the marks reflect
    version: int
    #: the first ``incremental_by`` column's values (as SQL literals) whose slices are loaded
    groups: set[str] = field(default_factory=set)


class RestateMarks:
    """The marks of one runner's session (see the module docstring)."""

    def __init__(self, con: Callable[[], duckdb.DuckDBPyConnection]) -> None:
        self._con = con
        self._held: dict[str, _Marks] = {}

    @staticmethod
    def applies(model: Model) -> bool:
        return bool(model.restate_from and model.incremental_by)

    def in_scope(self, model: Model, table: Table, version: int | None, touched: pa.Table) -> pa.Table:
        """The slices of ``touched`` (``incremental_by`` columns and ``__shoal_from``) whose scope
        may hold rows of ``table`` at ``version``: a slice restated whole, or from a point at or
        below its mark. Slices with no rows, or whose restate point is past their mark, are left
        out. All of ``touched`` when marks cannot be kept for it."""
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
        con = self._con()
        if missing:
            try:
                self._load(model, table, version, missing)
            except duckdb.Error:
                self.drop(model.name)
                return touched
            held.groups.update(missing)
        on = " AND ".join(f"t.{ident(c)} IS NOT DISTINCT FROM m.{ident(c)}" for c in model.incremental_by)
        con.register("__shoal_marks_touched", touched)
        try:
            return con.sql(
                f"SELECT t.* FROM __shoal_marks_touched AS t LEFT JOIN {_marks(model.name)} AS m ON {on} "
                f"WHERE t.__shoal_from IS NULL OR m.{MARK} >= t.__shoal_from"
            ).to_arrow_table()
        finally:
            con.unregister("__shoal_marks_touched")

    def _load(self, model: Model, table: Table, version: int, groups: list[str]) -> None:
        """The marks of the slices whose first ``incremental_by`` value is one of ``groups``, from
        the table at ``version`` (replacing any raised before the group was loaded)."""
        assert model.restate_from
        con, marks = self._con(), _marks(model.name)
        by = ", ".join(ident(c) for c in model.incremental_by)
        first = ident(model.incremental_by[0])
        in_groups = f"{first} IN ({', '.join(groups)})"
        scan = f"delta_scan({sql_literal(table.uri)}, version => {int(version)})"
        con.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {marks} AS "
            f"SELECT {by}, {ident(model.restate_from)} AS {MARK} FROM {scan} LIMIT 0"
        )
        con.execute(f"DELETE FROM {marks} WHERE {in_groups}")
        con.execute(
            f"INSERT INTO {marks} SELECT {by}, max({ident(model.restate_from)}) FROM {scan} "
            f"WHERE {in_groups} GROUP BY {by}"
        )

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
        cols = [*model.incremental_by, model.restate_from]
        if rows.num_rows and all(c in rows.column_names for c in cols):
            con, marks = self._con(), _marks(model.name)
            by = ", ".join(ident(c) for c in model.incremental_by)
            on = " AND ".join(f"m.{ident(c)} IS NOT DISTINCT FROM r.{ident(c)}" for c in model.incremental_by)
            con.register("__shoal_marks_rows", rows.select(cols))
            try:
                con.execute(
                    f"MERGE INTO {marks} AS m USING (SELECT {by}, max({ident(model.restate_from)}) AS {MARK} "
                    f"FROM __shoal_marks_rows GROUP BY {by}) AS r ON {on} "
                    f"WHEN MATCHED AND (m.{MARK} IS NULL OR r.{MARK} > m.{MARK}) "
                    f"THEN UPDATE SET {MARK} = r.{MARK} "
                    f"WHEN NOT MATCHED THEN INSERT ({by}, {MARK}) VALUES "
                    f"({', '.join(f'r.{ident(c)}' for c in model.incremental_by)}, r.{MARK})"
                )
            except duckdb.Error:
                self.drop(model.name)  # e.g. a type the marks table cannot take: read as before
                return
            finally:
                con.unregister("__shoal_marks_rows")
        elif rows.num_rows:
            self.drop(model.name)
            return
        held.version = version

    def drop(self, name: str) -> None:
        if self._held.pop(name, None) is not None:
            self._con().execute(f"DROP TABLE IF EXISTS {_marks(name)}")

    def forget(self) -> None:
        """The connection is closing: nothing is held any more."""
        self._held.clear()

"""Refreshing models: recompute only what new upstream data touched, in one commit per model.

Progress is exactly-once like ingestion: each model commit carries, as Delta app transactions,
the upstream versions it has consumed (``model:<upstream>``) and the definition's hash. A
refresh reads the change data feed of each upstream since those versions, collects the
``incremental_by`` values it touches, recomputes those slices with the model's SQL, and merges
them into the model table, deleting rows of a touched slice that no longer exist.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from shoal.errors import ConfigError, NotFoundError, ShoalError, Terminal
from shoal.lake import Lake, Table, sql_literal
from shoal.models.model import Model
from shoal.query import Connection, connect_lake

SQL_APP_ID = "model:definition"


class ModelError(ShoalError, Terminal):
    """A model's SQL failed or does not fit its declaration."""


@dataclass
class RefreshResult:
    model: str
    mode: str  # "full", "incremental", "unchanged"
    touched: int = 0
    rows_written: int = 0
    rows_deleted: int = 0
    version: int | None = None
    seconds: float = 0.0
    upstream_versions: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


IN_LIST_MAX = 256  # more touched values than this: a range instead of an IN list
SPLIT_GROUPS_MAX = 8  # restate scopes are read per group of slices up to this many groups


def _literal(value: object) -> str | None:
    """A DuckDB literal for a value of a basic type, None for anything else (no bound is derived)."""
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return f"TIMESTAMPTZ '{value.isoformat()}'" if value.tzinfo else f"TIMESTAMP '{value.isoformat()}'"
    return sql_literal(value)


def _plain(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """String views (DuckDB's Arrow output) as strings: few compute kernels take views."""
    return values.cast(pa.string()) if pa.types.is_string_view(values.type) else values


def _constant_bound(column_sql: str, values: pa.ChunkedArray, *, exact: bool) -> str | None:
    """A constant condition every row in scope satisfies: ``column IN (touched values)`` when
    ``exact`` and there are few, else ``column >= min`` (and ``<= max`` when ``exact``)."""
    if values.null_count or len(values) == 0:
        return None  # NULL slices and whole-slice restates: no constant bound holds
    values = _plain(values)
    try:
        return _bound(column_sql, values, exact=exact)
    except pa.ArrowNotImplementedError:
        return None  # a type without min/max or unique kernels


def _bound(column_sql: str, values: pa.ChunkedArray, *, exact: bool) -> str | None:
    if exact:
        distinct = pc.unique(values).to_pylist()
        if len(distinct) <= IN_LIST_MAX:
            literals = [_literal(v) for v in distinct]
            if all(lit is not None for lit in literals):
                return f"{column_sql} IN ({', '.join(str(lit) for lit in literals)})"
    bounds = pc.min_max(values)
    low, high = _literal(bounds["min"].as_py()), _literal(bounds["max"].as_py())
    if low is None or high is None:
        return None
    return f"{column_sql} BETWEEN {low} AND {high}" if exact else f"{column_sql} >= {low}"


def order_models(models: Sequence[Model]) -> list[Model]:
    """Dependency order: a model comes after the models it reads."""
    by_name = {m.name: m for m in models}
    ordered: list[Model] = []
    state: dict[str, int] = {}

    def visit(m: Model, path: tuple[str, ...]) -> None:
        if state.get(m.name) == 2:
            return
        if state.get(m.name) == 1:
            raise ConfigError(f"models: dependency cycle {' -> '.join((*path, m.name))}")
        state[m.name] = 1
        for up in m.upstream:
            if up in by_name:
                visit(by_name[up], (*path, m.name))
        state[m.name] = 2
        ordered.append(m)

    for m in models:
        visit(m, ())
    return ordered


class ModelRunner:
    """Refreshes models of one lake; reuse it to keep a DuckDB connection warm."""

    def __init__(self, lake: Lake, models: Sequence[Model], con: Connection | None = None) -> None:
        self.lake = lake
        self.models = order_models(models)
        by_name = {m.name: m for m in self.models}
        for m in self.models:
            for name in m.state_models:
                state = by_name.get(name)
                if state is None:
                    raise ConfigError(f"model {m.name} reads state model {name}: refresh them together")
                if m.name not in state.upstream:
                    raise ConfigError(f"model {m.name}: state model {name} must read it (upstream)")
        self._by_name = by_name
        self._con = con
        # Table handles are kept so each refresh reads only the new log entries, not the whole log.
        self._tables: dict[str, Table] = {}

    def _find(self, name: str) -> Table | None:
        table = self._tables.get(name)
        if table is None:
            table = self.lake.find(name)
            if table is not None:
                self._tables[name] = table
        return table

    @property
    def con(self) -> Connection:
        if self._con is None:
            self._con = connect_lake(self.lake)
        return self._con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> ModelRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def refresh(
        self,
        names: Sequence[str] | None = None,
        *,
        full: bool = False,
        progress: Callable[[str], None] | None = None,
    ) -> list[RefreshResult]:
        wanted = set(names) if names else None
        if wanted:
            unknown = wanted - {m.name for m in self.models}
            if unknown:
                raise NotFoundError(f"no model named {', '.join(sorted(unknown))}")
        results = []
        for model in self.models:
            if wanted and model.name not in wanted:
                continue
            if progress:
                progress(model.name)
            results.append(self.refresh_one(model, full=full))
        return results

    @property
    def sources(self) -> list[str]:
        """Tables the models read that no model of this runner writes (e.g. ingested tables)."""
        names = {m.name for m in self.models}
        return sorted({u for m in self.models for u in m.upstream} - names)

    def source_versions(self) -> dict[str, int | None]:
        return {name: (t.version if (t := self._find(name)) is not None else None) for name in self.sources}

    def watch(
        self,
        *,
        interval_s: float = 1.0,
        should_stop: Callable[[], bool],
        on_cycle: Callable[[list[RefreshResult]], None] | None = None,
    ) -> int:
        """Keep models fresh: refresh whenever a source table got a new version, until
        ``should_stop()``. Looks at the sources' Delta logs (an incremental read of new log
        entries) every ``interval_s``: a cycle starts at most once per interval, at once when the
        previous cycle took longer, so a watcher of slow-moving rollups given a long interval
        batches what its busy sources commit meanwhile. Returns the number of refresh cycles run."""
        seen: dict[str, int | None] = {}
        cycles = 0
        while not should_stop():
            looked = time.monotonic()
            current = self.source_versions()
            if current != seen:
                if any(v is None for v in current.values()):
                    seen = current  # a source does not exist yet: wait for it, quietly
                else:
                    results = self.refresh()
                    seen = current
                    cycles += 1
                    if on_cycle is not None:
                        on_cycle(results)
            deadline = looked + interval_s
            while not should_stop() and time.monotonic() < deadline:
                time.sleep(min(0.05, interval_s))
        return cycles

    # -- one model -------------------------------------------------------------------------------
    def refresh_one(self, model: Model, *, full: bool = False) -> RefreshResult:
        start = time.perf_counter()
        found = {u: self._find(u) for u in model.upstream}
        missing = [u for u, t in found.items() if t is None]
        if missing:
            raise NotFoundError(
                f"model {model.name}: upstream table(s) {', '.join(missing)} do not exist yet"
            )
        upstream = {u: t for u, t in found.items() if t is not None}
        current = {u: t.version for u, t in upstream.items()}
        target = self._find(model.name)
        needed = {*model.upstream, model.name} if target is not None else set(model.upstream)
        if not needed <= set(self.con.tables):
            self.con.refresh()  # mount tables created since the connection opened

        needs_full = full or target is None or target.app_version(SQL_APP_ID) != model.sql_hash
        if not needs_full and not model.incremental_by and not model.additive_sql:
            assert target is not None
            if all(target.app_version(f"model:{u}") == v for u, v in current.items()):
                return RefreshResult(
                    model.name, "unchanged", version=target.version, upstream_versions=current
                )
            needs_full = True
        if needs_full:
            result = self._full(model, target, current)
        elif model.additive_sql:
            assert target is not None
            result = self._additive(model, target, upstream, current)
        else:
            assert target is not None
            self._sync_state(model, target)
            result = self._incremental(model, target, upstream, current)
        result.seconds = round(time.perf_counter() - start, 3)
        result.upstream_versions = current
        return result

    def _txns(self, model: Model, current: dict[str, int]) -> dict[str, int]:
        return {SQL_APP_ID: model.sql_hash, **{f"model:{u}": v for u, v in current.items()}}

    def _run_sql(self, model: Model, sql: str) -> pa.Table:
        try:
            return self.con.query_arrow(sql)
        except ShoalError as exc:
            raise ModelError(f"model {model.name}: {exc}") from exc

    def _full(self, model: Model, target: Table | None, current: dict[str, int]) -> RefreshResult:
        sql = model.sql
        if model.restate_from:
            # written in restate order, file and row-group statistics let incremental refreshes
            # (which read from the restate point on) skip the rows before it
            sql = f"SELECT * FROM ({sql}) ORDER BY {_ident(model.restate_from)}"
        data = self._run_sql(model, sql)
        self._check_columns(model, data.schema)
        self._check_unique(model, data)
        if target is None:
            target = self.lake.create_table(
                model.name,
                data.schema,
                partition_by=model.partition_by,
                description=model.description,
                owner=model.owner,
                source=f"model: {', '.join(model.upstream)}",
            )
            self._tables[model.name] = target
            self.con.refresh()  # downstream models read it in this same run
        version = target.overwrite(data, app_transactions=self._txns(model, current))
        return RefreshResult(model.name, "full", rows_written=data.num_rows, version=version)

    def _check_unique(self, model: Model, rows: pa.Table, what: str = "SQL") -> None:
        """One row per ``unique_key``: a duplicate would otherwise be appended silently, or fail a
        merge with delta-rs's internal message."""
        con = self.con.duckdb
        key = ", ".join(_ident(c) for c in model.unique_key)
        con.register("__shoal_keys", rows.select(list(model.unique_key)))
        try:
            dup = con.sql(
                f"SELECT {key}, count(*) FROM __shoal_keys GROUP BY ALL HAVING count(*) > 1 LIMIT 1"
            ).fetchone()
        finally:
            con.unregister("__shoal_keys")
        if dup is not None:
            *values, n = dup
            shown = ", ".join(f"{c}={v!r}" for c, v in zip(model.unique_key, values, strict=True))
            raise ModelError(f"model {model.name}: its {what} returned {n} rows for one unique_key ({shown})")

    def _check_columns(self, model: Model, schema: pa.Schema) -> None:
        absent = [c for c in (*model.unique_key, *model.incremental_by) if c not in schema.names]
        if absent:
            raise ModelError(f"model {model.name}: its SQL does not return column(s) {', '.join(absent)}")

    def _sync_state(self, model: Model, target: Table) -> None:
        """Bring ``model``'s state models up to its current version (they lag after a crash
        between its commit and theirs, or when refreshed apart)."""
        for name in model.state_models:
            state = self._find(name)
            if state is None or state.app_version(f"model:{model.name}") != target.version:
                self.refresh_one(self._by_name[name])

    def _additive(
        self, model: Model, target: Table, upstream: dict[str, Table], current: dict[str, int]
    ) -> RefreshResult:
        """Add the signed sums of the upstream's changed rows to the model's rows (see Model)."""
        assert model.additive_sql is not None
        assert model.additive_count is not None
        ((name, table),) = upstream.items()
        since = target.app_version(f"model:{name}")
        if since is None:
            return self._full(model, target, current)
        txns = self._txns(model, current)
        if table.version == since:
            return RefreshResult(model.name, "unchanged", version=target.version)
        try:
            changes = table.changes_since(since)
        except ShoalError:
            return self._full(model, target, current)  # change feed unavailable (e.g. vacuumed)
        if changes.num_rows == 0:
            version = target.append(pa.table({}), app_transactions=txns)
            return RefreshResult(model.name, "unchanged", version=version)
        negative = pc.is_in(changes["_change_type"], value_set=pa.array(["delete", "update_preimage"]))
        sign = pc.if_else(negative, pa.scalar(-1, pa.int64()), pa.scalar(1, pa.int64()))
        con = self.con.duckdb
        registered: list[str] = []
        try:
            con.register("__shoal_delta", changes.append_column("__shoal_sign", sign))
            registered.append("__shoal_delta")
            delta = self._run_sql(model, model.additive_sql)
            merged = self._add_to_current(model, target, delta, registered)
        finally:
            self._unregister(registered)
        if merged is None:
            return self._full(model, target, current)  # a count below zero: out of step, rebuild
        rows, stale, existed = merged
        return self._write(model, target, rows, stale, existed=existed, txns=txns, touched=delta.num_rows)

    def _unregister(self, names: Sequence[str]) -> None:
        for name in names:
            with contextlib.suppress(duckdb.Error):
                self.con.duckdb.unregister(name)

    def _write(
        self,
        model: Model,
        target: Table,
        rows: pa.Table,
        stale: pa.Table,
        *,
        existed: bool,
        txns: dict[str, int],
        touched: int,
    ) -> RefreshResult:
        """Commit changed ``rows`` and deletes of ``stale`` keys with the progress ``txns``: a plain
        append (no file rewrite) when no changed key exists yet and nothing is deleted."""
        if rows.num_rows == 0 and stale.num_rows == 0:
            version = target.append(pa.table({}), app_transactions=txns)
        elif not existed and stale.num_rows == 0:
            version = target.append(rows, app_transactions=txns)
        else:
            version = target.merge(rows, model.unique_key, delete_keys=stale, app_transactions=txns)
        return RefreshResult(
            model.name,
            "incremental",
            touched=touched,
            rows_written=rows.num_rows,
            rows_deleted=stale.num_rows,
            version=version,
        )

    def _add_to_current(
        self, model: Model, target: Table, delta: pa.Table, registered: list[str]
    ) -> tuple[pa.Table, pa.Table, bool] | None:
        """(new values of the changed rows, keys of rows whose count reached 0, whether any changed
        row exists already); None when a count would go below zero."""
        names = target.schema.names
        absent = [c for c in names if c not in delta.column_names]
        if absent:
            raise ModelError(f"model {model.name}: its additive_sql does not return {', '.join(absent)}")
        self._check_unique(model, delta, "additive_sql")
        con = self.con.duckdb
        add = [_ident(c) for c in model.additive]
        nonzero = " OR ".join(f"coalesce({a}, 0) <> 0" for a in add)
        con.register("__shoal_d0", delta)
        registered.append("__shoal_d0")
        # a change that moves no sum (e.g. an update of other columns) writes nothing
        con.sql(f"CREATE OR REPLACE TEMP TABLE __shoal_d AS SELECT * FROM __shoal_d0 WHERE {nonzero}")
        try:
            on = " AND ".join(f"o.{_ident(c)} IS NOT DISTINCT FROM d.{_ident(c)}" for c in model.unique_key)
            keys = con.sql(f"SELECT {', '.join(_ident(c) for c in model.unique_key)} FROM __shoal_d")
            key_values = keys.to_arrow_table()
            # constant bounds (IN lists, ranges) let DuckDB skip partitions and files of the target
            bounds = [
                b
                for c in model.unique_key
                if (b := _constant_bound(f"o.{_ident(c)}", key_values[c], exact=True)) is not None
            ]
            where = f" WHERE {' AND '.join(bounds)}" if bounds else ""
            con.sql(
                "CREATE OR REPLACE TEMP TABLE __shoal_cur AS SELECT o.*, TRUE AS __shoal_hit "
                f"FROM {model.name} AS o SEMI JOIN __shoal_d AS d ON {on}{where}"
            )
            cols = [
                f"coalesce(o.{_ident(c)}, 0) + d.{_ident(c)} AS {_ident(c)}"
                if c in model.additive
                else f"d.{_ident(c)}"
                for c in names
            ]
            merged = con.sql(
                f"SELECT {', '.join(cols)}, o.__shoal_hit IS NOT NULL AS __shoal_hit "
                f"FROM __shoal_d AS d LEFT JOIN __shoal_cur AS o ON {on}"
            ).to_arrow_table()
        finally:
            con.sql("DROP TABLE IF EXISTS __shoal_d")
            con.sql("DROP TABLE IF EXISTS __shoal_cur")
        count = merged[model.additive_count]
        if pc.any(pc.less(count, 0)).as_py():
            return None
        gone = pc.equal(count, 0)
        keep = pc.invert(gone)
        rows = merged.filter(keep).select(names).cast(target.schema)
        stale = merged.filter(pc.and_(gone, merged["__shoal_hit"])).select(list(model.unique_key))
        existed = bool(pc.any(merged.filter(keep)["__shoal_hit"]).as_py())
        return rows, stale, existed

    def _touched(
        self, model: Model, upstream: dict[str, Table], target: Table
    ) -> tuple[pa.Table, pa.Table | None] | None:
        """Distinct incremental_by values in upstream changes (with ``__shoal_from``, the smallest
        changed ``restate_from`` value of each, when the model has one), and with a single upstream
        its change rows; None means 'rebuild fully'."""
        cols = [*model.incremental_by, *([model.restate_from] if model.restate_from else [])]
        parts = []
        feeds = []
        for name, table in upstream.items():
            since = target.app_version(f"model:{name}")
            if since is None:
                return None
            if table.version == since:
                continue
            try:
                changes = table.changes_since(since)
            except ShoalError:
                return None  # change feed unavailable (e.g. vacuumed): recompute everything
            if changes.num_rows == 0:
                continue
            if any(c not in changes.column_names for c in cols):
                return None
            parts.append(changes.select(cols))
            feeds.append(changes)
        single = feeds[0] if len(upstream) == 1 and feeds else None
        if not parts:
            return pa.table({c: [] for c in model.incremental_by}), single
        touched = pa.concat_tables(parts, promote_options="permissive")
        if not model.restate_from:
            return touched.group_by(cols).aggregate([]), single
        by = ", ".join(_ident(c) for c in model.incremental_by)
        rf = _ident(model.restate_from)
        con = self.con.duckdb
        con.register("__shoal_changed_values", touched)
        try:
            # a NULL restate_from among a slice's changes restates the whole slice
            slices = con.sql(
                f"SELECT {by}, CASE WHEN count(*) > count({rf}) THEN NULL ELSE min({rf}) END AS __shoal_from "
                f"FROM __shoal_changed_values GROUP BY {by}"
            ).to_arrow_table()
        finally:
            con.unregister("__shoal_changed_values")
        return slices, single

    def _scoped(
        self, model: Model, touched: pa.Table, relation: str, columns: Sequence[str] | None = None
    ) -> str:
        """SELECT ``columns`` of ``relation``'s rows that lie in a touched slice (from its restate
        point on). A hash join on the slice columns (``__shoal_touched`` has one row per slice):
        DuckDB runs an EXISTS form several times slower. Constant bounds implied by the join (IN
        lists or ranges of the touched values) let it push filters into the Delta scans.

        With ``restate_from``, slices are read per value of the first ``incremental_by`` column
        (e.g. per month), each group with its own bounds: one slice restated from an old point
        (a late event for last month) would otherwise lower the restate bound of every slice and
        make each refresh read the current month whole."""
        if model.restate_from and model.incremental_by:
            first = model.incremental_by[0]
            keys = _plain(touched[first])
            groups = pc.unique(keys)
            literals = [_literal(v) for v in groups.to_pylist()] if len(groups) <= SPLIT_GROUPS_MAX else []
            if len(literals) > 1 and all(lit is not None for lit in literals):
                branches = [
                    self._scoped_group(
                        model,
                        touched.filter(pc.equal(keys, value)),
                        relation,
                        columns,
                        f"(SELECT * FROM __shoal_touched WHERE {_ident(first)} = {literal})",
                    )
                    for value, literal in zip(groups, literals, strict=True)
                ]
                return " UNION ALL ".join(branches)
        return self._scoped_group(model, touched, relation, columns, "__shoal_touched")

    def _scoped_group(
        self, model: Model, touched: pa.Table, relation: str, columns: Sequence[str] | None, slices: str
    ) -> str:
        """:meth:`_scoped` for the slices of ``touched``, read from the relation ``slices``."""
        on = [f"__t.{_ident(c)} IS NOT DISTINCT FROM __s.{_ident(c)}" for c in model.incremental_by]
        where = [
            b
            for c in model.incremental_by
            if (b := _constant_bound(f"__s.{_ident(c)}", touched[c], exact=True)) is not None
        ]
        if model.restate_from:
            rf = _ident(model.restate_from)
            where.append(f"(__t.__shoal_from IS NULL OR __s.{rf} >= __t.__shoal_from)")
            low = _constant_bound(f"__s.{rf}", touched["__shoal_from"], exact=False)
            if low is not None:
                where.append(low)
        cols = "__s.*" if columns is None else ", ".join(f"__s.{_ident(c)}" for c in columns)
        sql = f"SELECT {cols} FROM {relation} AS __s JOIN {slices} AS __t ON {' AND '.join(on)}"
        return f"{sql} WHERE {' AND '.join(where)}" if where else sql

    def _incremental(
        self, model: Model, target: Table, upstream: dict[str, Table], current: dict[str, int]
    ) -> RefreshResult:
        found = self._touched(model, upstream, target)
        if found is None:
            return self._full(model, target, current)
        touched, changes = found
        if touched.num_rows == 0:
            if all(target.app_version(f"model:{u}") == v for u, v in current.items()):
                return RefreshResult(model.name, "unchanged", version=target.version)
            version = target.append(pa.table({}), app_transactions=self._txns(model, current))
            return RefreshResult(model.name, "unchanged", version=version)

        con = self.con.duckdb
        registered = ["__shoal_touched"]
        con.register("__shoal_touched", touched)
        if changes is not None:
            con.register("__shoal_changes", changes)
            registered.append("__shoal_changes")
        try:
            # the model's current rows in scope: what the new ones are compared with (and what an
            # incremental_sql may build on)
            con.sql("CREATE OR REPLACE TEMP TABLE __shoal_old AS " + self._scoped(model, touched, model.name))
            scoped = model.incremental_sql or (self._scoped(model, touched, f"({model.sql})"))
            new_rows = self._run_sql(model, scoped)
            self._check_columns(model, new_rows.schema)
            self._check_unique(model, new_rows, "incremental SQL" if model.incremental_sql else "SQL")
            changed, stale, updates = self._diff(model, target, new_rows, registered)
        finally:
            con.sql("DROP TABLE IF EXISTS __shoal_old")
            self._unregister(registered)
        txns = self._txns(model, current)
        return self._write(
            model, target, changed, stale, existed=updates, txns=txns, touched=touched.num_rows
        )

    def _diff(
        self, model: Model, target: Table, new_rows: pa.Table, registered: list[str]
    ) -> tuple[pa.Table, pa.Table, bool]:
        """(rows that differ from the target's rows in scope, ``__shoal_old``; keys of those that are
        gone; whether any changed row's key already exists in the target). Writing only what
        changed keeps commits small and the change feed — what downstream models recompute from —
        precise."""
        con = self.con.duckdb
        key = ", ".join(_ident(c) for c in model.unique_key)
        con.register("__shoal_new", new_rows)
        registered.append("__shoal_new")
        target_cols = set(target.schema.names)
        same_cols = all(c in target_cols for c in new_rows.column_names)
        match = " AND ".join(f"o.{_ident(c)} IS NOT DISTINCT FROM n.{_ident(c)}" for c in model.unique_key)
        stale = con.sql(
            f"SELECT {key} FROM __shoal_old AS o "
            f"WHERE NOT EXISTS (SELECT 1 FROM __shoal_new AS n WHERE {match})"
        ).to_arrow_table()
        if not same_cols:
            changed = new_rows  # the target lacks a column: every row gains it
            return changed, stale, self._any_exists(model, new_rows, registered)
        # Rows with a key not in scope are new; the others are joined to the old row of their key
        # and kept if any value differs (an EXCEPT ALL would hash every column of every row).
        others = [c for c in new_rows.column_names if c not in model.unique_key]
        differs = " OR ".join(f"n.{_ident(c)} IS DISTINCT FROM o.{_ident(c)}" for c in others) or "FALSE"
        added = con.sql(f"SELECT n.* FROM __shoal_new AS n ANTI JOIN __shoal_old AS o ON {match}")
        updated = con.sql(
            f"SELECT n.* FROM __shoal_new AS n JOIN __shoal_old AS o ON {match} WHERE {differs}"
        ).to_arrow_table()
        parts = [added.to_arrow_table(), updated]
        changed = pa.concat_tables([t.select(new_rows.column_names).cast(new_rows.schema) for t in parts])
        if changed.num_rows == 0:
            return changed, stale, False
        # Does any changed key exist already (then merge, else a plain append)? When the key holds
        # every scope column it names its slice, so only in-scope rows can hold it (the updated
        # ones); otherwise (e.g. keyed by event id) look through the whole target.
        scope_cols = {*model.incremental_by, *([model.restate_from] if model.restate_from else [])}
        if scope_cols <= set(model.unique_key):
            return changed, stale, updated.num_rows > 0
        return changed, stale, self._any_exists(model, changed, registered)

    def _any_exists(self, model: Model, rows: pa.Table, registered: list[str]) -> bool:
        """Whether the target holds any of ``rows``' keys."""
        con = self.con.duckdb
        con.register("__shoal_changed", rows)
        registered.append("__shoal_changed")
        kmatch = " AND ".join(f"t.{_ident(c)} IS NOT DISTINCT FROM c.{_ident(c)}" for c in model.unique_key)
        (n_existing,) = con.sql(
            f"SELECT count(*) FROM {model.name} AS t "
            f"WHERE EXISTS (SELECT 1 FROM __shoal_changed AS c WHERE {kmatch})"
        ).fetchone() or (0,)
        return bool(n_existing)

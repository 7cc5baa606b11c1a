"""Refreshing models: recompute only what new upstream data touched, in one commit per model.

Progress is exactly-once like ingestion: each model commit carries, as Delta app transactions,
the upstream versions it has consumed (``model:<upstream>``) and the definition's hash. A
refresh reads the change data feed of each upstream since those versions, collects the
``incremental_by`` values it touches, recomputes those slices with the model's SQL, and merges
them into the model table, deleting rows of a touched slice that no longer exist.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from shoal.errors import ConfigError, NotFoundError, ShoalError, Terminal
from shoal.lake import Lake, Table
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
        names: Sequence[str] | None = None,
    ) -> int:
        """Keep models fresh: refresh whenever a source table got a new version, until
        ``should_stop()``. Polls the sources' Delta logs every ``interval_s`` (an incremental read of
        new log entries); returns the number of refresh cycles run."""
        seen: dict[str, int | None] = {}
        cycles = 0
        while not should_stop():
            current = self.source_versions()
            if current != seen:
                if any(v is None for v in current.values()):
                    seen = current  # a source does not exist yet: wait for it, quietly
                else:
                    results = self.refresh(names)
                    seen = current
                    cycles += 1
                    if on_cycle is not None:
                        on_cycle(results)
                    continue  # sources may have moved while refreshing: look again at once
            deadline = time.monotonic() + interval_s
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
        if not needs_full and not model.incremental_by:
            assert target is not None
            if all(target.app_version(f"model:{u}") == v for u, v in current.items()):
                return RefreshResult(
                    model.name, "unchanged", version=target.version, upstream_versions=current
                )
            needs_full = True
        if needs_full:
            result = self._full(model, target, current)
        else:
            assert target is not None
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
        data = self._run_sql(model, model.sql)
        self._check_columns(model, data.schema)
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

    def _check_columns(self, model: Model, schema: pa.Schema) -> None:
        absent = [c for c in (*model.unique_key, *model.incremental_by) if c not in schema.names]
        if absent:
            raise ModelError(f"model {model.name}: its SQL does not return column(s) {', '.join(absent)}")

    def _touched(self, model: Model, upstream: dict[str, Table], target: Table) -> pa.Table | None:
        """Distinct incremental_by values in upstream changes; None means 'rebuild fully'."""
        cols = list(model.incremental_by)
        parts = []
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
        if not parts:
            return pa.table({c: [] for c in cols})
        touched = pa.concat_tables(parts, promote_options="permissive")
        return touched.group_by(cols).aggregate([])

    def _incremental(
        self, model: Model, target: Table, upstream: dict[str, Table], current: dict[str, int]
    ) -> RefreshResult:
        touched = self._touched(model, upstream, target)
        if touched is None:
            return self._full(model, target, current)
        if touched.num_rows == 0:
            if all(target.app_version(f"model:{u}") == v for u, v in current.items()):
                return RefreshResult(model.name, "unchanged", version=target.version)
            version = target.append(pa.table({}), app_transactions=self._txns(model, current))
            return RefreshResult(model.name, "unchanged", version=version)

        by = ", ".join(_ident(c) for c in model.incremental_by)
        key = ", ".join(_ident(c) for c in model.unique_key)
        con = self.con.duckdb
        con.register("__shoal_touched", touched)
        try:
            new_rows = self._run_sql(
                model,
                f"SELECT * FROM ({model.sql}) AS __m WHERE ({by}) IN (SELECT ({by}) FROM __shoal_touched)",
            )
            self._check_columns(model, new_rows.schema)
            con.register("__shoal_new", new_rows)
            stale = con.sql(
                f"SELECT {key} FROM {model.name} WHERE ({by}) IN (SELECT ({by}) FROM __shoal_touched) "
                f"AND ({key}) NOT IN (SELECT ({key}) FROM __shoal_new)"
            ).to_arrow_table()
        finally:
            con.unregister("__shoal_touched")
        with contextlib.suppress(duckdb.Error):
            con.unregister("__shoal_new")
        version = target.merge(
            new_rows, model.unique_key, delete_keys=stale, app_transactions=self._txns(model, current)
        )
        return RefreshResult(
            model.name,
            "incremental",
            touched=touched.num_rows,
            rows_written=new_rows.num_rows,
            rows_deleted=stale.num_rows,
            version=version,
        )

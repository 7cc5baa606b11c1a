"""The refresh context: what one model's refresh reads, checks and commits.

A :class:`Session` is what a runner's refreshes share: the lake, a warm DuckDB connection, table
handles (kept so each refresh reads only the new log entries, not the whole log), and the change
rows of the commits of the current cycle (:class:`Handoff`: a downstream model of the same runner
takes its upstream's changes from memory instead of reading them back from the Delta log). A
:class:`RefreshContext` is one refresh of one model: its target and upstream tables, the upstream
versions it consumes, and the target's progress keys (``shoal.lake.progress``) read once, from one
snapshot. Every strategy checks its rows and commits through it, so each commit carries the same
progress ``txn``s: the definition's hash and the upstream versions consumed (ADR 0004, 0005).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from shoal.errors import NotFoundError, ShoalError
from shoal.lake import Lake, Progress, Table
from shoal.lake import sql_ident as ident
from shoal.lake.progress import MODEL_DEFINITION, model_input
from shoal.models.arrangements import Arrangements
from shoal.models.deferred import Deferred
from shoal.models.errors import ModelError
from shoal.models.folding import Folds
from shoal.models.marks import RestateMarks
from shoal.models.model import Model
from shoal.query import Connection, connect_lake


@dataclass
class RefreshResult:
    model: str
    mode: str  # "full", "incremental", "unchanged"; "commit" (held changes), "fold" (ADR 0053)
    touched: int = 0
    rows_written: int = 0
    rows_deleted: int = 0
    version: int | None = None
    seconds: float = 0.0
    upstream_versions: dict[str, int] = field(default_factory=dict)
    #: the upstreams whose changes this refresh took from their commit in the same cycle (memory)
    handed_off: list[str] = field(default_factory=list)
    #: the changes were added to the runner's in-memory rows, to be committed later (ADR 0038)
    held: bool = False

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


CHANGE_TYPE = "_change_type"
COMMIT_VERSION = "_commit_version"


@dataclass(frozen=True)
class Handoff:
    """The change rows of one model commit, as the Delta change feed has them (the target's
    columns, ``_change_type``, ``_commit_version``), kept for downstream models of the same cycle.

    Only a commit made directly on the version its refresh started from (``version == before + 1``)
    is handed off: then its change feed is exactly these rows, and a downstream model last
    refreshed from ``before`` may take them instead of reading the log back (ADR 0020)."""

    before: int
    version: int
    rows: pa.Table


class Session:
    """The lake, connection, table handles and handoffs the refreshes of one runner share."""

    def __init__(self, lake: Lake, con: Connection | None = None) -> None:
        self.lake = lake
        self._con = con
        self._tables: dict[str, Table] = {}
        self._handoffs: dict[str, Handoff] = {}
        #: per table, the latest versions this runner committed as folds (data-neutral, ADR 0053)
        self._neutral: dict[str, list[int]] = {}
        #: models whose commits a model of this runner reads (their change rows are handed off)
        self.feeding: frozenset[str] = frozenset()
        #: in-memory copies of models this runner writes (its ``models`` are set by the runner)
        self.arranged = Arrangements(lambda: self.con.duckdb, self.find)
        #: additive models whose changes the runner holds between commits (``commit_every_s``)
        self.deferred = Deferred(lambda: self.con.duckdb, self.arranged)
        #: per slice, the greatest restate_from of each restating model's rows (ADR 0043)
        self.marks = RestateMarks(lambda: self.con.duckdb)
        #: the runner's folds of its models' small files (ADR 0053)
        self.folds = Folds(self.find)

    def hand_off(self, name: str, handoff: Handoff | None) -> None:
        """Keep (or, with None, forget) the change rows of ``name``'s latest commit."""
        if handoff is None:
            self._handoffs.pop(name, None)
        else:
            self._handoffs[name] = handoff

    def handed_off(self, name: str, since: int, until: int) -> pa.Table | None:
        """``name``'s change rows after version ``since`` up to ``until``, when they are exactly
        the rows of a commit of this cycle; None: read the change feed."""
        handoff = self._handoffs.get(name)
        if handoff is None or handoff.version != until or handoff.before < since:
            return None
        # versions between are folds of this runner (no data change): their change feed is empty
        neutral = self._neutral.get(name, ())
        if any(v not in neutral for v in range(since + 1, handoff.before + 1)):
            return None
        return handoff.rows

    def end_cycle(self) -> None:
        """Drop the handoffs: the next cycle's models read what they have not yet consumed from
        the log (what a handoff holds is either consumed by then or to be re-read anyway). Every
        view reads its Delta table again until the next refresh checks the copies."""
        self._handoffs.clear()
        if self._con is not None:
            self.arranged.release()

    def find(self, name: str) -> Table | None:
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

    def progress(self, name: str, keys: list[str]) -> Progress:
        """``name``'s progress ``keys``, with what this runner holds in memory laid over them."""
        return self.deferred.progress(name, Progress.read(self.find(name), keys))

    def data_neutral(self, name: str, *, before: int, version: int) -> None:
        """``name``'s table went from ``before`` to ``version`` without a data change (a fold of its
        files): what the runner keeps for it at ``before`` holds at ``version`` too."""
        recent = self._neutral.setdefault(name, [])
        recent.append(version)
        del recent[:-8]  # a downstream model is at most a few versions behind within a runner
        self.marks.moved(name, before=before, version=version)
        if name in self.arranged.models:
            self.arranged.moved(name, before=before, version=version)

    def close(self) -> None:
        self.folds.close()
        self.arranged.forget()  # the copies die with the connection
        self.deferred.forget()
        self.marks.forget()
        if self._con is not None:
            self._con.close()
            self._con = None

    def create(self, model: Model, schema: pa.Schema) -> Table:
        """Create ``model``'s table and mount it: downstream models read it in this same run."""
        table = self.lake.create_table(
            model.name,
            schema,
            partition_by=model.partition_by,
            description=model.description,
            owner=model.owner,
            source=f"model: {', '.join(model.upstream)}",
        )
        self._tables[model.name] = table
        self.con.refresh()
        return table

    def begin(self, model: Model) -> RefreshContext:
        """The context of one refresh of ``model``: its upstream tables must exist."""
        found = {u: self.find(u) for u in model.upstream}
        missing = [u for u, t in found.items() if t is None]
        if missing:
            raise NotFoundError(
                f"model {model.name}: upstream table(s) {', '.join(missing)} do not exist yet"
            )
        upstream = {u: t for u, t in found.items() if t is not None}
        current = {u: t.version for u, t in upstream.items()}
        target = self.find(model.name)
        needed = {*model.upstream, model.name} if target is not None else set(model.upstream)
        if not needed <= set(self.con.tables):
            self.con.refresh()  # mount tables created since the connection opened
        self.arranged.check()  # copies of tables that moved without this runner are dropped
        keys = [MODEL_DEFINITION, *(model_input(u) for u in model.upstream)]
        progress = self.deferred.progress(model.name, Progress.read(target, keys))
        return RefreshContext(self, model, target, upstream, current, progress)


class Scratch:
    """Arrow tables registered and temp tables created in the connection for one step of a
    refresh; :meth:`release` drops them all."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self._views: list[str] = []
        self._temps: list[str] = []

    def register(self, name: str, table: pa.Table) -> None:
        self.con.register(name, table)
        self._views.append(name)

    def temp(self, name: str, select: str) -> None:
        self._temps.append(name)
        self.con.sql(f"CREATE OR REPLACE TEMP TABLE {name} AS {select}")

    def release(self) -> None:
        try:
            for name in self._temps:
                self.con.sql(f"DROP TABLE IF EXISTS {name}")
        finally:
            for name in self._views:
                with contextlib.suppress(duckdb.Error):
                    self.con.unregister(name)


@dataclass
class RefreshContext:
    """One refresh of one model (see the module docstring)."""

    session: Session
    model: Model
    target: Table | None
    upstream: dict[str, Table]
    #: the upstream versions this refresh consumes (recorded as ``model_input`` txns)
    current: dict[str, int]
    #: the target's progress keys, from the snapshot this refresh started at
    progress: Progress
    #: the upstreams whose changes came from a handoff (see :class:`Handoff`)
    handed_off: list[str] = field(default_factory=list)

    # -- progress ------------------------------------------------------------------------------
    @property
    def inputs(self) -> dict[str, int]:
        return {model_input(u): v for u, v in self.current.items()}

    @property
    def txns(self) -> dict[str, int]:
        """What every commit of this refresh records. Written whole, not just the keys that
        advance: a changed definition's hash, or a recreated upstream's version, may be lower."""
        return {MODEL_DEFINITION: self.model.sql_hash, **self.inputs}

    def since(self, upstream: str) -> int | None:
        """The version of ``upstream`` the target was last refreshed from (None: never)."""
        return self.progress.position(model_input(upstream))

    def changes(self, upstream: str) -> pa.Table:
        """``upstream``'s change-feed rows after the version last consumed, up to the version this
        refresh records: a commit landing meanwhile is left to the next refresh, which records it,
        so no change is applied twice. Raises ShoalError when the feed is unavailable (vacuumed)."""
        since = self.since(upstream)
        assert since is not None
        until = self.current[upstream]
        fed = self.session.handed_off(upstream, since, until)
        if fed is not None:
            self.handed_off.append(upstream)
            return fed
        rows = self.upstream[upstream].changes_since(since)
        if rows.num_rows and "_commit_version" in rows.column_names:
            versions = rows["_commit_version"]
            if pc.max(versions).as_py() > until:
                rows = rows.filter(pc.less_equal(versions, pa.scalar(until, versions.type)))
        return rows

    @property
    def definition_current(self) -> bool:
        """The target exists and was built by this definition of the model."""
        return self.target is not None and self.progress.at({MODEL_DEFINITION: self.model.sql_hash})

    @property
    def inputs_current(self) -> bool:
        """The target was refreshed from exactly the upstream versions there are now."""
        return self.progress.at(self.inputs)

    # -- reading and checking ------------------------------------------------------------------
    @property
    def table(self) -> Table:
        """The target table (every strategy but a rebuild runs only when it exists)."""
        assert self.target is not None
        return self.target

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        return self.session.con.duckdb

    @contextlib.contextmanager
    def scratch(self) -> Iterator[Scratch]:
        scratch = Scratch(self.con)
        try:
            yield scratch
        finally:
            scratch.release()

    def run_sql(self, sql: str) -> pa.Table:
        try:
            return self.session.con.query_arrow(sql)
        except ShoalError as exc:
            raise ModelError(f"model {self.model.name}: {exc}") from exc

    def check_columns(self, schema: pa.Schema) -> None:
        model = self.model
        absent = [c for c in (*model.unique_key, *model.incremental_by) if c not in schema.names]
        if absent:
            raise ModelError(f"model {model.name}: its SQL does not return column(s) {', '.join(absent)}")

    def check_unique(self, rows: pa.Table, what: str = "SQL") -> None:
        """One row per ``unique_key``: a duplicate would otherwise be appended silently, or fail a
        merge with delta-rs's internal message."""
        model = self.model
        dup = duplicate_key(rows.select(list(model.unique_key)), self.con) if rows.num_rows > 1 else None
        if dup is not None:
            *values, n = dup
            shown = ", ".join(f"{c}={v!r}" for c, v in zip(model.unique_key, values, strict=True))
            raise ModelError(f"model {model.name}: its {what} returned {n} rows for one unique_key ({shown})")

    # -- committing ----------------------------------------------------------------------------
    def rebuild(self) -> RefreshResult:
        """Recompute the whole model and overwrite the target (creating it if need be)."""
        model = self.model
        self.session.deferred.drop(model.name)  # held changes are recomputed with the rest
        self.session.marks.drop(model.name)
        sql = model.sql
        if model.restate_from:
            # written in restate order, file and row-group statistics let incremental refreshes
            # (which read from the restate point on) skip the rows before it
            sql = f"SELECT * FROM ({sql}) ORDER BY {ident(model.restate_from)}"
        data = self.run_sql(sql)
        self.check_columns(data.schema)
        self.check_unique(data)
        if self.target is None:
            self.target = self.session.create(model, data.schema)
        version = self.target.overwrite(data, app_transactions=self.txns)
        self.session.hand_off(model.name, None)  # downstream models read the change feed
        if model.name in self.session.arranged.models:
            names = self.target.schema.names
            self.session.arranged.replace(model.name, version, data.select(names))
        return RefreshResult(model.name, "full", rows_written=data.num_rows, version=version)

    def _arrange(self, version: int, rows: pa.Table, stale: pa.Table) -> None:
        """Apply this refresh's commit to the model's in-memory copy, if the runner keeps one."""
        arranged = self.session.arranged
        if self.model.name in arranged.models:
            before = self.progress.table_version
            arranged.apply(
                self.model.name, rows, stale, key=self.model.unique_key, before=before, version=version
            )

    def _hand_off(self, version: int, changes: pa.Table | None) -> None:
        before = self.progress.table_version
        if changes is None or before is None or version != before + 1:
            self.session.hand_off(self.model.name, None)  # downstream models read the change feed
            return
        stamp = pa.repeat(pa.scalar(version, pa.int64()), changes.num_rows)
        self.session.hand_off(
            self.model.name, Handoff(before, version, changes.append_column(COMMIT_VERSION, stamp))
        )

    def unchanged(self) -> RefreshResult:
        """Nothing to do and nothing to record: the target stays at its version."""
        return RefreshResult(self.model.name, "unchanged", version=self.progress.table_version)

    def consumed(self) -> RefreshResult:
        """The upstream changes touch no row of the model: record only that they were consumed.
        With changes of the model held in memory (ADR 0038) the position is held with them:
        committed to the table alone, it would declare them consumed before they are in its rows,
        and they would be lost."""
        before, deferred = self.read_version, self.session.deferred
        if before is not None and deferred.consumed(self.model, table_version=before, txns=self.txns):
            return RefreshResult(self.model.name, "unchanged", version=before, held=True)
        version = self.table.append(pa.table({}), app_transactions=self.txns, read_version=self.read_version)
        empty = pa.schema([*self.table.schema, pa.field(CHANGE_TYPE, pa.string())]).empty_table()
        self._hand_off(version, empty)
        self._arrange(version, self.table.schema.empty_table(), self.table.schema.empty_table())
        self.session.marks.written(self.model, before=self.read_version, version=version, rows=empty)
        return RefreshResult(self.model.name, "unchanged", version=version)

    @property
    def read_version(self) -> int | None:
        """The snapshot this refresh read its progress from: its commit is built on it, so another
        runner's commit of the same model since then (two watchers, two ingest workers refreshing
        in the commit) is a conflict, never a second application of the same changes."""
        return self.progress.table_version

    @property
    def feeds_downstream(self) -> bool:
        """Whether a model of this runner reads this one's commits (then they are handed off)."""
        return self.model.name in self.session.feeding

    def change_rows(
        self, scratch: Scratch, old: str, rows: pa.Table, stale: pa.Table, *, existed: bool
    ) -> pa.Table:
        """The change feed's rows for a commit of ``rows`` (upserts) and deletes of ``stale`` keys,
        given ``old``, a relation holding the current row of every key either names that exists:
        pre-images and deletes from ``old``, post-images and inserts from ``rows``. When no key of
        ``rows`` exists (``existed`` False) and nothing is deleted, every row is an insert."""
        model, target = self.model, self.table
        names = target.schema.names
        schema = pa.schema([*target.schema, pa.field(CHANGE_TYPE, pa.string())])
        if not existed and stale.num_rows == 0:
            kinds = pa.repeat(pa.scalar("insert", pa.string()), rows.num_rows)
            return rows.select(names).cast(target.schema).append_column(CHANGE_TYPE, kinds).cast(schema)
        scratch.register("__shoal_up", rows)
        scratch.register("__shoal_gone", stale)
        cols = ", ".join(f"x.{ident(c)}" for c in names)
        match = " AND ".join(f"x.{ident(c)} IS NOT DISTINCT FROM y.{ident(c)}" for c in model.unique_key)
        sql = " UNION ALL ".join(
            f"SELECT {cols}, '{kind}' AS {CHANGE_TYPE} FROM {x} AS x {join} JOIN {y} AS y ON {match}"
            for kind, x, join, y in (
                ("update_preimage", old, "SEMI", "__shoal_up"),
                ("delete", old, "SEMI", "__shoal_gone"),
                ("update_postimage", "__shoal_up", "SEMI", old),
                ("insert", "__shoal_up", "ANTI", old),
            )
        )
        return self.con.sql(sql).to_arrow_table().cast(schema)

    def write(
        self,
        rows: pa.Table,
        stale: pa.Table,
        *,
        existed: bool,
        touched: int,
        changes: pa.Table | None = None,
    ) -> RefreshResult:
        """Commit changed ``rows`` and deletes of ``stale`` keys with the progress txns: a plain
        append (no file rewrite) when no changed key exists yet and nothing is deleted.

        ``changes`` (:meth:`change_rows`) are handed off to downstream models of this cycle when
        the commit lands directly on the version this refresh started from."""
        target, txns, at = self.table, self.txns, self.read_version
        if rows.num_rows == 0 and stale.num_rows == 0:
            version = target.append(pa.table({}), app_transactions=txns, read_version=at)
        elif not existed and stale.num_rows == 0:
            version = target.append(rows, app_transactions=txns, read_version=at)
        else:
            version = target.merge(
                rows, self.model.unique_key, delete_keys=stale, app_transactions=txns, read_version=at
            )
        self._hand_off(version, changes)
        self._arrange(version, rows, stale)
        self.session.marks.written(self.model, before=at, version=version, rows=rows)
        return RefreshResult(
            self.model.name,
            "incremental",
            touched=touched,
            rows_written=rows.num_rows,
            rows_deleted=stale.num_rows,
            version=version,
        )


def duplicate_key(keys: pa.Table, con: duckdb.DuckDBPyConnection) -> tuple[Any, ...] | None:
    """The values and row count of one key that occurs more than once in ``keys``, else None.
    A hash aggregation in Arrow: a refresh's few thousand rows cost about a fifth of a DuckDB
    statement over them (docs/benchmarks.md, issue 18, sixth session). NULLs are one value, as in
    SQL's GROUP BY."""
    try:
        counts = keys.group_by(keys.column_names, use_threads=False).aggregate([([], "count_all")])
    except (pa.ArrowNotImplementedError, pa.ArrowTypeError):  # a key type Arrow cannot hash
        con.register("__shoal_keys", keys)
        try:
            return con.sql(
                "SELECT *, count(*) FROM __shoal_keys GROUP BY ALL HAVING count(*) > 1 LIMIT 1"
            ).fetchone()
        finally:
            con.unregister("__shoal_keys")
    if counts.num_rows == keys.num_rows:
        return None
    first = pc.index(pc.greater(counts["count_all"], 1), True).as_py()
    many = counts.slice(first, 1).to_pylist()[0]  # (a filter would not take string views)
    return tuple(many[c] for c in (*keys.column_names, "count_all"))

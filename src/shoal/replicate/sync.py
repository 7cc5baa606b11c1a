"""The sync loop: snapshot each table in key chunks, then apply committed source transactions.

Exactly once (ADR 0017): every Delta commit carries, as ``txn`` actions, where the table stands in
the source (``shoal.lake.progress`` keys):

* while snapshotting: ``snapshot-from`` (the source position change capture will start from, taken
  before the first chunk is read) and ``snapshot`` (the last copied key, for one integer key);
* afterwards: ``binlog``/``lsn`` (the end of the last applied source transaction).

A restart reads them and goes on: chunks after the last key, transactions after the position.
Replaying changes from ``snapshot-from`` over rows read later converges, because every change
carries the full row and is applied by key (an upsert or a delete is idempotent).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

import pyarrow as pa

from shoal.config import DatabaseSyncSettings
from shoal.lake import Lake, Progress, Table, progress
from shoal.lake.mergeonread import COLUMNS as LAYOUT_COLUMNS
from shoal.lake.mergeonread import MergeOnRead, base_rows
from shoal.lake.morcompact import Compaction
from shoal.query.federation import Endpoint
from shoal.replicate.apply import apply_changes
from shoal.replicate.compactor import Compactor
from shoal.replicate.cursor import cursor_round, full_refresh
from shoal.replicate.errors import LayoutMismatch, SyncError
from shoal.replicate.model import Change, Column, SourceTable, SyncReport, TableReport, Transaction
from shoal.replicate.source import Source
from shoal.retry import RetryPolicy, retry

log = logging.getLogger("shoal.replicate")

#: the source type of a replica column whose source column was dropped
DROPPED_UPSTREAM = "dropped upstream"

#: (table, rows done, rows expected or None, phase)
ProgressCallback = Callable[[str, int, int | None, str], None]


def make_source(endpoint: Endpoint, settings: DatabaseSyncSettings) -> Source:
    if endpoint.kind == "mysql":
        from shoal.replicate.mysql import MySQLSource

        return MySQLSource(endpoint, server_id=settings.server_id)
    if endpoint.kind == "sqlite":
        from shoal.replicate.sqlite import SQLiteSource

        return SQLiteSource(endpoint)
    from shoal.replicate.postgres import PostgresSource

    return PostgresSource(endpoint, slot=settings.slot, publication=settings.publication)


class Syncer:
    """Copies the tables of one declared database into ``namespace`` of the lake."""

    def __init__(
        self,
        lake: Lake,
        endpoint: Endpoint,
        settings: DatabaseSyncSettings | None = None,
        *,
        source: Source | None = None,
        on_progress: ProgressCallback | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.lake = lake
        self.endpoint = endpoint
        self.settings = settings or endpoint.settings.sync
        self.namespace = self.settings.namespace or f"{endpoint.name}_replica"
        self.source = source or make_source(endpoint, self.settings)
        self.on_progress = on_progress
        self.policy = policy or RetryPolicy(attempts=10, base_s=0.5, max_delay_s=5.0)
        self.report = SyncReport(endpoint.name)
        self._targets: dict[str, Table] = {}
        self._described: dict[str, SourceTable] = {}
        #: seconds between position-only commits of a table without changes (see _advance_quiet)
        self.quiet_advance_s = 10.0
        self._advanced_at: dict[str, float] = {}
        #: per table, the position after which the replica equals the source (inserts are new keys)
        self._converged_at: dict[str, int] = {}
        #: every transaction up to here was read and applied: the next round reads from here
        self._read_at: int | None = None
        #: set by run()'s caller to stop: also cuts a retry's backoff short (SIGTERM from `shoal up`)
        self._stop = threading.Event()

    # -- helpers ---------------------------------------------------------------------------------
    def lake_name(self, table: str) -> str:
        return f"{self.namespace}.{table.lower()}"

    @property
    def merge_on_read(self) -> bool:
        return self.settings.mode == "cdc" and self.settings.layout == "merge-on-read"

    def target(self, st: SourceTable) -> Table:
        if st.name not in self._targets:
            wanted = MergeOnRead(st.key) if self.merge_on_read else None
            schema = st.schema
            if wanted is not None:
                schema = pa.schema([*schema, *wanted.fields()])
            table = self.lake.create_table(
                self.lake_name(st.name),
                schema,
                description=f"replica of {self.endpoint.name}.{st.name} ({self.endpoint.kind})",
                source=f"{self.endpoint.kind}:{self.endpoint.name}",
            )
            self._check_layout(table, wanted)
            self._targets[st.name] = table
        return self._targets[st.name]

    def _check_layout(self, table: Table, wanted: MergeOnRead | None) -> None:
        """The replica's layout is the declared one: a copy-on-write replica becomes merge-on-read
        by one commit adding the layout's columns (its rows are the base); the reverse is refused."""
        have = table.layout()
        if have == wanted:
            return
        if have is None and wanted is not None:
            table.add_columns(wanted.fields())
            if table.layout() == wanted:
                return
        raise LayoutMismatch(
            f"sync {self.endpoint.name}: {table.name} is "
            + (f"merge-on-read by {list(have.keys)}" if have else "copy-on-write")
            + f", not {self.settings.layout}"
            + (f" by {list(wanted.keys)}" if wanted else "")
            + ": drop the replica to sync it again with the declared layout"
        )

    def layout(self, st: SourceTable) -> MergeOnRead | None:
        return MergeOnRead(st.key) if self.merge_on_read else None

    def tell(self, table: str, done: int, total: int | None, phase: str) -> None:
        if self.on_progress is not None:
            self.on_progress(table, done, total, phase)

    def _retry(self, fn: Callable[[], Any], what: str) -> Any:
        return retry(fn, f"sync {self.endpoint.name}: {what}", self.policy, stop=self._stop)

    def tables(self, names: Sequence[str] = (), *, need_key: bool = True) -> list[SourceTable]:
        wanted = (
            list(names) or list(self.settings.tables) or self._retry(self.source.list_tables, "list tables")
        )
        return list(self._retry(lambda: self.source.describe(wanted, need_key=need_key), "describe tables"))

    # -- the snapshot ------------------------------------------------------------------------------
    def snapshot(self, st: SourceTable) -> None:
        """Copy ``st`` in key chunks unless its change position is already in the lake."""
        target = self.target(st)
        pos_key = self.source.position_key(st.name)
        chunk_key = progress.snapshot_chunk(self.endpoint.name, st.name)
        start_key = progress.snapshot_start(self.endpoint.name, st.name)
        have = Progress.read(target, [pos_key, chunk_key, start_key])
        report = self.report.tables.setdefault(st.name, TableReport(st.name, target.name))
        if have.position(pos_key) is not None:
            report.position = have.position(pos_key)
            return
        start = have.position(start_key)
        if start is None:
            start = int(self._retry(self.source.start_position, "read the current position"))
        after = have.position(chunk_key) if st.int_key else None
        total = self._retry(lambda: self.source.count(st), f"count {st.name}")
        done = target.count() if after is not None else 0
        self.tell(st.name, done, total, "snapshot")
        for data in self._snapshot_chunks(st, None if after is None else [after]):
            if st.int_key:
                last = int(data.column(st.key[0])[-1].as_py())
                target.append(data, app_transactions={start_key: start, chunk_key: last})
            else:
                # Keys with no integer form cannot be a txn position: chunks are merged by key,
                # and a restart copies the table again (idempotently).
                rows = base_rows(data, target.schema) if self.merge_on_read else data
                target.merge(rows, list(st.key), app_transactions={start_key: start})
            done += data.num_rows
            report.snapshot_rows += data.num_rows
            self.tell(st.name, done, total, "snapshot")
        # where the replica has converged once the changes from ``start`` are replayed over it
        end = int(self._retry(self.source.start_position, "read the current position"))
        end_key = progress.snapshot_end(self.endpoint.name, st.name)
        handover = {start_key: start, pos_key: start, end_key: end, **self.source.progress_at(st.name, start)}
        target.append(st.to_arrow([]), app_transactions=handover)
        self._converged_at[st.name] = end
        report.position = start

    def _snapshot_chunks(self, st: SourceTable, after: Sequence[Any] | None) -> Iterator[pa.Table]:
        """Snapshot chunks as Arrow: a source's columnar reader when it has one (MySQL: DuckDB's
        scanner), else its rows converted here."""
        arrow_chunks = getattr(self.source, "arrow_chunks", None)
        if arrow_chunks is not None:
            yield from arrow_chunks(st, after, self.settings.chunk_rows)
            return
        for rows in self.source.chunks(st, after, self.settings.chunk_rows):
            yield st.to_arrow(rows)

    # -- change capture ---------------------------------------------------------------------------
    def catch_up(self, tables: Sequence[SourceTable], max_changes: int = 50_000) -> int:
        """Apply the transactions committed since the lake's positions; returns rows applied."""
        keys = {st.name: self.source.position_key(st.name) for st in tables}
        positions: dict[str, int] = {}
        for st in tables:
            end_key = progress.snapshot_end(self.endpoint.name, st.name)
            more = self.source.progress_keys(st.name)
            have = Progress.read(self.target(st), [keys[st.name], end_key, *more])
            pos = have.position(keys[st.name])
            if pos is None:
                raise SyncError(f"sync {self.endpoint.name}: table {st.name} has no snapshot yet")
            positions[st.name] = self.source.resume_position(
                st.name, pos, {k: have.position(k) for k in more}
            )
            converged_at = have.position(end_key)
            if positions[st.name] != pos:
                self._read_at = None  # another server's coordinates: start from the translated ones
                # converged in the old coordinates: still so here; else wait for the current position
                converged_at = (
                    positions[st.name] if converged_at is not None and pos >= converged_at else None
                )
                self._converged_at.pop(st.name, None)
            if st.name not in self._converged_at:
                # a replica from before snapshot-end was recorded: converged by now at the latest
                self._converged_at[st.name] = converged_at or int(
                    self._retry(self.source.start_position, "read the current position")
                )
        # the lake's positions after a failed round (re-read above); else where the last one ended
        since = min(positions.values())
        if self._read_at is not None and self._read_at > since:
            since = self._read_at
        self._read_at = None  # until this round has committed
        pending: dict[str, list[Change]] = {st.name: [] for st in tables}
        first: dict[str, int] = {}
        last: dict[str, int] = {}
        by_name = {st.name: st for st in tables}
        last_txn: dict[str, Transaction] = {}
        for txn in self.source.changes(since, tables, max_changes):
            for change in txn.changes:
                if change.table in by_name and txn.position > positions[change.table]:
                    pending[change.table].append(change)
                    first.setdefault(change.table, txn.position)
                    last[change.table] = txn.position
                    last_txn[change.table] = txn
        end = max(since, self.source.read_upto or since)
        applied = 0
        log.debug(
            "round from %s: %s changes pending",
            since,
            {k: len(v) for k, v in pending.items()},
            extra={"database": self.endpoint.name},
        )
        for name, changes in pending.items():
            if not changes:
                continue
            st = self._refresh_columns(by_name[name], changes)
            by_name[name] = st
            converged = first[name] > self._converged_at[name]
            recorded = {keys[name]: last[name], **self.source.progress_at(name, last[name], last_txn[name])}
            up, down = apply_changes(
                self.target(st), st, changes, recorded, converged=converged, layout=self.layout(st)
            )
            report = self.report.tables.setdefault(name, TableReport(name, self.lake_name(name)))
            report.upserted += up
            report.deleted += down
            report.position = last[name]
            positions[name] = last[name]
            applied += len(changes)
        self._advance_quiet(by_name, pending, positions, keys, end)
        self.source.acknowledge(min(positions.values()))
        self._read_at = end
        return applied

    def _advance_quiet(
        self,
        tables: dict[str, SourceTable],
        pending: dict[str, list[Change]],
        positions: dict[str, int],
        keys: dict[str, str],
        end: int,
    ) -> None:
        """Move a table without changes up to ``end`` now and then (a commit without rows).

        Every transaction up to ``end`` was read and none touched it, so its copy is current there.
        Without this a quiet table would hold every round's start (the least position) back, and
        the source would keep what the lake already has (a PostgreSQL slot's WAL).
        """
        now = time.monotonic()
        for name, st in tables.items():
            if pending[name] or positions[name] >= end:
                continue
            if now - self._advanced_at.get(name, 0.0) < self.quiet_advance_s:
                continue
            recorded = {keys[name]: end, **self.source.progress_at(name, end)}
            self.target(st).append(st.to_arrow([]), app_transactions=recorded)
            positions[name] = end
            self._advanced_at[name] = now

    def _refresh_columns(self, st: SourceTable, changes: Sequence[Change]) -> SourceTable:
        """An upstream ADD COLUMN: rows name a column the table shape lacks; describe it again."""
        known = set(st.column_names)
        if all(set(c.row) <= known for c in changes):
            return st
        fresh: SourceTable = self._keep_dropped(self.source.describe([st.name])[0])
        self._described[st.name] = fresh
        return fresh

    def _keep_dropped(self, st: SourceTable) -> SourceTable:
        """An upstream DROP COLUMN: the replica keeps the column, NULL in every row written from
        then on (dropping it in Delta needs column mapping, which DuckDB's reader lacks; ADR 0035).
        Carrying it here makes a merge set it NULL, as a row image without it does."""
        have = set(st.column_names)
        gone = [f for f in self.target(st).schema if f.name not in have and f.name not in LAYOUT_COLUMNS]
        if not gone:
            return st
        kept = tuple(Column(f.name, f.type, DROPPED_UPSTREAM) for f in gone)
        return SourceTable(st.name, st.columns + kept, st.key)

    def run(
        self,
        names: Sequence[str] = (),
        *,
        follow: bool = False,
        stop: threading.Event | None = None,
        poll_s: float = 0.2,
    ) -> SyncReport:
        """Bring the lake up to date (snapshot, changes); with ``follow`` keep going until ``stop``."""
        stop = self._stop = stop or threading.Event()
        mode = self.settings.mode
        compactor: Compactor | None = None
        try:
            self._described = {st.name: st for st in self.tables(names, need_key=mode != "full")}
            if mode == "cdc":
                for st in self._described.values():
                    # idempotent: a retry reads the lake's progress again and goes on from there
                    self._retry(partial(self.snapshot, st), f"snapshot {st.name}")
                self._described = {n: self._keep_dropped(st) for n, st in self._described.items()}
            if follow and self.merge_on_read and self.settings.compact_every_s > 0:
                compactor = Compactor(
                    self.lake,
                    [self.lake_name(n) for n in self._described],
                    self.settings.compact_every_s,
                    self.endpoint.name,
                )
                compactor.start()
            while True:
                if mode == "cdc":
                    applied = self._retry(
                        lambda: self.catch_up(list(self._described.values())), "apply changes"
                    )
                elif mode == "cursor":
                    check = self.report.rounds % self.settings.delete_check_every == 0
                    applied = sum(
                        self._retry(partial(cursor_round, self, st, check_deletes=check), f"cursor {st.name}")
                        for st in self._described.values()
                    )
                else:
                    for st in self._described.values():
                        self._retry(partial(full_refresh, self, st), f"refresh {st.name}")
                    applied = 0
                self.report.rounds += 1
                for st in self._described.values():
                    rep = self.report.tables.setdefault(
                        st.name, TableReport(st.name, self.lake_name(st.name))
                    )
                    self.tell(st.name, rep.upserted + rep.deleted, None, "changes")
                if not follow and (applied == 0 or mode != "cdc"):
                    break
                if applied == 0 and stop.wait(poll_s):
                    break
                if stop.is_set():
                    break
        finally:
            if compactor is not None:
                compactor.close()
            self.source.close()
        return self.report

    def compact(self, names: Sequence[str] = ()) -> list[Compaction]:
        """Fold the change tails of this database's merge-on-read replicas into their bases now."""
        wanted = list(names) or list(self.settings.tables)
        if not wanted:
            try:
                wanted = self._retry(self.source.list_tables, "list tables")
            finally:
                self.source.close()
        tables = [t for t in (self.lake.find(self.lake_name(n)) for n in wanted) if t is not None]
        return Compactor(self.lake, [t.name for t in tables], 0, self.endpoint.name).run_once()

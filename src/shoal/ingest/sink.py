"""Exactly-once lake commits: rows and their Kafka offsets in one Delta commit.

Commit order of one flush (a crash can stop it between any two steps):

1. dead-letter rows → the dead-letter table, with ``txn`` versions (= next offset) for the partitions
   that had dead records;
2. good rows → the data table, with ``txn`` versions for every partition of the flush;
3. offsets → Kafka, asynchronously (lag tools only; never read back).

On (re)assignment a partition starts at the data table's ``txn`` version: everything below it is
committed to *both* tables, because step 1 always precedes step 2. Whatever is replayed after a crash
between 1 and 2 is filtered at commit time: before each commit the table's current ``txn`` versions
are re-read and rows below them are dropped, so the dead-letter table never gets a record twice and
the data table never gets a row twice. The same filter protects against a zombie worker that still
holds a batch of partitions now owned by another worker. The remaining window is the time between
that re-read and the moment delta-rs loads the snapshot it commits against (milliseconds): a commit
by another worker inside it is not detected. A commit after that snapshot *is* detected, because
delta-rs rejects a commit whose ``txn`` appId was written concurrently; the flush is then retried
and re-filtered.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from shoal.errors import NotFoundError
from shoal.ingest.buffer import FlushUnit, TopicPartition, keep_mask
from shoal.ingest.dead_letter import DEAD_LETTER_SCHEMA, dead_filter_below, dead_letter_table
from shoal.ingest.errors import PipelineStopped
from shoal.ingest.jsonlog import get_logger
from shoal.ingest.metrics import IngestMetrics
from shoal.ingest.spec import PipelineSpec
from shoal.lake import Progress, SchemaMismatch, progress
from shoal.lake.table import check_compatible
from shoal.retry import RetryPolicy, retry

if TYPE_CHECKING:
    from shoal.lake import Lake, Table


@dataclass(frozen=True)
class Positions:
    """Where a partition's progress stands in each table (None: never written)."""

    data: int | None
    dead: int | None


@dataclass(frozen=True)
class CommitResult:
    rows: int
    dead: int
    skipped: int
    data_version: int | None
    offsets: Mapping[TopicPartition, int]
    #: the data table's version the commit was built on, and the rows it appended (what models
    #: refreshed in the commit take from memory, ADR 0038)
    read_version: int | None = None
    data: pa.Table | None = None


class LakeSink:
    """Commits flush units of one pipeline to its data table and dead-letter table."""

    def __init__(
        self,
        lake: Lake,
        spec: PipelineSpec,
        metrics: IngestMetrics,
        *,
        max_attempts: int = 30,
        max_backoff_s: float = 10.0,
    ) -> None:
        self.lake = lake
        self.spec = spec
        self.metrics = metrics
        self.max_attempts = max_attempts
        self.max_backoff_s = max_backoff_s
        # waits are not cut short by the worker's stop event: the shutdown flush runs after it is
        # set and must still commit
        self._policy = RetryPolicy(attempts=max_attempts, base_s=0.2, max_delay_s=max_backoff_s)
        self._log = get_logger()
        self._table: Table | None = None
        self._dlq: Table | None = None
        self._commits = 0
        self._compactor: threading.Thread | None = None
        #: tables committed to since their last quiet checkpoint (the committer thread adds, the
        #: loop takes them: under the lock)
        self._unchecked: set[str] = set()
        self._unchecked_lock = threading.Lock()
        self._checkpointer: threading.Thread | None = None

    # -- tables ------------------------------------------------------------------------------------
    def _data_table(self, create_with: pa.Schema | None) -> Table | None:
        if self._table is None:
            if self.lake.exists(self.spec.table):
                self._table = self.lake.table(self.spec.table)
            elif create_with is not None:
                self._table = self.lake.create_table(
                    self.spec.table,
                    create_with,
                    partition_by=[p.column for p in self.spec.partition_by],
                    # rows get exactly these values (transform.py): queries prune partitions by
                    # them and read derived columns instead of truncating their sources. A table
                    # that exists already gets a new derived column by schema merge (NULL in its
                    # older rows) and no declaration: queries then truncate as written.
                    partition_sources=self.spec.partition_sources,
                    derived_columns=self.spec.derived_columns,
                    description=self.spec.description or f"Kafka {', '.join(self.spec.subscription)}",
                    source=f"kafka:{self.spec.name}",
                    exist_ok=True,
                )
        return self._table

    def _dlq_table(self, create: bool) -> Table | None:
        if self._dlq is None:
            name = self.spec.dlq_table
            if self.lake.exists(name):
                self._dlq = self.lake.table(name)
            elif create:
                self._dlq = self.lake.create_table(
                    name,
                    DEAD_LETTER_SCHEMA,
                    description=f"records pipeline {self.spec.name} could not ingest into {self.spec.table}",
                    source=f"kafka:{self.spec.name}",
                    exist_ok=True,
                )
        return self._dlq

    def _progress(
        self, table: Table | None, tps: set[TopicPartition]
    ) -> tuple[Progress, dict[TopicPartition, str]]:
        """The committed next offset of each of ``tps`` in ``table``, read from one snapshot."""
        keys = {tp: progress.kafka_offset(self.spec.name, *tp) for tp in tps}
        return Progress.read(table, keys.values()), keys

    # -- resume ------------------------------------------------------------------------------------
    def positions(self, tps: list[TopicPartition]) -> dict[TopicPartition, Positions]:
        """Each partition's committed progress, read from the tables' ``txn`` actions."""
        return retry(
            lambda: self._positions(tps),
            f"pipeline {self.spec.name}: read offsets",
            self._policy,
        )

    def _positions(self, tps: list[TopicPartition]) -> dict[TopicPartition, Positions]:
        try:
            return self._read_positions(tps)
        except NotFoundError:
            self._table = self._dlq = None  # dropped under us: treat as new
        try:
            return self._read_positions(tps)
        except NotFoundError:
            return {tp: Positions(None, None) for tp in tps}

    def _read_positions(self, tps: list[TopicPartition]) -> dict[TopicPartition, Positions]:
        wanted = set(tps)
        data, keys = self._progress(self._data_table(None), wanted)
        dead, _ = self._progress(self._dlq_table(False), wanted)
        return {tp: Positions(data.position(keys[tp]), dead.position(keys[tp])) for tp in tps}

    # -- commit ------------------------------------------------------------------------------------
    def commit(self, unit: FlushUnit) -> CommitResult:
        """Commit one flush unit exactly once (dead letters first, then rows); retries Transient errors."""
        if unit.data is not None:
            table = self._data_table(unit.data.schema)
            assert table is not None
            try:
                check_compatible(
                    f"pipeline {self.spec.name}: table {self.spec.table}", table.schema, unit.data.schema
                )
            except SchemaMismatch as exc:
                raise self._stopped(exc) from exc
        try:
            return retry(
                lambda: self._commit_once(unit),
                f"pipeline {self.spec.name}: commit",
                self._policy,
                on_retry=lambda *_: self.metrics.commit_retries.labels(self.spec.name).inc(),
            )
        except SchemaMismatch as exc:
            raise self._stopped(exc) from exc

    def _stopped(self, exc: SchemaMismatch) -> PipelineStopped:
        return PipelineStopped(
            f"{exc}; nothing committed, offsets untouched", pipeline=self.spec.name, table=self.spec.table
        )

    def _commit_once(self, unit: FlushUnit) -> CommitResult:
        name = self.spec.name
        dead_n = 0
        skipped = 0
        if unit.dead:
            dlq = self._dlq_table(True)
            assert dlq is not None
            done, keys = self._progress(dlq, {(d.topic, d.partition) for d in unit.dead})
            below = {tp: v for tp, key in keys.items() if (v := done.position(key)) is not None}
            dead = dead_filter_below(unit.dead, below)
            skipped += len(unit.dead) - len(dead)
            txn = done.advancing({key: unit.next_offsets[tp] for tp, key in keys.items()})
            if txn:
                t0 = time.perf_counter()
                # built on the snapshot the progress was read from: a commit of the same offsets
                # by another worker since then (a rebalance) is a conflict, re-read and re-filtered
                dlq.append(
                    dead_letter_table(dead, name), app_transactions=txn, read_version=done.table_version
                )
                self.metrics.write_s.labels(name, dlq.name).observe(time.perf_counter() - t0)
                self.metrics.commits.labels(name, dlq.name).inc()
                dead_n = len(dead)
                self._committed_to(dlq.name)

        table = self._data_table(unit.data.schema if unit.data is not None else None)
        rows = 0
        version = read_version = None
        committed = None
        if table is not None:
            done, keys = self._progress(table, set(unit.next_offsets))
            txn = done.advancing({keys[tp]: nxt for tp, nxt in unit.next_offsets.items()})
            data: pa.Table = unit.data if unit.data is not None else table.schema.empty_table()
            stale_keys = done.stale({keys[tp]: first for tp, first in unit.first_offsets.items()})
            stale: dict[TopicPartition, int | None] = {
                tp: stale_keys[key] for tp, key in keys.items() if key in stale_keys
            }
            if stale and data.num_rows:
                before = data.num_rows
                data = data.filter(keep_mask(data, stale))
                skipped += before - data.num_rows
            if txn:
                t0 = time.perf_counter()
                read_version = done.table_version
                version = table.append(data, app_transactions=txn, read_version=read_version)
                committed = data
                self.metrics.write_s.labels(name, table.name).observe(time.perf_counter() - t0)
                self.metrics.commits.labels(name, table.name).inc()
                rows = data.num_rows
                self._commits += 1
                self._committed_to(table.name)
                self._maybe_compact()
            else:
                skipped += data.num_rows
        return CommitResult(
            rows=rows,
            dead=dead_n,
            skipped=skipped,
            data_version=version,
            offsets=unit.next_offsets,
            read_version=read_version,
            data=committed,
        )

    # -- compaction --------------------------------------------------------------------------------
    def _maybe_compact(self) -> None:
        every = self.spec.compaction.every_commits
        if not every or self._commits % every:
            return
        if self._compactor is not None and self._compactor.is_alive():
            return  # the previous one is still running: never queue up, never block ingestion
        self._compactor = threading.Thread(
            target=self._compact, name=f"compact-{self.spec.table}", daemon=True
        )
        self._compactor.start()

    def _compact(self) -> None:
        # A separate Table handle: the ingest thread's handle is not shared across threads.
        # delta-rs optimize only removes files of the snapshot it read, so concurrent appends are
        # kept; if it loses a race it raises CommitConflict and the next round tries again.
        t0 = time.perf_counter()
        try:
            result: dict[str, Any] = self.lake.table(self.spec.table).compact(
                self.spec.compaction.target_file_mb
            )
            self._log.info(
                "compacted",
                extra={
                    "pipeline": self.spec.name,
                    "table": self.spec.table,
                    "files_added": result.get("numFilesAdded"),
                    "files_removed": result.get("numFilesRemoved"),
                    "seconds": round(time.perf_counter() - t0, 3),
                },
            )
        except Exception as exc:
            self._log.warning("compaction failed", extra={"pipeline": self.spec.name, "detail": str(exc)})

    # -- a checkpoint when the tables go quiet (ADR 0057) -------------------------------------------
    def _committed_to(self, table: str) -> None:
        with self._unchecked_lock:
            self._unchecked.add(table)

    def checkpoint_quiet(self, *, wait: bool = False) -> None:
        """Checkpoint the latest version of each table committed to since the last call, on a
        thread of its own (``wait``: here, and after the one running). The worker calls it once its
        commits have paused: readers of a quiet table then replay one checkpoint, not the up to
        ``CHECKPOINT_INTERVAL - 1`` commits after the last one. Data-neutral: never raises."""
        running = self._checkpointer
        if running is not None and running.is_alive():
            if not wait:
                return  # the one running takes what is due at its next call
            running.join()
        with self._unchecked_lock:
            names = sorted(self._unchecked)
            self._unchecked.clear()
        if not names:
            return
        if wait:
            self._checkpoint(names)
            return
        self._checkpointer = threading.Thread(
            target=self._checkpoint, args=(names,), name=f"checkpoint-{self.spec.name}", daemon=True
        )
        self._checkpointer.start()

    def _checkpoint(self, names: list[str]) -> None:
        for name in names:
            t0 = time.perf_counter()
            try:
                # a handle of its own, as compaction's: the committer's is not shared across threads
                version = self.lake.table(name).checkpoint_if_behind()
            except Exception as exc:  # a reader replays a few more commits: nothing is lost
                self._log.warning(
                    "checkpoint failed", extra={"pipeline": self.spec.name, "table": name, "detail": str(exc)}
                )
                continue
            if version is not None:
                self._log.info(
                    "checkpointed",
                    extra={
                        "pipeline": self.spec.name,
                        "table": name,
                        "version": version,
                        "seconds": round(time.perf_counter() - t0, 3),
                    },
                )

    def wait_background(self, timeout: float | None = None) -> None:
        """Let a compaction and a checkpoint in progress end (each up to ``timeout``)."""
        for thread in (self._compactor, self._checkpointer):
            if thread is not None:
                thread.join(timeout)

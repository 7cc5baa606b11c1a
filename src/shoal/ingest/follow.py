"""Models refreshed in the ingest commit: the pipeline option ``refresh:`` (ADR 0038).

A watcher (``shoal refresh --watch``) finds a new commit of the raw table by polling, then reads
its rows back from the Delta change feed. A worker that declares ``refresh: [models...]`` runs
those models itself, in a thread of its own, right after each commit of its table, and hands them
the rows it has just committed (:meth:`ModelRunner.offer_appended`): no polling delay and no
read-back. Consuming goes on while the models refresh; commits that land meanwhile are refreshed
together in the next cycle.

Nothing of exactly-once changes: each model still commits its own table with the source
versions it consumed (ADR 0004, 0005), built on the snapshot it read them from, so a second
runner of the same models (another worker of the pipeline, or a watcher) conflicts instead of
applying a change twice, and a crash between the raw commit and the models' leaves them behind
the raw table, to catch up from the change feed at the next cycle of whoever refreshes them.
A failed refresh never stops ingestion: it is logged, counted
(``shoal_ingest_refresh_errors_total``) and retried after the next commit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from logging import Logger

import pyarrow as pa

from shoal.errors import ConfigError, ShoalError, is_transient
from shoal.ingest.metrics import IngestMetrics
from shoal.lake import Lake
from shoal.models import Model, ModelRunner
from shoal.models.model import select_models


def models_to_refresh(table: str, declared: Sequence[str], models: Sequence[Model]) -> list[Model]:
    """The models a pipeline writing ``table`` refreshes for ``refresh: declared`` (with the state
    models they read); one ConfigError when a name is unknown or none of them reads the table."""
    try:
        chosen = select_models(models, declared)
    except ShoalError as exc:
        raise ConfigError(f"pipeline refresh: {exc}") from exc
    if not any(table in m.upstream for m in chosen):
        raise ConfigError(
            f"pipeline refresh: none of {', '.join(declared)} reads {table}; list the models that "
            "read the pipeline's table (and those downstream of them)"
        )
    return chosen


@dataclass(frozen=True)
class _Commits:
    """Consecutive commits of this worker not refreshed yet: ``before`` → ``version``."""

    before: int
    version: int
    parts: tuple[pa.Table, ...]


class CommitFollower:
    """Refreshes ``models`` after each commit of ``table`` (see the module docstring)."""

    def __init__(
        self,
        lake: Lake,
        models: Sequence[Model],
        *,
        pipeline: str,
        table: str,
        metrics: IngestMetrics,
        log: Logger,
    ) -> None:
        self._lake = lake
        # it runs continuously: models with commit_every_s are held in memory between commits
        self._runner = ModelRunner(lake, models, hold=True)
        self._pipeline = pipeline
        self._table = table
        self._metrics = metrics
        self._log = log
        self._cv = threading.Condition()
        self._pending: _Commits | None = None
        # a first cycle at start: the models may be behind the table (a crash between its commit
        # and theirs), and a worker that finds nothing new to consume would not commit again
        self._due = True
        self._closing = False
        self.cycles = 0
        self.failures = 0
        self._thread = threading.Thread(target=self._run, name=f"refresh {pipeline}", daemon=True)
        self._thread.start()

    def committed(self, before: int | None, version: int, rows: pa.Table) -> None:
        """This worker appended ``rows`` to the table at ``version``, built on ``before``."""
        with self._cv:
            p = self._pending
            if p is not None and p.version == before:
                self._pending = _Commits(p.before, version, (*p.parts, rows))
            elif p is None and before is not None and version == before + 1:
                self._pending = _Commits(before, version, (rows,))
            else:
                # not consecutive (another writer committed in between): the change feed, not memory
                self._pending = None
            self._due = True
            self._cv.notify()

    def close(self, timeout_s: float = 300.0) -> None:
        """Refresh what was committed last, then stop."""
        with self._cv:
            self._closing = True
            self._cv.notify()
        self._thread.join(timeout_s)
        if not self._thread.is_alive():
            self._runner.close()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._due and not self._closing:
                    self._cv.wait()
                if not self._due:
                    return
                commits, self._pending, self._due = self._pending, None, False
            self._cycle(commits)

    def _cycle(self, commits: _Commits | None) -> None:
        if not self._lake.exists(self._table):
            return  # nothing committed yet
        if commits is not None:
            rows = pa.concat_tables(commits.parts, promote_options="permissive")
            self._runner.offer_appended(self._table, commits.before, commits.version, rows)
        t0 = time.perf_counter()
        try:
            self._runner.refresh()
        except ShoalError as exc:
            # the raw rows are committed; the models catch up at the next cycle
            self.failures += 1
            self._metrics.refresh_errors.labels(self._pipeline).inc()
            self._log.warning(
                "refresh in the commit failed; retried after the next commit",
                extra={
                    "pipeline": self._pipeline,
                    "error": str(exc).splitlines()[0],
                    "transient": is_transient(exc),
                },
            )
            return
        self.cycles += 1
        self._metrics.refresh_s.labels(self._pipeline).observe(time.perf_counter() - t0)

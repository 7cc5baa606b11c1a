"""A watcher folds the small files its own commits leave in its models' tables.

A watcher commits each model it changed once a cycle, about once a second at 20k events/s, and
an append-only model (``billing.charges_hourly``) gains a file each time: ~2,900 an hour before
``shoal maintain compact`` runs. delta-rs's commit cost grows with the live files (0.1 ms per file
per commit), and the watcher's reads open them, so the cycle slowed through every hour (docs/
benchmarks.md, issue 18; ADR 0053). A compaction by another process would not do: it is a commit
the watcher did not make, which drops what it holds in memory for the table (its restate marks,
its copies), and its merges could conflict with it.

So the runner folds them itself (:mod:`shoal.lake.smallfiles`): every ``FOLD_EVERY`` commits of
a model it picks, in the runner's thread, up to ``MAX_FILES`` small files of a partition; a
thread of its own reads them and writes them again as one file, in the model's restate order,
while the cycles go on; the next cycle commits the fold first, before it reads anything, and
tells what it keeps in memory that the table moved without a data change. A fold that lost its
files (another compaction, a merge that rewrote one) is dropped, never committed twice. Models
whose changes are held in memory (``commit_every_s``) are left out: their commit is built on the
version their copy was loaded at. Only a runner that refreshes continuously folds (``watch``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from shoal.errors import ShoalError
from shoal.lake import Table, smallfiles
from shoal.models.model import Model

log = logging.getLogger("shoal.models")

#: commits of a model between two looks at its small files
FOLD_EVERY = 16
#: a partition is folded once it holds this many small files
MIN_FILES = 8
#: the most files one fold reads: its memory is bounded by them (at 20k events/s, 32 cycles'
#: charges rows are ~0.8M rows in Arrow while the fold runs; estimated, not measured)
MAX_FILES = 32
#: files from this size up are not small
SMALL_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Folded:
    """A fold committed: ``model``'s table went from ``version - 1`` to ``version`` with no data
    change (``files`` folded into one of ``rows`` rows)."""

    model: str
    version: int
    files: int
    rows: int
    #: the commit's wall time (the rewrite ran apart, in its thread)
    seconds: float


class Folds:
    """The folds of one runner's session (see the module docstring)."""

    def __init__(self, find: Callable[[str], Table | None]) -> None:
        self._find = find
        #: fold at all: set while the runner refreshes continuously (watch)
        self.enabled = False
        self._commits: dict[str, int] = {}
        self._running: dict[str, Future[smallfiles.Rewritten | None]] = {}
        self._pool: ThreadPoolExecutor | None = None

    def committed(self, model: Model, *, held: bool) -> None:
        """The runner committed ``model``'s table: start a fold when one is due."""
        if not self.enabled or held or model.commit_every_s is not None or model.name in self._running:
            return
        n = self._commits[model.name] = self._commits.get(model.name, 0) + 1
        if n < FOLD_EVERY:
            return
        self._commits[model.name] = 0
        table = self._find(model.name)
        if table is None:
            return
        try:
            picks = smallfiles.pick(table, min_files=MIN_FILES, max_bytes=SMALL_BYTES, max_files=MAX_FILES)
        except ShoalError as exc:
            log.warning("fold of %s not started: %s", model.name, exc)
            return
        if not picks:
            return
        # the partition with the most small files first; the others at the next look
        chosen = max(picks, key=lambda p: len(p.files))
        order = (model.restate_from,) if model.restate_from else ()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shoal-fold")
        self._running[model.name] = self._pool.submit(smallfiles.rewrite, table, chosen, sort_by=order)

    def commit_ready(self) -> list[Folded]:
        """Commit the folds whose rewrite is done (in the runner's thread, between its commits)."""
        out = []
        for name, job in list(self._running.items()):
            if not job.done():
                continue
            del self._running[name]
            try:
                done = job.result()
            except Exception as exc:  # a fold only saves work: it never stops the runner
                log.warning("fold of %s not written: %s", name, exc)
                continue
            table = self._find(name)
            if done is None or table is None:
                continue
            start = time.perf_counter()
            try:
                version = smallfiles.commit(table, done)
            except Exception as exc:  # e.g. storage down: the next look picks again
                # committed or not, the runner's memory is not carried over: a version it did not
                # make drops it at the next read, as any other writer's would
                log.warning("fold of %s not committed: %s", name, exc)
                continue
            if version is not None:
                seconds = round(time.perf_counter() - start, 3)
                out.append(Folded(name, version, len(done.pick.files), done.rows, seconds))
        return out

    def close(self) -> None:
        """Wait for running rewrites and drop them (their files are never referenced)."""
        for name, job in self._running.items():
            try:
                done = job.result()
            except Exception:  # nothing was written that needs deleting
                continue
            table = self._find(name)
            if done is not None and table is not None:
                smallfiles.discard(table, done)
        self._running.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

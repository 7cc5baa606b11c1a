"""Refreshing models: recompute only what new upstream data touched, in one commit per model.

Progress is exactly-once like ingestion: each model commit carries, as Delta app transactions
(``shoal.lake.progress``), the upstream versions it has consumed and the definition's hash. The
runner orders the models (a model after those it reads) and gives each refresh to its strategy,
the way dbt keeps one materialization per module:

* a full rebuild (new model, changed definition, ``--full``, or no usable change feed):
  :meth:`~shoal.models.context.RefreshContext.rebuild`;
* slices touched by upstream changes, from their restate point on: :mod:`shoal.models.slices`;
* sums kept from the change feed, and state models: :mod:`shoal.models.additive`;
* anything else is rebuilt when an upstream moved, left alone when none did.

Watching (:mod:`shoal.models.watching`) runs refreshes whenever a source table moves.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import pyarrow as pa

from shoal.errors import ConfigError, NotFoundError, ShoalError
from shoal.lake import Lake
from shoal.lake.catalog import QUIET_CHECKPOINT_S
from shoal.models.additive import check_state_models, lagging_state_models, refresh_additive
from shoal.models.context import CHANGE_TYPE, COMMIT_VERSION, Handoff, RefreshContext, RefreshResult, Session
from shoal.models.errors import ModelError
from shoal.models.model import Model
from shoal.models.slices import refresh_slices
from shoal.models.watching import POLL_S, watch
from shoal.query import Connection

log = logging.getLogger("shoal.models")

__all__ = ["ModelError", "ModelRunner", "RefreshResult", "order_models"]


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

    def __init__(
        self,
        lake: Lake,
        models: Sequence[Model],
        con: Connection | None = None,
        *,
        handoff: bool = True,
        arrange: bool = True,
        hold: bool = False,
        fold: bool = False,
    ) -> None:
        """``handoff=False`` makes every model read its upstream's changes back from the Delta
        change feed, ``arrange=False`` every model read from its Delta table (the behaviour
        before ADR 0020; kept for A/B measurements).

        ``hold=True`` (a runner refreshing continuously; :meth:`watch` turns it on) keeps the
        changes of models with ``commit_every_s`` in memory between their commits (ADR 0038);
        :meth:`close` commits what is held. With ``hold=True`` and no ``con`` given (and always
        within :meth:`watch`) the views of the copies stay on them between cycles.
        ``fold=True`` (also turned on by :meth:`watch`) folds the small files its commits leave
        in its models' tables (ADR 0053)."""
        self.lake = lake
        self.models = order_models(models)
        check_state_models(self.models)
        self._by_name = {m.name: m for m in self.models}
        self._session = Session(lake, con)
        self._session.deferred.enabled = hold and arrange
        # nobody else reads through a connection of its own: its views may stay on the copies
        self._session.arranged.keep_pointed = hold and arrange and con is None
        self._session.folds.enabled = fold
        self._in_cycle = False
        #: models committed to since the watch's last quiet checkpoint (ADR 0057)
        self._unchecked: set[str] = set()
        if arrange:
            # additive models (sums: small) are kept in memory and read there (ADR 0020)
            self._session.arranged.models = frozenset(m.name for m in self.models if m.additive_sql)
        if handoff:
            # a model whose changes another model of this runner reads (an additive or slice
            # refresh; a rebuild reads none) hands its commits' change rows on
            names = set(self._by_name)
            self._session.feeding = frozenset(
                u for m in self.models if m.additive_sql or m.incremental_by for u in m.upstream if u in names
            )

    @property
    def con(self) -> Connection:
        return self._session.con

    def close(self) -> None:
        try:
            self.commit_held()
        finally:
            self._session.close()

    def commit_held(self, *, force: bool = True) -> list[RefreshResult]:
        """Commit the changes held in memory (all, or with ``force=False`` those due)."""
        deferred = self._session.deferred
        results = []
        for name in deferred.due(self._by_name, force=force):
            model, table = self._by_name.get(name), self._session.find(name)
            if model is None or table is None:
                deferred.drop(name)
                continue
            start = time.perf_counter()
            version, rows, gone = deferred.commit(model, table)
            seconds = round(time.perf_counter() - start, 3)
            results.append(
                RefreshResult(
                    name, "commit", rows_written=rows, rows_deleted=gone, version=version, seconds=seconds
                )
            )
        return results

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
        results = self._commit_folds()
        self._in_cycle = True
        try:
            # one pipeline per cycle: a model's downstream models take its commit's change rows
            # from memory (each still commits its own table with its own progress keys)
            for model in self.models:
                if wanted and model.name not in wanted:
                    continue
                if progress:
                    progress(model.name)
                result = self.refresh_one(model, full=full)
                results.append(result)
                if result.rows_written or result.rows_deleted or result.mode == "full":
                    self._session.folds.committed(model, held=result.held)
            # held changes that are due (all of them when this runner does not hold any)
            results += self.commit_held(force=not self._session.deferred.enabled)
        finally:
            self._in_cycle = False
            self._session.end_cycle()
        return results

    def _commit_folds(self) -> list[RefreshResult]:
        """Commit the folds of small files whose rewrite is done, first thing in a cycle (before
        any progress is read), and carry what the runner holds over them (ADR 0053)."""
        results = []
        session = self._session
        for fold in session.folds.commit_ready():
            session.data_neutral(fold.model, before=fold.version - 1, version=fold.version)
            results.append(
                RefreshResult(
                    fold.model,
                    "fold",
                    touched=fold.files,
                    rows_written=fold.rows,
                    version=fold.version,
                    seconds=fold.seconds,
                )
            )
        return results

    def offer_appended(self, table: str, before: int, version: int, rows: pa.Table) -> None:
        """``rows`` were appended to ``table`` (a source of these models) by this process, in the
        commit ``version`` built directly on ``before``: the next :meth:`refresh`'s models last
        refreshed from ``before`` take them from memory, as the change feed would give them,
        instead of reading the log back (an ingest worker refreshing in its commit, ADR 0038).
        Any other model reads the change feed as usual."""
        if version != before + 1:
            return
        n = rows.num_rows
        changes = rows.append_column(CHANGE_TYPE, pa.repeat(pa.scalar("insert", pa.string()), n))
        changes = changes.append_column(COMMIT_VERSION, pa.repeat(pa.scalar(version, pa.int64()), n))
        self._session.hand_off(table, Handoff(before, version, changes))

    @property
    def sources(self) -> list[str]:
        """Tables the models read that no model of this runner writes (e.g. ingested tables)."""
        names = {m.name for m in self.models}
        return sorted({u for m in self.models for u in m.upstream} - names)

    def source_versions(self) -> dict[str, int | None]:
        find = self._session.find
        return {name: (t.version if (t := find(name)) is not None else None) for name in self.sources}

    def watch(
        self,
        *,
        interval_s: float = 1.0,
        should_stop: Callable[[], bool],
        on_cycle: Callable[[list[RefreshResult]], None] | None = None,
        on_retry: Callable[[ShoalError], None] | None = None,
        poll_s: float | None = None,
    ) -> int:
        """Keep models fresh until ``should_stop()`` (see :func:`shoal.models.watching.watch`).
        ``poll_s``: how often sources are looked at once the interval has passed; by default
        20 ms on a local lake (a look is a ``stat``), the interval on object stores (a look lists
        the log: a request each time) (ADR 0049).
        Returns the number of refresh cycles run. Changes held meanwhile (``commit_every_s``) are
        committed when it returns."""
        deferred, folds, arranged = self._session.deferred, self._session.folds, self._session.arranged
        was, deferred.enabled = deferred.enabled, deferred.enabled or bool(arranged.models)
        folded, folds.enabled = folds.enabled, True
        # nothing reads through the connection between the cycles of a watch (on_cycle aside,
        # which sees the copies): the views stay on them until it returns
        kept, arranged.keep_pointed = arranged.keep_pointed, True
        try:
            return watch(
                self.source_versions,
                self._watched_cycle,
                interval_s=interval_s,
                should_stop=should_stop,
                on_cycle=on_cycle,
                on_retry=on_retry,
                poll_s=poll_s if poll_s is not None else self._default_poll_s(interval_s),
                on_idle=self.checkpoint_quiet,
                idle_after_s=QUIET_CHECKPOINT_S,
            )
        finally:
            deferred.enabled, folds.enabled, arranged.keep_pointed = was, folded, kept
            self._unchecked.update(r.model for r in self.commit_held())
            self._session.end_cycle()  # the views read Delta again, unless kept pointed before
            self.checkpoint_quiet()  # a stopped watcher leaves its tables quiet

    def _watched_cycle(self) -> list[RefreshResult]:
        results = self.refresh()
        self._unchecked.update(r.model for r in results if r.mode != "unchanged" and not r.held)
        return results

    def checkpoint_quiet(self) -> list[int]:
        """Checkpoint the tables of the models committed to since the last call at their latest
        version, unless they have one (ADR 0057): a watcher calls it once its sources have been
        quiet for ``QUIET_CHECKPOINT_S`` after a cycle, so the dashboards reading a model then
        replay one checkpoint. Data-neutral: a failure is logged, never raised. Returns the
        versions checkpointed."""
        done = []
        names, self._unchecked = sorted(self._unchecked), set()
        for name in names:
            try:
                version = self.lake.table(name).checkpoint_if_behind()
            except ShoalError as exc:  # readers replay a few more commits: nothing is lost
                log.warning("checkpoint of %s failed: %s", name, exc)
                continue
            if version is not None:
                done.append(version)
        return done

    def _default_poll_s(self, interval_s: float) -> float:
        return POLL_S if self.lake.location.scheme == "file" else interval_s

    def refresh_one(self, model: Model, *, full: bool = False) -> RefreshResult:
        start = time.perf_counter()
        ctx = self._session.begin(model)
        result = self._dispatch(ctx, full=full)
        result.seconds = round(time.perf_counter() - start, 3)
        result.upstream_versions = ctx.current
        result.handed_off = ctx.handed_off
        if not self._in_cycle:
            # called on its own: the connection's views read Delta again (handoffs are kept for
            # the next model's refresh_one)
            self._session.arranged.release()
        return result

    def _dispatch(self, ctx: RefreshContext, *, full: bool) -> RefreshResult:
        model = ctx.model
        if full or not ctx.definition_current:
            return ctx.rebuild()
        if model.additive_sql:
            return refresh_additive(ctx)
        if model.incremental_by:
            # the state models its incremental_sql reads must match its rows first
            for name in lagging_state_models(ctx, self._session.progress):
                self.refresh_one(self._by_name[name])
            return refresh_slices(ctx)
        return ctx.unchanged() if ctx.inputs_current else ctx.rebuild()

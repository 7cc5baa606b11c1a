"""Watching: keep models fresh by refreshing whenever a source table got a new version."""

from __future__ import annotations

import time
from collections.abc import Callable

from shoal.errors import ShoalError, is_transient
from shoal.models.context import RefreshResult

#: how often an idle watcher looks for a new source version once its interval has passed: a look
#: at a local table is one ``stat`` of its next log file, and each look saved is detection time
#: added to every event's freshness (issue 18)
POLL_S = 0.02


def watch(
    source_versions: Callable[[], dict[str, int | None]],
    refresh: Callable[[], list[RefreshResult]],
    *,
    interval_s: float,
    should_stop: Callable[[], bool],
    on_cycle: Callable[[list[RefreshResult]], None] | None = None,
    on_retry: Callable[[ShoalError], None] | None = None,
    poll_s: float = POLL_S,
    on_idle: Callable[[], object] | None = None,
    idle_after_s: float = 0.0,
) -> int:
    """Run ``refresh()`` whenever ``source_versions()`` changes, until ``should_stop()``.

    A cycle starts at most once per ``interval_s`` (at once when the previous cycle took longer),
    so a watcher of slow-moving rollups given a long interval batches what its busy sources
    commit meanwhile. Once the interval has passed with nothing new, the versions are looked at
    every ``poll_s`` (at most ``interval_s``), so a cycle starts within ``poll_s`` of the commit
    it takes rather than up to a whole interval later. A source that does not exist yet
    (version None) is waited for, quietly, looked for once per interval. A transient failure of a
    cycle (e.g. a commit conflict with another runner of the same models) is passed to
    ``on_retry`` and the cycle is run again at the next interval; any other error ends the watch.
    ``on_idle`` is called once after a cycle, at the first look that finds nothing new at least
    ``idle_after_s`` after it ended (a quiet checkpoint of what it committed, ADR 0057): a
    watcher whose sources keep moving never calls it.
    Returns the number of refresh cycles run.
    """
    poll_s = max(0.0, min(poll_s, interval_s))
    seen: dict[str, int | None] = {}
    cycles = 0
    next_look = time.monotonic()  # no cycle before this (the last cycle's start + interval_s)
    idle_from: float | None = None  # the end of the last cycle, until on_idle was called
    while not should_stop():
        now = time.monotonic()
        if now < next_look:
            time.sleep(min(0.05, next_look - now))
            continue
        current = source_versions()
        if current == seen:
            # nothing new: once that has lasted idle_after_s since the last cycle, the sources
            # have paused (a watcher with a long interval looks only once per interval)
            if idle_from is not None and on_idle is not None and now - idle_from >= idle_after_s:
                idle_from = None
                on_idle()
            if any(v is None for v in current.values()):
                next_look = now + interval_s
            else:
                time.sleep(poll_s)
            continue
        next_look = now + interval_s
        if any(v is None for v in current.values()):
            seen = current
            continue
        try:
            results = refresh()
        except ShoalError as exc:
            if not is_transient(exc):
                raise
            if on_retry is not None:
                on_retry(exc)
        else:
            seen = current
            cycles += 1
            if on_cycle is not None:
                on_cycle(results)
            idle_from = time.monotonic()
    return cycles

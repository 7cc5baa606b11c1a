"""Watching: keep models fresh by refreshing whenever a source table got a new version."""

from __future__ import annotations

import time
from collections.abc import Callable

from shoal.errors import ShoalError, is_transient
from shoal.models.context import RefreshResult


def watch(
    source_versions: Callable[[], dict[str, int | None]],
    refresh: Callable[[], list[RefreshResult]],
    *,
    interval_s: float,
    should_stop: Callable[[], bool],
    on_cycle: Callable[[list[RefreshResult]], None] | None = None,
    on_retry: Callable[[ShoalError], None] | None = None,
) -> int:
    """Run ``refresh()`` whenever ``source_versions()`` changes, until ``should_stop()``.

    The versions are looked at every ``interval_s``: a cycle starts at most once per interval, at
    once when the previous cycle took longer, so a watcher of slow-moving rollups given a long
    interval batches what its busy sources commit meanwhile. A source that does not exist yet
    (version None) is waited for, quietly. A transient failure of a cycle (e.g. a commit conflict
    with another runner of the same models) is passed to ``on_retry`` and the cycle is run again
    at the next interval; any other error ends the watch. Returns the number of refresh cycles run.
    """
    seen: dict[str, int | None] = {}
    cycles = 0
    while not should_stop():
        looked = time.monotonic()
        current = source_versions()
        if current != seen:
            if any(v is None for v in current.values()):
                seen = current
            else:
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
        deadline = looked + interval_s
        while not should_stop() and time.monotonic() < deadline:
            time.sleep(min(0.05, interval_s))
    return cycles

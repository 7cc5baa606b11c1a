"""Periodic compaction of a sync's merge-on-read replicas, in a thread beside the change rounds.

The rounds append changes (their lag follows the change rate); every ``every_s`` seconds the tail
each replica has gathered is folded into its base (``shoal.lake.morcompact``), so the rows a
reader ranks per key stay about one period's worth of changes. The compaction commits without
conflicting with the rounds' appends; a failed one is logged and tried again at the next period
(a kill -9 in the middle leaves only unreferenced files).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from shoal.lake import Lake
from shoal.lake.morcompact import Compaction, compact, tail_rows

log = logging.getLogger("shoal.replicate")


class Compactor:
    """Compacts the lake tables ``names`` (merge-on-read replicas) every ``every_s`` seconds."""

    def __init__(self, lake: Lake, names: Sequence[str], every_s: float, database: str) -> None:
        self.lake = lake
        self.names = list(names)
        self.every_s = every_s
        self.database = database
        self.done: list[Compaction] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> list[Compaction]:
        """Compact every table that has a tail now; what each compaction did."""
        out = []
        for name in self.names:
            table = self.lake.find(name)
            if table is None or table.layout() is None or tail_rows(table) == 0:
                continue
            result = compact(table)
            log.info(
                "compacted %s: %s change rows folded, %s files rewritten, %.2f s",
                name,
                result.change_rows,
                result.files_removed,
                result.seconds,
                extra={"database": self.database},
            )
            out.append(result)
        self.done.extend(out)
        return out

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.run_once()
            except Exception as exc:  # a lost race or storage hiccup: the next period tries again
                log.warning(
                    "sync %s: compaction failed, tried again in %.0f s: %s",
                    self.database,
                    self.every_s,
                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                    extra={"database": self.database},
                )

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"compact-{self.database}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop after the compaction under way (if any) has finished."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

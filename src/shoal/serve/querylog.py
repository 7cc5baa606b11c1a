"""Every served query, logged to the lake table ``_shoal.query_log`` (token, duration, rows, outcome).

Entries are buffered and appended in one commit every few seconds (a commit per query would cost
more than most queries). The ``_shoal`` namespace is hidden from table listings and never served,
so only someone with the lake itself (``shoal sql``) reads the log.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import pyarrow as pa

from shoal.errors import ShoalError
from shoal.lake import Lake

TABLE = "_shoal.query_log"
SCHEMA = pa.schema(
    [
        ("ts", pa.timestamp("us", tz="UTC")),
        ("token_id", pa.string()),
        ("token_name", pa.string()),
        ("protocol", pa.string()),
        ("query", pa.string()),
        ("duration_ms", pa.float64()),
        ("rows", pa.int64()),
        ("outcome", pa.string()),
        ("error", pa.string()),
    ]
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    ts: datetime
    token_id: str
    token_name: str
    protocol: str
    query: str
    duration_ms: float
    rows: int
    #: ok | refused | denied | error | timeout | cancelled | busy | too_large
    outcome: str
    error: str = ""


class QueryLog:
    """A buffer of entries flushed to the lake by a background thread (and on close)."""

    def __init__(self, lake: Lake, *, flush_every_s: float = 5.0, max_query_chars: int = 4000) -> None:
        self.lake = lake
        self.flush_every_s = flush_every_s
        self.max_query_chars = max_query_chars
        self._buffer: list[Entry] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, entry: Entry) -> None:
        if len(entry.query) > self.max_query_chars:
            entry = Entry(**{**asdict(entry), "query": entry.query[: self.max_query_chars] + "…"})
        with self._lock:
            self._buffer.append(entry)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="shoal-query-log", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.flush_every_s):
            self.flush()

    def flush(self) -> int:
        """Append buffered entries in one commit; returns how many (kept for later on failure)."""
        with self._lock:
            entries, self._buffer = self._buffer, []
        if not entries:
            return 0
        rows = pa.Table.from_pylist([asdict(e) for e in entries], schema=SCHEMA)
        try:
            table = self.lake.create_table(
                TABLE, SCHEMA, description="every query served by shoal serve", owner="shoal serve"
            )
            table.append(rows)
        except (ShoalError, OSError) as exc:
            log.warning("query log: could not append %d entries: %s", len(entries), exc)
            with self._lock:
                self._buffer[:0] = entries
            return 0
        return len(entries)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()


def now() -> datetime:
    return datetime.now(UTC)

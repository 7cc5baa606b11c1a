"""Shipping JSON log lines to a receiver (``shoal logs receive``), off the caller's path.

:class:`LogShipper` batches lines in a background thread and posts them to ``POST /v1/logs``,
numbered (``X-Shoal-Source`` + ``X-Shoal-Seq``) so a retried batch is written once. Its queue is
bounded: when the receiver is away long enough for it to fill, the oldest lines are dropped and
counted (``dropped``) rather than blocking the program that logs. :class:`ShippingHandler` is a
``logging.Handler`` that formats records with shoal's JSON formatter and hands them to a shipper,
so any shoal process (or application) can ship its own logs without writing to the lake itself.
``shoal logs ship`` does the same for JSON lines on stdin (e.g. a worker's stderr).
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import threading
import time
import uuid

import httpx

from shoal.errors import Transient
from shoal.ingest.jsonlog import JsonFormatter
from shoal.logs.errors import LogsError
from shoal.retry import RetryPolicy, retry

log = logging.getLogger(__name__)


class ShipFailed(LogsError, Transient):
    """The receiver did not take a batch (connection error or a 5xx answer)."""


class LogShipper:
    """Posts lines in batches from a background thread; :meth:`close` sends what is queued."""

    def __init__(
        self,
        url: str,
        *,
        source: str | None = None,
        max_batch: int = 1000,
        max_delay_s: float = 1.0,
        max_queue: int = 100_000,
        timeout_s: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/") + ("" if url.rstrip("/").endswith("/v1/logs") else "/v1/logs")
        # Batch numbers are microseconds since the epoch (kept increasing), so a shipper restarted
        # under the same --source carries on above its last number. Two shippers must not share a
        # source at the same time; the default is unique per run (one txn key per run in the table).
        self.source = source or f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self.timeout_s = timeout_s
        self._queue: collections.deque[bytes] = collections.deque(maxlen=max_queue)
        self._cond = threading.Condition()
        self._closed = False
        self._seq = 0
        self.sent = 0
        self.dropped = 0
        self.dead_lettered = 0
        self._client = httpx.Client(timeout=timeout_s)
        self._thread = threading.Thread(target=self._run, name="shoal-log-shipper", daemon=True)
        self._thread.start()

    def ship(self, line: bytes | str) -> None:
        """Queue one JSON line (never blocks; the oldest line is dropped when the queue is full)."""
        data = line.encode() if isinstance(line, str) else line
        with self._cond:
            if len(self._queue) == self._queue.maxlen:
                self.dropped += 1
            self._queue.append(data.rstrip(b"\n"))
            if len(self._queue) >= self.max_batch:
                self._cond.notify()

    def close(self, timeout_s: float = 30.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout_s)
        self._client.close()

    def __enter__(self) -> LogShipper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _take(self) -> list[bytes]:
        with self._cond:
            deadline = time.monotonic() + self.max_delay_s
            while not self._closed and len(self._queue) < self.max_batch:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            n = min(self.max_batch, len(self._queue))
            return [self._queue.popleft() for _ in range(n)]

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch:
                self._seq = max(self._seq + 1, time.time_ns() // 1000)
                try:
                    self._post(batch, self._seq)
                except Exception as err:  # the shipper must outlive its receiver
                    self.dropped += len(batch)
                    log.warning("log shipping failed", extra={"detail": str(err).splitlines()[0][:200]})
            with self._cond:
                if self._closed and not self._queue:
                    return

    def _post(self, batch: list[bytes], seq: int) -> None:
        headers = {
            "X-Shoal-Source": self.source,
            "X-Shoal-Seq": str(seq),
            "content-type": "application/x-ndjson",
        }

        def once() -> None:
            try:
                resp = self._client.post(self.url, content=b"\n".join(batch), headers=headers)
            except httpx.HTTPError as err:
                raise ShipFailed(f"POST {self.url}: {err}") from err
            if resp.status_code >= 500:
                raise ShipFailed(f"POST {self.url}: {resp.status_code} {resp.text.strip()[:200]}")
            if resp.status_code != 200:
                raise LogsError(f"POST {self.url}: {resp.status_code} {resp.text.strip()[:200]}")
            self.dead_lettered += int(resp.json().get("dead_lettered", 0))

        retry(once, "ship logs", RetryPolicy(attempts=8, base_s=0.5, max_delay_s=10.0))
        self.sent += len(batch)


class ShippingHandler(logging.Handler):
    """A logging handler shipping records as JSON lines (shoal's :class:`JsonFormatter`)."""

    def __init__(
        self, shipper: LogShipper, *, service: str | None = None, level: int = logging.NOTSET
    ) -> None:
        super().__init__(level)
        self.shipper = shipper
        self.service = service
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if self.service is not None and not hasattr(record, "service"):
                record.service = self.service
            self.shipper.ship(self.format(record))
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self.shipper.close()
        super().close()

"""The flush buffer of pushed sources: HTTP requests committed together, each acknowledged after
the commit that holds it.

A pulled source (Kafka) is read by the pipeline loop, which flushes a :class:`FlushBuffer` on rows,
bytes or latency and commits the consumed offsets. A pushed source (Prometheus remote_write, log
lines over HTTP) has no offsets to commit: its senders retry what was not acknowledged. So its flush
is the same decision -- a commit when ``max_items`` are pending or ``max_delay_s`` after the first
one arrived -- and the same commit path (one write through :func:`shoal.retry.retry` on transient
errors), but what a flush releases is the waiting requests: a request is answered only once the
commit holding it is in the lake, or with the error that stopped it (the sender retries, nothing
is lost).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Generic, TypeVar

from shoal.retry import RetryPolicy, retry

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass(frozen=True)
class PushPolicy:
    """When a pushed buffer flushes, and how often one flush's write is tried."""

    max_items: int = 100_000
    max_delay_s: float = 1.0
    write_attempts: int = 3

    def __post_init__(self) -> None:
        if self.max_items < 1 or self.max_delay_s < 0 or self.write_attempts < 1:
            raise ValueError(f"push policy out of range: {self}")


class PushBuffer(Generic[Item, Result]):
    """Items submitted by concurrent requests, written in flushes by ``write`` (run in a thread:
    it commits to the lake). ``write(items)`` returns one result per item, in order; ``size(item)``
    is what counts towards ``max_items`` (samples, lines)."""

    def __init__(
        self,
        write: Callable[[list[Item]], Sequence[Result]],
        policy: PushPolicy,
        *,
        name: str,
        size: Callable[[Item], int] = lambda _: 1,
    ) -> None:
        self._write = write
        self.policy = policy
        self.name = name
        self._size = size
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._pending_size = 0
        self._first_at: float | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.flushes = 0

    async def start(self) -> None:
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._flusher(), name=f"{self.name}-flusher")

    async def stop(self) -> None:
        """Flush what is pending, then stop the flusher."""
        if self._task is None:
            return
        await self._flush()
        self._task.cancel()
        with suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def submit(self, item: Item) -> Result:
        """Queue ``item``; returns its result once the flush holding it is committed (or raises
        the error that stopped that flush)."""
        await self.start()
        assert self._wake is not None
        fut: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, fut))
        self._pending_size += self._size(item)
        if self._first_at is None:
            self._first_at = time.monotonic()
        self._wake.set()
        return await fut

    def _due(self) -> bool:
        if self._first_at is None:
            return False
        return (
            self._pending_size >= self.policy.max_items
            or time.monotonic() >= self._first_at + self.policy.max_delay_s
        )

    async def _flusher(self) -> None:
        assert self._wake is not None
        while True:
            if not self._due():
                timeout = None
                if self._first_at is not None:
                    timeout = max(0.0, self._first_at + self.policy.max_delay_s - time.monotonic())
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=timeout)
                self._wake.clear()
                continue
            await self._flush()

    async def _flush(self) -> None:
        batch = self._pending
        if not batch:
            return
        self._pending, self._pending_size, self._first_at = [], 0, None
        items = [item for item, _ in batch]
        policy = RetryPolicy(attempts=self.policy.write_attempts, base_s=0.2, max_delay_s=2.0)
        try:
            results = await asyncio.to_thread(retry, lambda: self._write(items), f"{self.name} flush", policy)
            if len(results) != len(items):
                raise RuntimeError(
                    f"{self.name}: write returned {len(results)} results for {len(items)} items"
                )
        except Exception as err:  # every waiting request gets the error; its sender retries
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(err)
            return
        self.flushes += 1
        for (_, fut), result in zip(batch, results, strict=True):
            if not fut.done():
                fut.set_result(result)

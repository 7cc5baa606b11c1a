"""One retry policy for every writer: retry :class:`~shoal.errors.Transient` errors with backoff.

The delay of attempt ``n`` (0-based) is ``max(err.retry_after, base_s) * 2**n`` capped at
``max_delay_s``, so an error that knows how long to wait (an object store's ``Retry-After``, a
commit conflict's few milliseconds) is honoured. Terminal errors and anything that is not a
:class:`ShoalError` propagate at once: retrying bad data or a bug cannot help.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from shoal.errors import is_transient

T = TypeVar("T")

log = logging.getLogger("shoal.retry")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a transient failure is retried."""

    attempts: int = 30
    base_s: float = 0.2
    max_delay_s: float = 10.0

    def delay(self, attempt: int, err: BaseException) -> float:
        wanted = float(getattr(err, "retry_after", self.base_s) or 0.0)
        return float(min(self.max_delay_s, max(wanted, self.base_s) * 2**attempt))


DEFAULT_POLICY = RetryPolicy()


def _should_retry(err: BaseException, attempt: int, policy: RetryPolicy) -> bool:
    return is_transient(err) and attempt < policy.attempts - 1


def retry(
    fn: Callable[[], T],
    what: str,
    policy: RetryPolicy = DEFAULT_POLICY,
    *,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
    stop: threading.Event | None = None,
) -> T:
    """Call ``fn`` until it returns, retrying transient errors per ``policy``.

    ``on_retry(attempt, err, delay)`` is called before each wait (metrics, logs); ``stop`` cuts a
    wait short and re-raises the last error, so a shutting-down worker never sleeps out a backoff.
    """
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as err:
            if not _should_retry(err, attempt, policy):
                raise
            delay = policy.delay(attempt, err)
            _report(what, attempt, err, delay, on_retry)
            if stop is not None:
                if stop.wait(delay):
                    raise
            else:
                time.sleep(delay)
            attempt += 1


async def retry_async(
    fn: Callable[[], Awaitable[T]],
    what: str,
    policy: RetryPolicy = DEFAULT_POLICY,
    *,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> T:
    """:func:`retry` for coroutines: waits with ``asyncio.sleep`` so the event loop keeps serving."""
    attempt = 0
    while True:
        try:
            return await fn()
        except Exception as err:
            if not _should_retry(err, attempt, policy):
                raise
            delay = policy.delay(attempt, err)
            _report(what, attempt, err, delay, on_retry)
            await asyncio.sleep(delay)
            attempt += 1


def _report(
    what: str,
    attempt: int,
    err: BaseException,
    delay: float,
    on_retry: Callable[[int, BaseException, float], None] | None,
) -> None:
    log.warning(
        "%s failed, retrying",
        what,
        extra={"attempt": attempt + 1, "delay_s": round(delay, 3), "detail": str(err)},
    )
    if on_retry is not None:
        on_retry(attempt, err, delay)

"""The push buffer of HTTP-fed sources: one flush per size or delay, each request answered after
the commit holding it, or with the error that stopped it."""

from __future__ import annotations

import asyncio
import time

import pytest

from shoal.errors import ShoalError, Transient
from shoal.ingest.push import PushBuffer, PushPolicy


class Flaky(ShoalError, Transient):
    """A lake hiccup."""


def test_a_flush_at_max_items_answers_every_request_of_it() -> None:
    writes: list[list[str]] = []

    def write(items: list[str]) -> list[str]:
        writes.append(items)
        return [f"ok:{i}" for i in items]

    async def main() -> list[str]:
        buf: PushBuffer[str, str] = PushBuffer(
            write, PushPolicy(max_items=4, max_delay_s=60), name="t", size=len
        )
        t0 = time.monotonic()
        out = await asyncio.gather(*(buf.submit(x) for x in ("ab", "cd", "e")))
        assert time.monotonic() - t0 < 5  # the size, not the minute, flushed it
        await buf.stop()
        assert buf.flushes == 1
        return list(out)

    assert asyncio.run(main()) == ["ok:ab", "ok:cd", "ok:e"]
    assert writes == [["ab", "cd", "e"]]


def test_a_flush_after_max_delay_and_on_stop() -> None:
    writes: list[list[int]] = []

    def write(items: list[int]) -> list[int]:
        writes.append(items)
        return [i * 10 for i in items]

    async def main() -> None:
        buf: PushBuffer[int, int] = PushBuffer(write, PushPolicy(max_items=1000, max_delay_s=0.2), name="t")
        t0 = time.monotonic()
        assert await buf.submit(1) == 10
        assert time.monotonic() - t0 >= 0.19  # waited out the delay for more
        pending = asyncio.ensure_future(buf.submit(2))
        await asyncio.sleep(0.01)
        await buf.stop()  # flushes what is pending
        assert await pending == 20

    asyncio.run(main())
    assert writes == [[1], [2]]


def test_a_transient_error_is_retried_and_a_lasting_one_reaches_every_waiter() -> None:
    calls = {"n": 0}

    def flaky_once(items: list[int]) -> list[int]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise Flaky("lake busy")
        return items

    def broken(items: list[int]) -> list[int]:
        raise Flaky("lake down")

    async def main() -> None:
        ok: PushBuffer[int, int] = PushBuffer(flaky_once, PushPolicy(max_items=2, write_attempts=3), name="t")
        assert await asyncio.gather(ok.submit(1), ok.submit(2)) == [1, 2]
        await ok.stop()
        bad: PushBuffer[int, int] = PushBuffer(broken, PushPolicy(max_items=2, write_attempts=2), name="t")
        results = await asyncio.gather(bad.submit(1), bad.submit(2), return_exceptions=True)
        assert all(isinstance(r, Flaky) for r in results)
        assert bad.flushes == 0
        await bad.stop()

    asyncio.run(main())
    assert calls["n"] == 2


def test_policy_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="push policy"):
        PushPolicy(max_items=0)

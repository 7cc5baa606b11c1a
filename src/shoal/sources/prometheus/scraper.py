"""Scrape Prometheus targets on a schedule and write each round to the lake exactly once.

A round fetches every target concurrently (asyncio + httpx, bounded by a semaphore). A target
that is unreachable, times out, answers non-200 or serves a malformed exposition is recorded as
down (with the reason) in ``metrics.targets``; the others go on. Each round is one commit per
table carrying the app transaction ``scrape:<job>`` = the round's timestamp (ms): rounds are
aligned to the interval, so a retried or restarted round is not written twice.

Like Prometheus, every target also yields the synthetic series ``up``,
``scrape_duration_seconds`` and ``scrape_samples_scraped``, and an exposition label that clashes
with a target label is kept as ``exported_<name>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from shoal.lake import progress
from shoal.retry import RetryPolicy, retry_async
from shoal.sources.prometheus.exposition import ExpositionError, iter_samples
from shoal.sources.prometheus.targets import Target, TargetsFile
from shoal.sources.prometheus.writer import MetricsWriter, SampleBatch, WriteResult

log = logging.getLogger(__name__)

ACCEPT_OPENMETRICS = (
    "application/openmetrics-text;version=1.0.0;q=0.9,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
ACCEPT_TEXT = "text/plain;version=0.0.4,*/*;q=0.1"


class ScrapeConfig(BaseModel):
    """How targets are scraped. Frozen: build a new one to change it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job: str = "shoal"
    interval_s: float = Field(300.0, gt=0)
    #: each target waits a random 0..jitter_s before its request, to spread load
    jitter_s: float = Field(5.0, ge=0)
    timeout_s: float = Field(10.0, gt=0)
    concurrency: int = Field(64, ge=1)
    accept_openmetrics: bool = True
    #: use timestamps given in the exposition (else every sample gets the scrape time)
    honor_timestamps: bool = True
    #: attempts of a round's lake write on transient errors (same app transaction each time)
    write_attempts: int = Field(5, ge=1)
    max_body_bytes: int = Field(64 * 1024 * 1024, ge=1)


@dataclass
class TargetResult:
    target: Target
    scraped_ms: int
    up: bool
    error: str | None
    duration_s: float
    batch: SampleBatch = field(default_factory=SampleBatch)
    samples: int = 0  # samples in the exposition (excluding synthetic series)

    def health_row(self) -> dict[str, Any]:
        return {
            "job": self.target.job,
            "instance": self.target.instance,
            "url": self.target.url,
            "labels": list(self.target.labels),
            "scraped_at": self.scraped_ms,
            "up": self.up,
            "error": self.error,
            "duration_s": self.duration_s,
            "samples": self.samples,
        }


@dataclass
class RoundResult:
    round_ms: int
    targets: list[TargetResult]
    write: WriteResult | None
    duration_s: float

    @property
    def up(self) -> int:
        return sum(t.up for t in self.targets)

    @property
    def down(self) -> int:
        return len(self.targets) - self.up

    @property
    def samples(self) -> int:
        return sum(len(t.batch) for t in self.targets)

    def summary(self) -> dict[str, Any]:
        return {
            "round_ms": self.round_ms,
            "targets": len(self.targets),
            "up": self.up,
            "down": self.down,
            "samples": self.samples,
            "written": None if self.write is None else self.write.samples,
            "skipped": None if self.write is None else self.write.skipped,
            "duration_s": round(self.duration_s, 3),
            "errors": {t.target.url: t.error for t in self.targets if t.error},
        }


def _add_exposition(
    batch: SampleBatch,
    body: bytes,
    content_type: str | None,
    *,
    target: Target,
    scrape_ms: int,
    honor_ts: bool,
    known: set[int] | frozenset[int] = frozenset(),
) -> int:
    base = target.label_dict()
    n = 0
    for s in iter_samples(body, content_type):
        labels = dict(base)
        for k, v in s.labels.items():
            labels[f"exported_{k}" if k in base else k] = v
        ts = s.timestamp_ms if (honor_ts and s.timestamp_ms is not None) else scrape_ms
        batch.add(s.metric, labels, ts, s.value, known)
        n += 1
    return n


class Scraper:
    """Scrapes a set of targets (fixed, or a :class:`TargetsFile` re-read every round)."""

    def __init__(
        self,
        targets: TargetsFile | Sequence[Target],
        writer: MetricsWriter | None,
        config: ScrapeConfig | None = None,
    ) -> None:
        self.targets = targets
        self.writer = writer
        self.config = config or ScrapeConfig()
        self._known: set[int] | frozenset[int] = frozenset()

    def current_targets(self) -> list[Target]:
        if isinstance(self.targets, TargetsFile):
            return self.targets.current()
        return list(self.targets)

    async def scrape_target(
        self, client: httpx.AsyncClient, target: Target, sem: asyncio.Semaphore | None = None
    ) -> TargetResult:
        cfg = self.config
        if cfg.jitter_s:
            await asyncio.sleep(random.uniform(0, cfg.jitter_s))
        async with sem or asyncio.Semaphore(1):
            start = time.time()
            scrape_ms = int(start * 1000)
            batch = SampleBatch()
            error: str | None = None
            n = 0
            try:
                resp = await client.get(target.url, timeout=cfg.timeout_s)
                if resp.status_code != 200:
                    error = f"HTTP {resp.status_code} from {target.url}"
                elif len(resp.content) > cfg.max_body_bytes:
                    error = f"body of {len(resp.content)} bytes exceeds max_body_bytes={cfg.max_body_bytes}"
                else:
                    n = _add_exposition(
                        batch,
                        resp.content,
                        resp.headers.get("content-type"),
                        target=target,
                        scrape_ms=scrape_ms,
                        honor_ts=cfg.honor_timestamps,
                        known=self._known,
                    )
            except httpx.TimeoutException:
                error = f"timeout after {cfg.timeout_s:g}s"
            except httpx.HTTPError as err:
                error = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else target.url}"
            except ExpositionError as err:
                error = str(err)
            duration = time.time() - start
        if error is not None:
            batch = SampleBatch()  # like Prometheus: a failed scrape contributes no samples
            n = 0
        base = target.label_dict()
        batch.add("up", base, scrape_ms, 0.0 if error else 1.0)
        batch.add("scrape_duration_seconds", base, scrape_ms, duration)
        batch.add("scrape_samples_scraped", base, scrape_ms, float(n))
        return TargetResult(target, scrape_ms, error is None, error, duration, batch, n)

    async def scrape_all(self, targets: Sequence[Target]) -> list[TargetResult]:
        cfg = self.config
        if self.writer is not None:
            self._known = await asyncio.to_thread(self.writer.known_series)
        sem = asyncio.Semaphore(cfg.concurrency)
        limits = httpx.Limits(max_connections=cfg.concurrency, max_keepalive_connections=cfg.concurrency)
        headers = {"Accept": ACCEPT_OPENMETRICS if cfg.accept_openmetrics else ACCEPT_TEXT}
        async with httpx.AsyncClient(limits=limits, headers=headers, follow_redirects=True) as client:
            return list(await asyncio.gather(*(self.scrape_target(client, t, sem) for t in targets)))

    async def _write(self, round_ms: int, results: list[TargetResult]) -> WriteResult | None:
        writer = self.writer
        if writer is None:
            return None
        batch = SampleBatch()
        for r in results:
            batch.extend(r.batch)
        jobs = sorted({r.target.job for r in results}) or [self.config.job]
        txns = {progress.scrape_round(job): round_ms for job in jobs}
        health = [r.health_row() for r in results]
        return await retry_async(
            lambda: asyncio.to_thread(
                writer.write, batch, first_seen_ms=round_ms, targets=health, app_transactions=txns
            ),
            f"scrape round {round_ms}: write",
            RetryPolicy(attempts=self.config.write_attempts, base_s=0.5, max_delay_s=30.0),
        )

    async def scrape_round(self, round_ms: int | None = None) -> RoundResult:
        """Scrape every current target once and write the round (one commit per table)."""
        start = time.time()
        if round_ms is None:
            round_ms = int(start * 1000)
        results = await self.scrape_all(self.current_targets())
        write = await self._write(round_ms, results)
        return RoundResult(round_ms, results, write, time.time() - start)

    def slot_ms(self, now: float | None = None) -> int:
        """The interval-aligned round timestamp containing ``now``."""
        step = int(self.config.interval_s * 1000)
        now_ms = int((time.time() if now is None else now) * 1000)
        return now_ms - now_ms % step

    async def run(
        self,
        stop: asyncio.Event | None = None,
        max_rounds: int | None = None,
        on_round: Callable[[RoundResult], object] | None = None,
    ) -> None:
        """Scrape at every interval-aligned slot until ``stop`` is set (or ``max_rounds`` ran)."""
        stop = stop or asyncio.Event()
        rounds = 0
        slot = self.slot_ms()
        while not stop.is_set():
            result = await self.scrape_round(slot)
            rounds += 1
            log.info("scrape round: %s", result.summary())
            if on_round is not None:
                on_round(result)
            if max_rounds is not None and rounds >= max_rounds:
                return
            # next slot after now: a round that overran its interval skips the missed slots
            slot = self.slot_ms() + int(self.config.interval_s * 1000)
            wait = slot / 1000 - time.time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(wait, 0))

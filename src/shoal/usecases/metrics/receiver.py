"""The remote_write receiver: decoded batches through the ingest stage's push buffer into the
metrics tables (one flush policy and commit path for every pushed source)."""

from __future__ import annotations

import time

from shoal.ingest.push import PushBuffer, PushPolicy
from shoal.sources.prometheus import MetricsWriter, ReceiverConfig, SampleBatch, create_app


class RemoteWriteReceiver:
    """Buffers submitted batches and commits them in flushes; :meth:`submit` waits for the commit.
    Within a flush, samples are deduplicated on (series_id, ts) by the writer."""

    def __init__(self, writer: MetricsWriter, config: ReceiverConfig | None = None) -> None:
        self.writer = writer
        self.config = config or ReceiverConfig()
        self.samples_written = 0
        policy = PushPolicy(
            max_items=self.config.max_batch_samples,
            max_delay_s=self.config.max_batch_delay_s,
            write_attempts=self.config.write_attempts,
        )
        self._buffer: PushBuffer[SampleBatch, None] = PushBuffer(
            self._write, policy, name="remote_write", size=len
        )

    @property
    def flushes(self) -> int:
        return self._buffer.flushes

    async def start(self) -> None:
        await self._buffer.start()

    async def stop(self) -> None:
        """Flush what is pending, then stop the flusher."""
        await self._buffer.stop()

    async def submit(self, batch: SampleBatch) -> None:
        """Queue ``batch``; returns once it is committed (raises the write's error otherwise)."""
        if len(batch):
            await self._buffer.submit(batch)

    def _write(self, batches: list[SampleBatch]) -> list[None]:
        merged = SampleBatch()
        for batch in batches:
            merged.extend(batch)
        res = self.writer.write(merged, first_seen_ms=int(time.time() * 1000))
        self.samples_written += res.samples
        return [None] * len(batches)


def serve(
    writer: MetricsWriter,
    *,
    host: str = "127.0.0.1",
    port: int = 9201,
    config: ReceiverConfig | None = None,
    log_level: str = "info",
) -> None:
    """Run the receiver with uvicorn until interrupted (pending samples are flushed on exit)."""
    import uvicorn

    uvicorn.run(create_app(RemoteWriteReceiver(writer, config)), host=host, port=port, log_level=log_level)

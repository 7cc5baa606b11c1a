"""Prometheus remote_write receiver: ``POST /api/v1/write`` into the lake.

The body is a snappy (block format) compressed ``prometheus.WriteRequest`` (see remote.proto).
Decoded samples are handed to a receiver that buffers and flushes them to the lake when
``max_batch_samples`` are pending or ``max_batch_delay_s`` passed since the first pending one (the
ingest stage's push buffer, :mod:`shoal.ingest.push`); a request is answered ``204`` only
after the flush holding its samples committed, so Prometheus retries anything not in the lake
(``5xx``). Undecodable bodies get ``400`` with a one-line reason (Prometheus drops those).
Within a flush, samples are deduplicated on (series_id, ts), keeping the last received.
Prometheus staleness markers (a special NaN) are dropped: they mark a series' end, not a value.
"""

from __future__ import annotations

import logging
import math
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import cramjam
from google.protobuf.message import DecodeError, Message
from pydantic import BaseModel, ConfigDict, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from shoal.errors import ShoalError, Terminal
from shoal.sources.prometheus.series import series_id
from shoal.sources.prometheus.writer import SampleBatch

log = logging.getLogger(__name__)

PROTO_FILE = Path(__file__).with_name("remote.proto")
STALE_NAN_BITS = 0x7FF0000000000002


class RemoteWriteDecodeError(ShoalError, Terminal):
    """A remote_write body is not a snappy-compressed WriteRequest."""


class ReceiverConfig(BaseModel):
    """Buffering of the receiver. Frozen."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_batch_samples: int = Field(100_000, ge=1)
    max_batch_delay_s: float = Field(1.0, ge=0)
    max_body_bytes: int = Field(64 * 1024 * 1024, ge=1)
    #: attempts of one flush on transient lake errors before failing its requests (5xx)
    write_attempts: int = Field(3, ge=1)


@cache
def write_request_class() -> type[Message]:
    """``prometheus.WriteRequest`` compiled from remote.proto (via shoal.decode's protoc helper)."""
    from shoal.decode.compile import message_class

    return message_class("prometheus.WriteRequest", proto_file=PROTO_FILE)


def _is_stale(v: float) -> bool:
    return math.isnan(v) and struct.unpack("<Q", struct.pack("<d", v))[0] == STALE_NAN_BITS


def decode_write_request(body: bytes, *, compressed: bool = True) -> SampleBatch:
    """Samples of a (snappy-compressed) WriteRequest; :class:`RemoteWriteDecodeError` if invalid."""
    if compressed:
        try:
            raw = bytes(cramjam.snappy.decompress_raw(body))
        except Exception as err:  # cramjam raises its own DecompressionError
            raise RemoteWriteDecodeError(f"body is not snappy block-compressed: {err}") from err
    else:
        raw = body
    msg: Any = write_request_class()()
    try:
        msg.ParseFromString(raw)
    except DecodeError as err:
        raise RemoteWriteDecodeError(f"body is not a prometheus.WriteRequest: {err}") from err
    batch = SampleBatch()
    ids, stamps, values = batch.series_ids, batch.ts_ms, batch.values
    for i, ts in enumerate(msg.timeseries):
        labels = {lb.name: lb.value for lb in ts.labels}
        name = labels.pop("__name__", "")
        if not name:
            raise RemoteWriteDecodeError(f"timeseries {i} has no __name__ label")
        samples = ts.samples
        if not samples:
            continue
        sid = series_id(name, labels)
        batch.series.setdefault(sid, (name, labels))
        vals = [s.value for s in samples]
        tss = [s.timestamp for s in samples]
        if any(math.isnan(v) for v in vals):  # NaN present: drop staleness markers only
            keep = [j for j, v in enumerate(vals) if not _is_stale(v)]
            vals = [vals[j] for j in keep]
            tss = [tss[j] for j in keep]
        ids.extend([sid] * len(vals))
        stamps.extend(tss)
        values.extend(vals)
    return batch


class Submitter(Protocol):
    """What the app hands decoded batches to: the receiver that buffers and commits them
    (:class:`shoal.usecases.metrics.receiver.RemoteWriteReceiver`, on the ingest stage's push
    buffer). ``submit`` returns once the batch is committed."""

    config: ReceiverConfig

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def submit(self, batch: SampleBatch) -> None: ...


def create_app(receiver: Submitter) -> Starlette:
    """The ASGI app: ``POST /api/v1/write`` and ``GET /-/healthy``."""

    async def write(request: Request) -> Response:
        body = await request.body()
        if len(body) > receiver.config.max_body_bytes:
            return PlainTextResponse(
                f"body of {len(body)} bytes exceeds {receiver.config.max_body_bytes}\n", status_code=413
            )
        try:
            batch = decode_write_request(body)
        except RemoteWriteDecodeError as err:
            return PlainTextResponse(f"{err}\n", status_code=400)
        try:
            await receiver.submit(batch)
        except Exception as err:
            log.warning("remote_write flush failed: %s", err)
            line = str(err).splitlines()[0] if str(err) else type(err).__name__
            return PlainTextResponse(f"write to lake failed: {line}\n", status_code=503)
        return Response(status_code=204)

    async def healthy(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await receiver.start()
        try:
            yield
        finally:
            await receiver.stop()

    return Starlette(
        routes=[Route("/api/v1/write", write, methods=["POST"]), Route("/-/healthy", healthy)],
        lifespan=lifespan,
    )

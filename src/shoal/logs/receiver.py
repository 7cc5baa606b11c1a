"""``shoal logs receive``: JSON lines over HTTP (``POST /v1/logs``) into ``logs.lines``.

The body is newline-delimited JSON, one log line per line (blank lines are skipped). Requests are
buffered and committed together when ``max_batch_lines`` are pending or ``max_batch_delay_s``
passed since the first one; a request is answered only after the commit holding its lines, with
``{"accepted": n, "dead_lettered": m, "errors": [...]}``. Lines that are not JSON objects or have
no message go to ``logs.lines_dead_letters`` with a one-line error (the request still succeeds:
nothing is lost, the bad lines wait there for a fix and a replay). A lake failure answers ``503``
and the shipper retries.

Delivery: **at least once** by default (a response lost after the commit makes the shipper send
the lines again). A shipper that numbers its requests gets **exactly once**: ``X-Shoal-Source``
(a stable name, e.g. host/app) and ``X-Shoal-Seq`` (an integer that grows with each new request of
that source; a retry repeats it). The highest sequence number of each source is written as a
Delta ``txn`` key *in the same commit as the lines* (:mod:`shoal.lake.progress`), so a request
whose number the table already holds is answered ``{"duplicate": true}`` without writing.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from shoal.ingest.buffer import DeadRecord
from shoal.ingest.dead_letter import DEAD_LETTER_SCHEMA, dead_letter_table
from shoal.ingest.push import PushBuffer, PushPolicy
from shoal.lake import Lake, Progress, progress
from shoal.logs.lines import LineConverter
from shoal.logs.schema import DEAD_LETTERS, ensure_tables

log = logging.getLogger(__name__)

PIPELINE = "logs-http"
_SOURCE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,199}$")


def http_source_key(source: str) -> str:
    """The progress key of a numbered HTTP source (its last committed ``X-Shoal-Seq``)."""
    return progress.generated("logs:http", source)


class ReceiverConfig(BaseModel):
    """Buffering of the receiver. Frozen."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_batch_lines: int = Field(50_000, ge=1)
    max_batch_delay_s: float = Field(1.0, ge=0)
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1)
    #: attempts of one flush on transient lake errors before failing its requests (503)
    write_attempts: int = Field(3, ge=1)
    #: errors listed per response (the dead-letter table has them all)
    max_errors_shown: int = Field(5, ge=0)


@dataclass
class _Request:
    lines: list[bytes]
    source: str | None
    seq: int | None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])


@dataclass
class FlushStats:
    flushes: int = 0
    lines: int = 0
    dead_letters: int = 0
    duplicates: int = 0


class LogWriter:
    """Commits a flush: dead letters first, then lines, each with the sources' sequence numbers."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        self.lines = ensure_tables(lake)
        self.converter = LineConverter()

    def close(self) -> None:
        self.converter.close()

    def write(self, requests: list[_Request]) -> list[dict[str, Any]]:
        """One result per request (called in a worker thread, one flush at a time)."""
        txns: dict[str, int] = {}
        for r in requests:
            if r.source is not None and r.seq is not None:
                key = http_source_key(r.source)
                txns[key] = max(txns.get(key, -1), r.seq)
        done = Progress.read(self.lines, txns)
        dead_t = self.lake.find(DEAD_LETTERS)
        dead_done = Progress.read(dead_t, txns)

        def applied(r: _Request, prog: Progress) -> bool:
            if r.source is None or r.seq is None:
                return False
            have = prog.position(http_source_key(r.source))
            return have is not None and have >= r.seq

        now = datetime.now(UTC)
        # a retry that arrives while its first attempt is still pending is in the same flush
        seen: set[tuple[str, int]] = set()
        duplicate: list[bool] = []
        for r in requests:
            ident = (r.source, r.seq) if r.source is not None and r.seq is not None else None
            duplicate.append(applied(r, done) or (ident is not None and ident in seen))
            if ident is not None:
                seen.add(ident)
        todo = [r for r, dup in zip(requests, duplicate, strict=True) if not dup]
        lines: list[bytes] = []
        ids: list[str] = []
        owner: list[int] = []  # the request (index in todo) of each line
        starts: list[int] = []  # the index of each request's first line
        for n, r in enumerate(todo):
            numbered = r.source is not None and r.seq is not None
            base = f"http:{r.source}:{r.seq}" if numbered else f"http:{r.request_id}"
            starts.append(len(lines))
            for i, line in enumerate(r.lines):
                lines.append(line)
                ids.append(f"{base}:{i}")
                owner.append(n)
        conv = self.converter.convert(lines, ids, now)
        results: list[dict[str, Any]] = [
            {"accepted": 0, "dead_lettered": 0, "errors": [], "duplicate": False} for _ in todo
        ]
        dead: list[DeadRecord] = []
        for b in conv.bad:
            n = owner[b.index]
            r, res, line_no = todo[n], results[n], b.index - starts[n]
            res["dead_lettered"] += 1
            if len(res["errors"]) < 20:
                res["errors"].append(f"line {line_no + 1}: {b.message}")
            if applied(r, dead_done):
                continue  # an earlier attempt committed this request's dead letters already
            dead.append(
                DeadRecord(
                    topic=f"http:{r.source or '-'}",
                    partition=0,
                    offset=line_no,
                    timestamp_ms=int(now.timestamp() * 1000),
                    key=ids[b.index].encode(),
                    value=lines[b.index],
                    headers=(("request", r.request_id.encode()),),
                    error_class=b.error_class,
                    error_message=b.message,
                )
            )
        for i in conv.indices:
            results[owner[i]]["accepted"] += 1
        # dead letters first, then lines (as the ingest sink does): a crash between the two
        # commits is redone without writing a dead letter twice
        if dead:
            table = dead_t or self.lake.create_table(
                DEAD_LETTERS, DEAD_LETTER_SCHEMA, description="log lines that could not be ingested"
            )
            table.append(
                dead_letter_table(dead, PIPELINE, now), app_transactions=dead_done.advancing(txns) or None
            )
        lines_txns = done.advancing(txns)
        if conv.rows.num_rows or lines_txns:
            self.lines.append(conv.rows, app_transactions=lines_txns or None)
        out: list[dict[str, Any]] = []
        fresh = iter(results)
        for dup in duplicate:
            if dup:
                out.append({"accepted": 0, "dead_lettered": 0, "errors": [], "duplicate": True})
            else:
                out.append(next(fresh))
        return out


class LogReceiver:
    """Requests through the ingest stage's push buffer (:mod:`shoal.ingest.push`): committed in
    flushes, :meth:`submit` answers once the flush holding the request is in the lake."""

    def __init__(self, writer: LogWriter, config: ReceiverConfig | None = None) -> None:
        self.writer = writer
        self.config = config or ReceiverConfig()
        self.stats = FlushStats()
        policy = PushPolicy(
            max_items=self.config.max_batch_lines,
            max_delay_s=self.config.max_batch_delay_s,
            write_attempts=self.config.write_attempts,
        )
        self._buffer: PushBuffer[_Request, dict[str, Any]] = PushBuffer(
            self._write, policy, name="logs", size=lambda r: len(r.lines)
        )

    async def start(self) -> None:
        await self._buffer.start()

    async def stop(self) -> None:
        """Flush what is pending, then stop the flusher."""
        await self._buffer.stop()
        self.writer.close()

    async def submit(self, lines: list[bytes], source: str | None, seq: int | None) -> dict[str, Any]:
        result = await self._buffer.submit(_Request(lines, source, seq))
        return {**result, "errors": result["errors"][: self.config.max_errors_shown]}

    def _write(self, batch: list[_Request]) -> list[dict[str, Any]]:
        results = self.writer.write(batch)
        self.stats.flushes += 1
        for res in results:
            self.stats.lines += res["accepted"]
            self.stats.dead_letters += res["dead_lettered"]
            self.stats.duplicates += int(res["duplicate"])
        return results


def _parse_headers(request: Request) -> tuple[str | None, int | None]:
    source = request.headers.get("x-shoal-source")
    seq_text = request.headers.get("x-shoal-seq")
    if (source is None) != (seq_text is None):
        raise ValueError("send both X-Shoal-Source and X-Shoal-Seq (exactly once) or neither (at least once)")
    if source is None or seq_text is None:
        return None, None
    if not _SOURCE_RE.match(source):
        raise ValueError(f"X-Shoal-Source {source[:60]!r}: use letters, digits and _.:/@- (at most 200)")
    try:
        seq = int(seq_text)
    except ValueError:
        raise ValueError(f"X-Shoal-Seq {seq_text[:30]!r} is not an integer") from None
    if seq < 0:
        raise ValueError(f"X-Shoal-Seq {seq} is negative")
    return source, seq


def create_app(receiver: LogReceiver) -> FastAPI:
    """The ASGI app: ``POST /v1/logs`` (JSON lines) and ``GET /healthz``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await receiver.start()
        try:
            yield
        finally:
            await receiver.stop()

    app = FastAPI(title="shoal logs receiver", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.post("/v1/logs", response_model=None)
    async def post_logs(request: Request) -> JSONResponse | PlainTextResponse:
        body = await request.body()
        if len(body) > receiver.config.max_body_bytes:
            return PlainTextResponse(
                f"body of {len(body)} bytes exceeds {receiver.config.max_body_bytes}\n", status_code=413
            )
        try:
            source, seq = _parse_headers(request)
        except ValueError as err:
            return PlainTextResponse(f"{err}\n", status_code=400)
        lines = [ln for ln in body.split(b"\n") if ln.strip()]
        if not lines:
            return JSONResponse({"accepted": 0, "dead_lettered": 0, "errors": [], "duplicate": False})
        try:
            result = await receiver.submit(lines, source, seq)
        except Exception as err:
            line = str(err).splitlines()[0] if str(err) else type(err).__name__
            log.warning("logs flush failed", extra={"detail": line})
            return PlainTextResponse(f"write to lake failed: {line}\n", status_code=503)
        return JSONResponse(result)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        s = receiver.stats
        return {"ok": True, "flushes": s.flushes, "lines": s.lines, "dead_letters": s.dead_letters}

    return app


def serve(
    lake: Lake,
    *,
    host: str = "127.0.0.1",
    port: int = 9300,
    config: ReceiverConfig | None = None,
    log_level: str = "warning",
) -> None:
    """Run the receiver with uvicorn until interrupted (pending lines are committed on exit)."""
    import uvicorn

    uvicorn.run(create_app(LogReceiver(LogWriter(lake), config)), host=host, port=port, log_level=log_level)

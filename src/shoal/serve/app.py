"""The HTTP API (FastAPI, ADR 0010): ``/v1/...`` with an OpenAPI document at ``/v1/openapi.json``.

Authentication is ``Authorization: Bearer <token>`` on every ``/v1`` route but ``/v1/health``.
Status codes: 401 no/invalid/revoked token; 403 a refused query or a table not granted (the message
names it); 404 an unknown table; 400 a query the engine rejects; 413 a result past the limits;
503 every query slot busy (with ``Retry-After``); 504 a query past its timeout.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Generator, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shoal.errors import NotFoundError, ShoalError
from shoal.jsonsafe import to_jsonable
from shoal.query import QueryError
from shoal.query.guard import DeniedTable, RefusedQuery, UnknownTable
from shoal.serve.catalog import freshness as table_freshness
from shoal.serve.catalog import table_detail, table_summary
from shoal.serve.encode import MEDIA_TYPES, Format, encode_arrow, encode_csv, encode_json
from shoal.serve.executor import QueryCancelled, QueryTimeout, Result, ResultTooLarge, ServerBusy
from shoal.serve.metrics import ServerMetrics
from shoal.serve.pipelines import pipelines_status
from shoal.serve.state import ServeState
from shoal.serve.tokens import Token, Unauthorized
from shoal.status.collect import collect_status

API_VERSION = "v1"
#: a result whose encoding fits in this many bytes is sent as one response, encoded on the thread
#: that ran the query (one hop to a worker thread in all); a larger one streams batch by batch
PREFETCH_BYTES = 256 * 1024
#: the dashboard (ADR 0022): static files only; every number it shows comes from /v1 with the user's token
STATIC_DIR = Path(__file__).with_name("static")
#: the dashboard loads nothing from elsewhere and runs no inline script
DASHBOARD_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self'; frame-ancestors 'none'"
)

_STATUS: list[tuple[type[BaseException], int]] = [
    (Unauthorized, 401),
    (DeniedTable, 403),
    (RefusedQuery, 403),
    (UnknownTable, 404),
    (NotFoundError, 404),
    (QueryError, 400),
    (ResultTooLarge, 413),
    (ServerBusy, 503),
    (QueryTimeout, 504),
    (QueryCancelled, 499),
]


def status_of(exc: BaseException) -> int:
    return next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sql: str = Field(..., description="one read-only query (SELECT / WITH / VALUES)", max_length=100_000)
    params: list[Any] | None = Field(None, description="values for ? or $1 placeholders")
    format: Format | None = Field(None, description="json (default), csv or arrow (Arrow IPC stream)")


def _error(exc: BaseException) -> JSONResponse:
    status = status_of(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if status == 503:
        headers["Retry-After"] = "1"
    return JSONResponse(
        {"error": {"type": type(exc).__name__, "message": str(exc)}}, status_code=status, headers=headers
    )


def _format_from(requested: Format | None, accept: str | None) -> Format:
    if requested is not None:
        return requested
    accept = (accept or "").lower()
    if "arrow" in accept:
        return Format.arrow
    if "text/csv" in accept:
        return Format.csv
    return Format.json


class ClosingStreamingResponse(StreamingResponse):
    """A streaming response that always closes its body: Starlette stops iterating a body whose
    client went away but leaves it open, which would leave the query running (and its slot taken)."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                await close()


class MeasureRequests:
    """Requests and latency (to the response's first bytes) per route on ``/metrics``.

    A plain ASGI middleware: Starlette's ``@app.middleware("http")`` runs every request through
    a task group and memory streams, which cost more than a small query's whole HTTP handling.
    """

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def measured(message: Message) -> None:
            if message["type"] == "http.response.start":
                route = getattr(scope.get("route"), "path", "unmatched")
                self.metrics.requests.labels(scope["method"], route, str(message["status"])).inc()
                self.metrics.latency.labels(route).observe(time.perf_counter() - started)
            await send(message)

        await self.app(scope, receive, measured)


def _encoder(fmt: Format, result: Result) -> Generator[bytes, None, None]:
    if fmt is Format.json:
        return encode_json(result.schema, result.batches(), lambda: result.rows)
    if fmt is Format.csv:
        return encode_csv(result.schema, result.batches())
    return encode_arrow(result.schema, result.batches())


def _prefetch(chunks: Iterator[bytes], limit: int) -> tuple[list[bytes], bool]:
    """The chunks of ``chunks`` up to ``limit`` bytes (or all), and whether more may follow."""
    head: list[bytes] = []
    size = 0
    for chunk in chunks:
        head.append(chunk)
        size += len(chunk)
        if size >= limit:
            return head, True
    return head, False


async def _caller(request: Request, authorization: Annotated[str | None, Header()] = None) -> Token:
    """The token of ``Authorization: Bearer <token>``; 401 without a valid one. Async on purpose:
    FastAPI runs a plain function dependency on a worker thread, a hop that costs more than the
    lookup (a dict and one stat of the token file)."""
    state: ServeState = request.app.state.shoal
    token = None
    if authorization:
        scheme, _, value = authorization.partition(" ")
        token = value.strip() if scheme.lower() == "bearer" else None
    return state.tokens.authenticate(token)


Caller = Annotated[Token, Depends(_caller)]


def create_app(state: ServeState) -> FastAPI:
    app = FastAPI(
        title="shoal",
        version=API_VERSION,
        description="SQL over the lake: tables, schemas, freshness, lineage and queries.",
        openapi_url=f"/{API_VERSION}/openapi.json",
        docs_url=f"/{API_VERSION}/docs",
        redoc_url=None,
    )
    app.state.shoal = state
    metrics = state.metrics

    @app.exception_handler(ShoalError)
    async def _shoal_error(request: Request, exc: ShoalError) -> JSONResponse:
        return _error(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes the input back, which fails on bytes that are not UTF-8
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in exc.errors()
        ]
        return JSONResponse(
            {"error": {"type": "InvalidRequest", "message": "; ".join(problems)[:2000]}}, status_code=422
        )

    app.add_middleware(MeasureRequests, metrics=metrics)

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(
            STATIC_DIR / "index.html",
            headers={"Content-Security-Policy": DASHBOARD_CSP, "Cache-Control": "no-cache"},
        )

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get(f"/{API_VERSION}/health", tags=["server"])
    def health() -> dict[str, Any]:
        """Liveness and what the server holds (no token needed)."""
        return {"status": "ok", "running_queries": state.executor.running, "api": API_VERSION}

    @app.get("/metrics", tags=["server"], include_in_schema=False)
    def prometheus() -> Response:
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get(f"/{API_VERSION}/tables", tags=["catalog"])
    def tables(token: Caller, freshness: bool = False) -> dict[str, Any]:
        """The tables the token may read, with size and last commit (``?freshness=true``: and the
        age of each one's newest data, as in ``/v1/tables/{name}``)."""
        lake = state.project.lake
        out = []
        for name in state.executor.known_tables():
            if token.access.can_read(name):
                info = lake.describe(name)
                summary = table_summary(info)
                if freshness:
                    summary["freshness"] = table_freshness(lake, info)
                out.append(to_jsonable(summary))
        return {"tables": out}

    @app.get(f"/{API_VERSION}/tables/{{name}}", tags=["catalog"])
    def table(name: str, token: Caller) -> dict[str, Any]:
        """One table: schema, owner, source, partitioning, size, last commit, freshness, lineage."""
        known = state.executor.known_tables()
        if name not in known:
            raise UnknownTable(f"unknown table {name}")
        if not token.access.can_read(name):
            raise DeniedTable(name)
        masked = state.executor.sandbox(token.access).masked.get(name, frozenset())
        info = state.project.lake.describe(name)
        return dict(to_jsonable(table_detail(state.project.lake, info, masked)))

    @app.get(f"/{API_VERSION}/pipelines", tags=["catalog"])
    async def pipelines(token: Caller) -> dict[str, Any]:
        """The pipelines whose table the token may read: committed offsets, lag per partition (when
        the broker answers), throughput and dead letters."""
        found = await run_in_threadpool(pipelines_status, state.project, token.access)
        return {"pipelines": to_jsonable(found)}

    @app.get(f"/{API_VERSION}/status", tags=["catalog"])
    async def status(token: Caller) -> dict[str, Any]:
        """``shoal status`` as JSON: pipelines, models and tables the token may read, worst first;
        for admins also the children of ``shoal up`` and the maintenance jobs."""
        admin = token.access.namespaces is None
        found = await run_in_threadpool(
            lambda: collect_status(state.project, can_read=token.access.can_read, admin=admin)
        )
        return dict(to_jsonable(found))

    async def run(token: Token, sql: str, params: list[Any] | None, fmt: Format) -> Response:
        release = await state.gate.acquire()

        def start() -> tuple[Result, list[bytes], Generator[bytes, None, None] | None, ExitStack | None]:
            """Start the query and encode its first chunks on one worker thread: a result that
            fits ``PREFETCH_BYTES`` is finished (and logged) here and goes out as one response."""
            with ExitStack() as stack:
                stack.callback(release)
                result = stack.enter_context(state.executor.query(token, sql, params))
                chunks = _encoder(fmt, result)
                stack.callback(chunks.close)
                head, more = _prefetch(chunks, PREFETCH_BYTES)
                if not more:
                    return result, head, None, None
                return result, head, chunks, stack.pop_all()

        try:
            result, head, chunks, stack = await run_in_threadpool(start)
        except BaseException:
            release()  # idempotent: also released by the stack when the query failed to start
            raise
        headers = {"X-Shoal-Columns": ",".join(result.schema.names)[:4000]}
        if chunks is None or stack is None:
            return Response(b"".join(head), media_type=MEDIA_TYPES[fmt], headers=headers)
        rest, finish = chunks, stack

        async def body() -> AsyncIterator[bytes]:
            done = False
            try:
                for first in head:
                    yield first
                while True:
                    chunk = await anyio.to_thread.run_sync(next, rest, None)
                    if chunk is None:
                        break
                    yield chunk
                done = True
            finally:
                if not done:
                    result.cancel()  # the client went away (or the stream failed): stop the engine
                finish.close()

        return ClosingStreamingResponse(body(), media_type=MEDIA_TYPES[fmt], headers=headers)

    @app.post(f"/{API_VERSION}/query", tags=["query"])
    async def query_post(
        request_body: QueryRequest, token: Caller, accept: Annotated[str | None, Header()] = None
    ) -> Response:
        """Run one read-only query; the result streams as JSON, CSV or Arrow IPC."""
        fmt = _format_from(request_body.format, accept)
        return await run(token, request_body.sql, request_body.params, fmt)

    @app.get(f"/{API_VERSION}/query", tags=["query"])
    async def query_get(
        token: Caller,
        sql: Annotated[str, Query(max_length=100_000)],
        format: Format | None = None,
        accept: Annotated[str | None, Header()] = None,
    ) -> Response:
        """The same as POST, for links and curl: ``/v1/query?sql=...&format=csv``."""
        return await run(token, sql, None, _format_from(format, accept))

    return app

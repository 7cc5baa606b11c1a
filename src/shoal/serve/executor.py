"""Runs served queries: guard, sandbox per access profile, limits, queue, cancellation, log.

Both front doors (HTTP API and Postgres wire protocol) run SQL through :meth:`Executor.query`:

1. the token's access profile picks (or builds) its locked-down engine (:class:`Sandbox`);
2. the SQL is checked by the parser-level guard against that profile's tables;
3. a slot is taken from the concurrency limit (waiting in a queue up to ``queue_timeout_s``);
4. the query runs on its own cursor; a timer interrupts it after ``timeout_s``, and so does
   :meth:`Result.cancel` (a client that disconnected);
5. results stream as Arrow record batches; past ``max_rows``/``max_bytes`` the stream stops with
   an error instead of holding the whole result in memory;
6. the outcome goes to the query log with the token id, duration and rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from shoal.config.settings import ServeLimits
from shoal.errors import ShoalError, Terminal, Transient
from shoal.lake import Lake
from shoal.query import Connection, QueryError
from shoal.query.engine import _query_error, connect_lake
from shoal.query.federation import Endpoint, attach_all
from shoal.query.guard import CheckedQuery, DeniedTable, RefusedQuery, UnknownTable, check_query
from shoal.query.sandbox import Access, Sandbox
from shoal.serve.querylog import Entry, QueryLog, now
from shoal.serve.tokens import Token

log = logging.getLogger(__name__)

BATCH_ROWS = 10_000
#: how often the set of lake tables (and their personal-data marks) is checked for changes
REFRESH_EVERY_S = 2.0
#: from this age on, the catalog is re-read in the background while requests use the current one
REFRESH_AHEAD_S = 1.5
#: accepted queries remembered by the guard's cache (see Executor.check), and the longest one kept
CHECK_CACHE_SIZE = 512
CHECK_CACHE_MAX_SQL = 8_000

#: the served tables and their personal-data columns
Signature = tuple[tuple[str, tuple[str, ...]], ...]
#: the guard's inputs: SQL, access profile, served catalog, the sandbox's tables (lake and databases)
CheckKey = tuple[str, Access, Signature, frozenset[str]]


class QueryTimeout(ShoalError, Transient):
    """A served query ran past ``serve.limits.timeout_s`` and was interrupted."""


class QueryCancelled(ShoalError, Terminal):
    """The client went away; its query was interrupted."""


class ServerBusy(ShoalError, Transient):
    """Every query slot stayed busy for ``serve.limits.queue_timeout_s``."""


class ResultTooLarge(ShoalError, Terminal):
    """A result passed ``serve.limits.max_rows`` or ``max_bytes``."""


def outcome_of(exc: BaseException | None) -> str:
    if exc is None:
        return "ok"
    return {
        RefusedQuery: "refused",
        DeniedTable: "denied",
        UnknownTable: "error",
        QueryTimeout: "timeout",
        QueryCancelled: "cancelled",
        ServerBusy: "busy",
        ResultTooLarge: "too_large",
    }.get(type(exc), "error")


@dataclass
class _Profile:
    sandbox: Sandbox
    signature: Signature
    checked_at: float


class Result:
    """A running query: its schema, then its batches (each at most ``BATCH_ROWS`` rows)."""

    def __init__(self, cursor: duckdb.DuckDBPyConnection, limits: ServeLimits):
        self._reader: pa.RecordBatchReader | None = None
        self._cursor = cursor
        self._limits = limits
        self.rows = 0
        self.bytes = 0
        self.cancelled = False
        self.timed_out = False
        #: the error that ended the stream early, if any (for the query log)
        self.error: ShoalError | None = None

    def _start(self, sql: str, params: Sequence[Any] | None) -> None:
        try:
            self._cursor.execute(sql, list(params) if params else None)
            self._reader = self._cursor.to_arrow_reader(BATCH_ROWS)
        except duckdb.Error as exc:
            raise self._interrupted(exc) from exc

    @property
    def schema(self) -> pa.Schema:
        assert self._reader is not None
        return self._reader.schema

    def batches(self) -> Iterator[pa.RecordBatch]:
        try:
            yield from self._batches()
        except ShoalError as exc:
            self.error = exc
            raise

    def _batches(self) -> Iterator[pa.RecordBatch]:
        assert self._reader is not None
        while True:
            try:
                batch = self._reader.read_next_batch()
            except StopIteration:
                return
            except (duckdb.Error, pa.ArrowException, OSError) as exc:
                # pyarrow re-raises an engine error met while reading a batch as OSError
                raise self._interrupted(exc) from exc
            self.rows += batch.num_rows
            self.bytes += batch.nbytes
            if self.rows > self._limits.max_rows:
                raise ResultTooLarge(
                    f"result has more than {self._limits.max_rows} rows (serve.limits.max_rows): "
                    "add a LIMIT or aggregate"
                )
            if self.bytes > self._limits.max_bytes:
                raise ResultTooLarge(
                    f"result is larger than {self._limits.max_bytes} bytes (serve.limits.max_bytes): "
                    "select fewer columns or rows"
                )
            yield batch

    def _interrupted(self, exc: BaseException) -> ShoalError:
        if self.timed_out:
            return QueryTimeout(
                f"query ran longer than {self._limits.timeout_s:g} s (serve.limits.timeout_s)"
            )
        if self.cancelled:
            return QueryCancelled("query cancelled (client request or disconnect)")
        if isinstance(exc, duckdb.Error):
            return _query_error(exc)
        return QueryError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    def close(self) -> None:
        """Release the cursor (a cursor left to the garbage collector can outlive its database)."""
        with suppress(duckdb.Error):
            self._cursor.close()

    def cancel(self) -> None:
        """Interrupt the query (from any thread): a client that disconnected."""
        self.cancelled = True
        with contextlib.suppress(duckdb.Error):
            self._cursor.interrupt()

    def _timeout(self) -> None:
        self.timed_out = True
        self._cursor.interrupt()


class Deadlines:
    """One thread that calls each registered callback at its deadline unless it was cancelled first
    (query timeouts: a ``threading.Timer`` per query started and joined a thread per query)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._pending: dict[int, Callable[[], None]] = {}
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._closed = False

    def add(self, seconds: float, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` in ``seconds``; returns the cancel function."""
        key = next(self._seq)
        with self._cond:
            self._pending[key] = callback
            heapq.heappush(self._heap, (time.monotonic() + seconds, key))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="shoal-query-deadlines", daemon=True)
                self._thread.start()
            if self._heap[0][1] == key:
                self._cond.notify()

        def cancel() -> None:
            with self._cond:
                self._pending.pop(key, None)

        return cancel

    def _due(self) -> list[Callable[[], None]]:
        """Wait for the next deadline (under the lock); the callbacks due, [] once closed."""
        while not self._closed:
            while self._heap and self._heap[0][1] not in self._pending:
                heapq.heappop(self._heap)  # cancelled
            if not self._heap:
                self._cond.wait()
                continue
            wait = self._heap[0][0] - time.monotonic()
            if wait > 0:
                self._cond.wait(wait)
                continue
            due = []
            while self._heap and self._heap[0][0] <= time.monotonic():
                _, key = heapq.heappop(self._heap)
                callback = self._pending.pop(key, None)
                if callback is not None:
                    due.append(callback)
            return due
        return []

    def _run(self) -> None:
        while True:
            with self._cond:
                due = self._due()
                if self._closed:
                    return
            for callback in due:
                with contextlib.suppress(Exception):
                    callback()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._pending.clear()
            self._cond.notify()


class SlotGate:
    """The query slots as seen from the event loop: a request waits here, on the loop, not on a
    worker thread (threads waiting for a slot would starve the running queries of the threads
    they stream with). ``acquire`` returns a release callable that is safe from any thread."""

    def __init__(self, limits: ServeLimits) -> None:
        self.limits = limits
        self._sem: asyncio.Semaphore | None = None

    async def acquire(self) -> Callable[[], None]:
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.limits.max_concurrent)
        sem = self._sem
        try:
            await asyncio.wait_for(sem.acquire(), self.limits.queue_timeout_s or None)
        except TimeoutError:
            raise ServerBusy(
                f"all {self.limits.max_concurrent} query slots stayed busy for "
                f"{self.limits.queue_timeout_s:g} s: retry later"
            ) from None
        loop = asyncio.get_running_loop()
        released = threading.Event()

        def release() -> None:
            if not released.is_set():
                released.set()
                loop.call_soon_threadsafe(sem.release)

        return release


class _Known(Collection[str]):
    """The served tables as the guard sees them: the lake's, and every ``NAME.table`` of a declared
    database, whichever tables it holds, so a caller not granted NAME is told it is not granted
    (403 naming the table) without learning which tables exist there."""

    def __init__(self, tables: set[str] | frozenset[str], databases: Sequence[Endpoint]) -> None:
        self._tables = frozenset(tables)
        self._databases = frozenset(ep.name.lower() for ep in databases)

    def __contains__(self, name: object) -> bool:
        return name in self._tables or (isinstance(name, str) and name.split(".", 1)[0] in self._databases)

    def __iter__(self) -> Iterator[str]:
        return iter(self._tables)

    def __len__(self) -> int:
        return len(self._tables)


class Executor:
    """The serving engine of one project: sandboxes per access profile, limits and the query log."""

    def __init__(
        self,
        lake: Lake,
        limits: ServeLimits,
        *,
        salt: Callable[[], str],
        query_log: QueryLog | None = None,
        connect: Callable[[], Connection] | None = None,
        on_outcome: Callable[[str, str, float], None] | None = None,
        databases: Sequence[Endpoint] = (),
    ) -> None:
        self.lake = lake
        #: the project's declared databases, served live under their names to whoever is granted
        #: the name as a namespace (each sandbox attaches only its granted ones)
        self.databases = tuple(databases)
        self._on_outcome = on_outcome
        self.limits = limits
        self._salt = salt
        self.query_log = query_log
        self._connect = connect
        self._slots = threading.BoundedSemaphore(limits.max_concurrent)
        self._profiles: dict[Access, _Profile] = {}
        self._lock = threading.Lock()
        self._running = 0
        self._running_lock = threading.Lock()
        self._catalog: tuple[float, Signature] | None = None
        self._refreshing = False
        self._deadlines = Deadlines()
        self._checked: OrderedDict[CheckKey, CheckedQuery] = OrderedDict()

    # -- catalog and sandboxes ------------------------------------------------------------------------
    def _signature(self) -> Signature:
        """The served tables and their personal-data columns, never older than REFRESH_EVERY_S.
        Past REFRESH_AHEAD_S a background thread re-reads them (listing the lake takes 10-30 ms,
        which a request would otherwise wait for, holding the engines' lock); only a catalog older
        than REFRESH_EVERY_S (an idle server) is re-read on the request's own time."""
        cached = self._catalog
        age = time.monotonic() - cached[0] if cached is not None else REFRESH_EVERY_S
        if cached is not None and age < min(REFRESH_AHEAD_S, REFRESH_EVERY_S):
            return cached[1]
        if cached is not None and age < REFRESH_EVERY_S:
            self._refresh_in_background()
            return cached[1]
        return self._read_catalog()

    def _read_catalog(self) -> Signature:
        started = time.monotonic()  # the catalog is as old as the moment its reading began
        sig = tuple((t, tuple(self.lake.pii_columns(t))) for t in sorted(self.lake.table_names()))
        self._catalog = (started, sig)
        return sig

    def _refresh_in_background(self) -> None:
        with self._running_lock:
            if self._refreshing:
                return
            self._refreshing = True

        def refresh() -> None:
            try:
                self._read_catalog()
            except Exception as exc:  # the next request past REFRESH_EVERY_S reads it and reports
                log.warning("served catalog: could not re-read the lake's tables: %s", exc)
            finally:
                self._refreshing = False

        threading.Thread(target=refresh, name="shoal-serve-catalog", daemon=True).start()

    def sandbox(self, access: Access) -> Sandbox:
        with self._lock:
            sig = self._signature()
            profile = self._profiles.get(access)
            if profile is not None and profile.signature == sig:
                return profile.sandbox
            sandbox = Sandbox(
                self.lake,
                access,
                pii_columns=dict(sig),
                salt=self._salt(),
                threads=self.limits.threads,
                memory_limit=self.limits.memory_limit,
                connect=self._connect or self._federated(access),
            )
            # The old engine is not closed here: queries may still stream from it; it goes with them.
            self._profiles[access] = _Profile(sandbox, sig, time.monotonic())
            return sandbox

    def _federated(self, access: Access) -> Callable[[], Connection] | None:
        """How to open ``access``'s engine with its granted databases attached (None: none)."""
        granted = [ep for ep in self.databases if access.can_read(f"{ep.name}.x")]
        if not granted:
            return None  # a lake-only engine: no scanner extension loaded at all

        def connect() -> Connection:
            con = connect_lake(self.lake, threads=self.limits.threads, memory_limit=self.limits.memory_limit)
            attach_all(con, granted)  # one that does not answer is left out, named in its errors
            return con

        return connect

    def known_tables(self) -> list[str]:
        return [t for t, _ in self._signature()]

    def check(self, token: Token, sql: str, sandbox: Sandbox | None = None) -> CheckedQuery:
        """The guard's verdict on ``sql`` for this token. Accepted queries are remembered per access
        profile and served catalog (the check is a pure function of the three, and parsing is most of
        a small query's cost; dashboards and BI tools send the same text again and again)."""
        box = sandbox or self.sandbox(token.access)
        sig = self._signature()
        key = (sql, token.access, sig, box.tables | box.database_tables)
        with self._lock:
            found = self._checked.get(key)
            if found is not None:
                self._checked.move_to_end(key)
                return found
        known = _Known({t for t, _ in sig} | box.tables | box.database_tables, self.databases)
        checked = check_query(sql, granted=token.access.can_read, known=known, pg_compat=True)
        if len(sql) <= CHECK_CACHE_MAX_SQL:
            with self._lock:
                self._checked[key] = checked
                if len(self._checked) > CHECK_CACHE_SIZE:
                    self._checked.popitem(last=False)
        return checked

    def warm_up(self) -> None:
        """Load the parser's dialects now (sqlglot imports them on first use, about a second),
        not on the first served query."""
        check_query("SELECT 1", granted=lambda _name: False, known=(), pg_compat=True)

    @property
    def running(self) -> int:
        return self._running

    # -- running ----------------------------------------------------------------------------------------
    @contextmanager
    def query(
        self,
        token: Token,
        sql: str,
        params: Sequence[Any] | None = None,
        *,
        protocol: str = "http",
        on_start: Callable[[Result], None] | None = None,
    ) -> Iterator[Result]:
        """Run ``sql`` for ``token``; the Result streams inside the block. Logs the outcome."""
        started = time.perf_counter()
        result: Result | None = None
        error: BaseException | None = None
        slot = False
        cancel_timeout: Callable[[], None] | None = None
        running: Result | None = None
        try:
            sandbox = self.sandbox(token.access)
            checked = self.check(token, sql, sandbox)
            if not self._slots.acquire(timeout=self.limits.queue_timeout_s):
                raise ServerBusy(
                    f"all {self.limits.max_concurrent} query slots stayed busy for "
                    f"{self.limits.queue_timeout_s:g} s: retry later"
                )
            slot = True
            with self._running_lock:
                self._running += 1
            running = Result(sandbox.cursor(), self.limits)
            cancel_timeout = self._deadlines.add(self.limits.timeout_s, running._timeout)
            if on_start is not None:
                on_start(running)  # e.g. a wire connection, so a CancelRequest can reach it
            running._start(checked.sql, params)
            result = running
            yield result
        except BaseException as exc:
            error = exc
            raise
        finally:
            if cancel_timeout is not None:
                cancel_timeout()
            if running is not None:
                running.close()
            if slot:
                with self._running_lock:
                    self._running -= 1
                self._slots.release()
            self._log(token=token, sql=sql, protocol=protocol, started=started, result=result, error=error)

    def _log(
        self,
        *,
        token: Token,
        sql: str,
        protocol: str,
        started: float,
        result: Result | None,
        error: BaseException | None,
    ) -> None:
        if isinstance(error, GeneratorExit):
            error = QueryCancelled("client went away")
        if error is None and result is not None:
            error = result.error or (QueryCancelled("client went away") if result.cancelled else None)
        seconds = time.perf_counter() - started
        if self._on_outcome is not None:
            self._on_outcome(protocol, outcome_of(error), seconds)
        if self.query_log is None:
            return
        self.query_log.record(
            Entry(
                ts=now(),
                token_id=token.id,
                token_name=token.name,
                protocol=protocol,
                query=sql,
                duration_ms=seconds * 1000,
                rows=result.rows if result is not None else 0,
                outcome=outcome_of(error),
                error=str(error).splitlines()[0] if error is not None and str(error) else "",
            )
        )

    def close(self) -> None:
        self._deadlines.close()
        with self._lock:
            for profile in self._profiles.values():
                profile.sandbox.close()
            self._profiles.clear()

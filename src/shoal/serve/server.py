"""``shoal serve``: the HTTP API and the Postgres wire listener in one process, one event loop."""

from __future__ import annotations

import asyncio
import signal
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import anyio.to_thread
import uvicorn

from shoal.config.settings import ServeSettings
from shoal.errors import ConfigError
from shoal.project import Project
from shoal.serve.app import create_app
from shoal.serve.state import ServeState


def ssl_context(settings: ServeSettings) -> ssl.SSLContext | None:
    if not settings.tls_cert and not settings.tls_key:
        return None
    if not (settings.tls_cert and settings.tls_key):
        raise ConfigError("serve: tls_cert and tls_key go together (got only one)")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(settings.tls_cert, settings.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"serve: cannot load TLS certificate {settings.tls_cert}: {exc}") from exc
    return ctx


class Server:
    """One serving process: ``await run()`` until :meth:`stop` (or Ctrl-C through uvicorn)."""

    def __init__(self, project: Project, settings: ServeSettings, *, log_flush_s: float = 5.0) -> None:
        self.project = project
        self.settings = settings
        self.log_flush_s = log_flush_s
        self.ready = threading.Event()
        self._http: uvicorn.Server | None = None
        self.state: ServeState | None = None

    async def run(self) -> None:
        settings = self.settings
        tls = ssl_context(settings)
        with ServeState(self.project, settings, log_flush_s=self.log_flush_s) as state:
            self.state = state
            # anyio's worker-thread limit bounds blocking work (query batches, catalog reads).
            anyio.to_thread.current_default_thread_limiter().total_tokens = max(8, settings.workers * 8)
            config = uvicorn.Config(
                create_app(state),
                host=settings.host,
                port=settings.port,
                log_level="warning",
                access_log=False,
                ssl_certfile=settings.tls_cert,
                ssl_keyfile=settings.tls_key,
                lifespan="off",
            )
            self._http = uvicorn.Server(config)
            wire = None
            if settings.pg_port is not None:
                from shoal.serve.wire import start_wire_server

                wire = await start_wire_server(state, settings.host, settings.pg_port, tls)
            try:
                serving = asyncio.ensure_future(self._http.serve())
                while not self._http.started and not serving.done():
                    await asyncio.sleep(0.02)
                self.ready.set()
                await serving
            finally:
                if wire is not None:
                    wire.close()
                    await wire.wait_closed()

    def stop(self) -> None:
        if self._http is not None:
            self._http.should_exit = True


def serve(project: Project, settings: ServeSettings) -> None:
    # uvicorn re-raises a captured SIGTERM once it has shut down, with the handler it found in
    # place: the default one would kill the process before the wire listener closes and the query
    # log flushes (ServeState's exit). With this one the re-raise is a no-op and they run.
    previous = signal.signal(signal.SIGTERM, lambda _sig, _frame: None)
    try:
        asyncio.run(Server(project, settings).run())
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def serving_in_thread(
    project: Project, settings: ServeSettings, *, log_flush_s: float = 0.5, timeout_s: float = 60
) -> Iterator[Server]:
    """Run a server on a thread of this process (tests, benchmarks); stopped on exit."""
    server = Server(project, settings, log_flush_s=log_flush_s)
    errors: list[BaseException] = []

    def main() -> None:
        try:
            asyncio.run(server.run())
        except BaseException as exc:
            errors.append(exc)
            server.ready.set()

    thread = threading.Thread(target=main, name="shoal-serve", daemon=True)
    thread.start()
    if not server.ready.wait(timeout_s) or errors:
        server.stop()
        raise errors[0] if errors else TimeoutError("shoal serve did not start")
    try:
        yield server
    finally:
        server.stop()
        thread.join(timeout=30)

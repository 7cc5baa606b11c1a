"""What one ``shoal serve`` process shares between its front doors: tokens, engine, log, metrics."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from shoal.config.settings import ServeSettings
from shoal.project import Project
from shoal.serve.executor import Executor, SlotGate
from shoal.serve.metrics import ServerMetrics
from shoal.serve.querylog import QueryLog
from shoal.serve.tokens import Role, TokenStore
from shoal.status.collect import collect_status
from shoal.status.metrics import StatusCollector


def tokens_path(project: Project) -> Path:
    path = Path(project.settings.serve.tokens_file).expanduser()
    return path if path.is_absolute() else project.dir / path


def admin_token(project: Project, name: str = "demo-admin") -> str:
    """A new admin token of ``project`` (``shoal demo`` prints one with how to start the server)."""
    _, secret = TokenStore(tokens_path(project)).create(name, Role.admin)
    return secret


class ServeState:
    """The server's shared parts over one project; a context manager (flushes the query log)."""

    def __init__(
        self, project: Project, settings: ServeSettings | None = None, *, log_flush_s: float = 5.0
    ) -> None:
        self.project = project
        self.settings = settings or project.settings.serve
        self.tokens = TokenStore(tokens_path(project))
        self.metrics = ServerMetrics()
        self.query_log = QueryLog(project.lake, flush_every_s=log_flush_s)
        self.executor = Executor(
            project.lake,
            self.settings.limits,
            salt=lambda: self.tokens.salt,
            query_log=self.query_log,
            on_outcome=self.metrics.observe_query,
            databases=project.endpoints() if project.settings.databases else (),
        )
        self.metrics.track_running(lambda: self.executor.running)
        # shoal status as gauges on /metrics, computed at scrape time (cached a few seconds)
        self.metrics.registry.register(StatusCollector(lambda: collect_status(project, broker_timeout_s=1.0)))
        self.gate = SlotGate(self.settings.limits)

    def start(self) -> ServeState:
        self.query_log.start()
        self.executor.warm_up()
        return self

    def close(self) -> None:
        self.query_log.close()
        self.executor.close()

    def __enter__(self) -> ServeState:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

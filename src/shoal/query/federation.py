"""Live federation: operational databases queryable next to lake tables, as ``NAME.table``.

Each database declared under ``databases:`` is attached read-only to the query connection under
its name with DuckDB's mysql/postgres (or, for an embedded file, sqlite) scanners, which push
filters, projections and limits into the SQL they send (each database's own log shows it;
tests/integration/test_fed_live.py). Secrets come from the environment only (:class:`Endpoint`)
and are scrubbed from every message. A database that cannot be reached is reported in one line
naming it; the lake and the other databases stay usable.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shoal.config import DatabaseSettings
from shoal.errors import ConfigError, ShoalError, Transient

if TYPE_CHECKING:
    from shoal.query.engine import Connection

DEFAULT_PORTS = {"mysql": 3306, "postgres": 5432}
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
#: seconds a reachability check or attach waits for a TCP answer
CONNECT_TIMEOUT_S = 5.0


class DatabaseUnreachable(ShoalError, Transient):
    """A declared database did not answer (down, wrong host/port, credentials refused)."""


def _env_key(name: str) -> str:
    return f"SHOAL_DB_{name.upper()}"


@dataclass(frozen=True)
class Endpoint:
    """A declared database with its secrets resolved from the environment.

    ``repr``/``describe`` never show the password; :meth:`scrub` removes it from any text (an
    error message from a driver, say) before that text is shown or logged.
    """

    name: str
    settings: DatabaseSettings
    password: str = field(default="", repr=False)
    tls: str | None = None
    tls_ca: str | None = None
    #: what a relative sqlite path is relative to (the project directory)
    base_dir: str = ""

    @classmethod
    def resolve(
        cls,
        name: str,
        settings: DatabaseSettings,
        env: Mapping[str, str] | None = None,
        *,
        base_dir: str | Path | None = None,
    ) -> Endpoint:
        if not _NAME.match(name):
            raise ConfigError(f"databases.{name}: the name must be lower_snake_case (it is a SQL catalog)")
        env = os.environ if env is None else env
        key = settings.password_env or f"{_env_key(name)}_PASSWORD"
        return cls(
            name=name,
            settings=settings,
            password=env.get(key, ""),
            tls=env.get(f"{_env_key(name)}_TLS") or settings.tls,
            tls_ca=env.get(f"{_env_key(name)}_TLS_CA"),
            base_dir=str(base_dir or ""),
        )

    @property
    def kind(self) -> str:
        return self.settings.kind

    @property
    def host(self) -> str:
        return self.settings.host

    @property
    def port(self) -> int:
        return self.settings.port or DEFAULT_PORTS.get(self.kind, 0)

    @property
    def path(self) -> Path:
        """A sqlite database's file (``database``, relative to the project directory)."""
        return Path(self.base_dir or ".").joinpath(Path(self.database).expanduser()).resolve()

    @property
    def database(self) -> str:
        return self.settings.database

    @property
    def user(self) -> str:
        return self.settings.user

    @property
    def schema(self) -> str:
        return self.settings.schema_ or "public"

    def where(self) -> str:
        """``kind user@host:port/database``: the connection facts that are safe to print."""
        if self.kind == "sqlite":
            return f"sqlite {self.path}"
        return f"{self.kind} {self.user}@{self.host}:{self.port}/{self.database}"

    def describe(self) -> dict[str, Any]:
        if self.kind == "sqlite":
            return {"name": self.name, "kind": self.kind, "database": str(self.path)}
        return {
            "name": self.name,
            "kind": self.kind,
            "host": self.host,
            "port": self.port,
            "database": self.database,
            "user": self.user,
            "password": "***" if self.password else "",
            "tls": self.tls or "",
        }

    def scrub(self, text: str) -> str:
        """``text`` with the password (and a DSN's password=...) masked."""
        if self.password:
            text = text.replace(self.password, "***")
        return re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", text, flags=re.IGNORECASE)

    # -- connection strings ------------------------------------------------------------------
    def duckdb_dsn(self) -> str:
        """The ATTACH string of DuckDB's scanner (libpq conninfo / the mysql key=value form; a
        sqlite file's path)."""
        if self.kind == "sqlite":
            return str(self.path)
        parts: dict[str, str] = {"host": self.host, "port": str(self.port), "user": self.user}
        if self.password:
            parts["password"] = self.password
        if self.kind == "postgres":
            parts["dbname"] = self.database
            parts["connect_timeout"] = str(int(CONNECT_TIMEOUT_S))
            if self.tls:
                parts["sslmode"] = self.tls
            if self.tls_ca:
                parts["sslrootcert"] = self.tls_ca
        else:
            parts["database"] = self.database
            if self.tls:
                parts["ssl_mode"] = _MYSQL_SSL_MODES[self.tls]
            if self.tls_ca:
                parts["ssl_ca"] = self.tls_ca
        return " ".join(f"{k}={_conninfo_value(v)}" for k, v in parts.items())

    def check_port(self, timeout: float = CONNECT_TIMEOUT_S) -> None:
        """Fail fast (one line) when nothing answers at host:port, before a driver hangs on it
        (a sqlite file: when it is not there, since attaching would create an empty one)."""
        if self.kind == "sqlite":
            if not self.path.is_file():
                raise DatabaseUnreachable(
                    f"database {self.name} ({self.where()}) is unreachable: no such file"
                )
            return
        try:
            with socket.create_connection((self.host, self.port), timeout=timeout):
                return
        except OSError as exc:
            raise DatabaseUnreachable(
                f"database {self.name} ({self.where()}) is unreachable: {exc.strerror or exc}"
            ) from exc


_MYSQL_SSL_MODES = {
    "disable": "disabled",
    "prefer": "preferred",
    "require": "required",
    "verify-ca": "verify_ca",
    "verify-full": "verify_identity",
}


def _conninfo_value(value: str) -> str:
    if value and not re.search(r"[\s'\\]", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def endpoints(
    databases: Mapping[str, DatabaseSettings],
    env: Mapping[str, str] | None = None,
    *,
    base_dir: str | Path | None = None,
) -> list[Endpoint]:
    return [Endpoint.resolve(name, settings, env, base_dir=base_dir) for name, settings in databases.items()]


def attach(con: Connection, endpoint: Endpoint) -> None:
    """Attach one database read-only as ``endpoint.name``; raises :class:`DatabaseUnreachable`."""
    from shoal.query.engine import QueryError

    endpoint.check_port()
    try:
        con.attach_database(endpoint.name, endpoint.kind, endpoint.duckdb_dsn(), schema=endpoint.schema)
    except QueryError as exc:
        raise DatabaseUnreachable(
            f"database {endpoint.name} ({endpoint.where()}) is unreachable: {endpoint.scrub(str(exc))}"
        ) from None


def attach_all(con: Connection, eps: list[Endpoint]) -> dict[str, str]:
    """Attach every database that answers; returns ``{name: one-line reason}`` for those that did not.

    The connection remembers the reasons, so a query naming an unreachable database says why.
    """
    failed: dict[str, str] = {}
    for ep in eps:
        try:
            attach(con, ep)
        except DatabaseUnreachable as exc:
            failed[ep.name] = str(exc)
    con.unreachable.update(failed)
    return failed

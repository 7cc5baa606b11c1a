"""Is a declared database reachable? A real login and ``SELECT version()``, secrets never shown."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from shoal.query.federation import DatabaseUnreachable, Endpoint


@dataclass(frozen=True)
class Reachability:
    name: str
    where: str
    reachable: bool
    detail: str
    latency_ms: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "where": self.where,
            "reachable": self.reachable,
            "detail": self.detail,
            "latency_ms": self.latency_ms,
        }


def probe(endpoint: Endpoint) -> Reachability:
    """Log in and ask the server's version; the reason of a failure is one scrubbed line."""
    started = time.monotonic()
    try:
        endpoint.check_port()
        version = _version(endpoint)
    except DatabaseUnreachable as exc:
        return Reachability(endpoint.name, endpoint.where(), False, str(exc))
    except Exception as exc:
        text = endpoint.scrub(" ".join(str(exc).split()))
        return Reachability(endpoint.name, endpoint.where(), False, f"database {endpoint.name}: {text}")
    return Reachability(
        endpoint.name, endpoint.where(), True, version, round((time.monotonic() - started) * 1000, 1)
    )


def _version(endpoint: Endpoint) -> str:
    if endpoint.kind == "sqlite":
        from shoal.replicate.sqlite import SQLiteSource

        lite = SQLiteSource(endpoint)
        try:
            return f"SQLite {lite.query('SELECT sqlite_version()')[0][0]}"
        finally:
            lite.close()
    if endpoint.kind == "mysql":
        from shoal.replicate.mysql import MySQLSource

        source = MySQLSource(endpoint)
        try:
            return str(source.query("SELECT VERSION()")[0][0])
        finally:
            source.close()
    from shoal.replicate.postgres import PostgresSource

    pg = PostgresSource(endpoint)
    try:
        return str(pg.query("SHOW server_version")[0][0])
    finally:
        pg.close()

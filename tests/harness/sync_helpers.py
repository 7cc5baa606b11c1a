"""Helpers for federation/sync tests: a project declaring databases, and full-content comparison."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from shoal.project import Project
from shoal.replicate import Syncer

from .databases import DatabaseUnavailable
from .private_databases import PrivateMariaDB, PrivatePostgres
from .strict import unavailable


def write_project(directory: Path, databases: Mapping[str, Mapping[str, Any]]) -> Path:
    """A shoal.yaml with a local lake and ``databases``; returns the project directory."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "shoal.yaml").write_text(
        yaml.safe_dump({"name": "fedtest", "lake": {"root": "lake"}, "databases": dict(databases)})
    )
    return directory


def mysql_decl(server: PrivateMariaDB, database: str, **sync: Any) -> dict[str, Any]:
    decl: dict[str, Any] = {
        "kind": "mysql", "host": "127.0.0.1", "port": server.port, "database": database, "user": "root",
    }  # fmt: skip
    if sync:
        decl["sync"] = sync
    return decl


def pg_decl(server: PrivatePostgres, database: str = "postgres", **sync: Any) -> dict[str, Any]:
    decl: dict[str, Any] = {
        "kind": "postgres", "host": "127.0.0.1", "port": server.port, "database": database,
        "user": "postgres",
    }  # fmt: skip
    if sync:
        decl["sync"] = sync
    return decl


@dataclass(frozen=True)
class ScratchDB:
    """A database on a private server (the ``private_db`` fixture): SQL run in it, its declaration."""

    kind: str  # "mysql" or "postgres"
    server: PrivateMariaDB | PrivatePostgres
    name: str

    def sql(self, statement: str) -> list[tuple[Any, ...]]:
        return list(self.server.execute(statement, self.name))

    def decl(self, **sync: Any) -> dict[str, Any]:
        """Its shoal.yaml ``databases`` entry (``sync`` settings if given)."""
        if isinstance(self.server, PrivateMariaDB):
            return mysql_decl(self.server, self.name, **sync)
        return pg_decl(self.server, self.name, **sync)


def syncer_of(project: Project, **kwargs: Any) -> Syncer:
    """The syncer of the project's first declared database."""
    return Syncer(project.lake, project.endpoints()[0], **kwargs)


def normal(value: Any) -> Any:
    """One spelling for equal values from a driver and from the lake (naive UTC for instants)."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def rows_sorted(rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    return sorted((tuple(normal(v) for v in r) for r in rows), key=lambda r: r[0])


def lake_rows(lake_table: Any, columns: Sequence[str]) -> list[tuple[Any, ...]]:
    t = lake_table.to_arrow(columns=list(columns))
    return rows_sorted(
        list(zip(*(t.column(c).to_pylist() for c in columns), strict=True)) if t.num_rows else []
    )


def start_private(kind: str) -> Iterator[Any]:
    server: PrivateMariaDB | PrivatePostgres = PrivateMariaDB() if kind == "mysql" else PrivatePostgres()
    try:
        server.start()
    except DatabaseUnavailable as exc:
        unavailable(str(exc))
    try:
        yield server
    finally:
        server.stop()

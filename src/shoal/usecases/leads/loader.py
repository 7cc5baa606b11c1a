"""Create and fill the CRM or warehouse tables in a MySQL/MariaDB, PostgreSQL or SQLite database.

A target is a URL: ``mysql://user[:password]@host[:port]/database``,
``postgresql://user[:password]@host[:port]/database`` or ``sqlite:///path/to/file.db`` (a plain
path is a SQLite file too). Loading replaces the use case's tables (drop, create, insert), in one
transaction where the database has transactional DDL. Passwords are never shown in messages.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from shoal.errors import ConfigError, ShoalError, Transient
from shoal.replicate.sqlite import sqlite_value
from shoal.usecases.leads.schema import DATABASES, Dialect, TableSpec
from shoal.usecases.leads.simulator import Row

_SCHEMES: dict[str, Dialect] = {
    "mysql": "mysql",
    "mariadb": "mysql",
    "postgres": "postgres",
    "postgresql": "postgres",
    "sqlite": "sqlite",
}
BATCH = 5_000


class LoadError(ShoalError, Transient):
    """The target database refused the connection or the load."""


@dataclass(frozen=True)
class Target:
    """Where a database of the use case lives (parsed from a URL; the password is never shown)."""

    kind: Dialect
    database: str  # a name, or a sqlite file's path
    host: str = "127.0.0.1"
    port: int | None = None
    user: str = ""
    password: str = field(default="", repr=False)

    @classmethod
    def parse(cls, url: str) -> Target:
        if "://" not in url:
            return cls("sqlite", str(Path(url).expanduser()))
        parts = urlsplit(url)
        kind = _SCHEMES.get(parts.scheme.lower())
        if kind is None:
            raise ConfigError(
                f"database URL scheme {parts.scheme!r}: expected mysql://, postgresql:// or sqlite://"
            )
        if kind == "sqlite":
            return cls(
                "sqlite", unquote(parts.path) if not parts.netloc else unquote(parts.netloc + parts.path)
            )
        database = unquote(parts.path.lstrip("/"))
        if not database or not parts.username:
            raise ConfigError(
                f"database URL {cls._safe(url)}: expected {parts.scheme}://user@host[:port]/database"
            )
        try:
            port = parts.port
        except ValueError:
            raise ConfigError(f"database URL {cls._safe(url)}: the port is not a number") from None
        return cls(
            kind,
            database,
            host=parts.hostname or "127.0.0.1",
            port=port,
            user=unquote(parts.username),
            password=unquote(parts.password or ""),
        )

    @staticmethod
    def _safe(url: str) -> str:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        return url.replace(f":{parts.password}@", ":***@", 1)

    def where(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite {self.database}"
        return f"{self.kind} {self.user}@{self.host}:{self.port or ''}/{self.database}"

    def declaration(self, cursor_column: str, **sync: Any) -> dict[str, Any]:
        """Its ``databases.NAME`` entry for shoal.yaml (no password: that comes from the environment)."""
        decl: dict[str, Any] = {"kind": self.kind, "database": self.database}
        if self.kind != "sqlite":
            decl.update(host=self.host, user=self.user)
            if self.port:
                decl["port"] = self.port
        decl["sync"] = {"mode": "cursor", "cursor_column": cursor_column, **sync}
        return decl

    def _fail(self, exc: BaseException) -> LoadError:
        text = " ".join(str(exc).split())
        if self.password:
            text = text.replace(self.password, "***")
        return LoadError(f"cannot load into {self.where()}: {text}")


def load(target: Target, database: str, tables: dict[str, list[Row]]) -> dict[str, int]:
    """Replace the tables of ``database`` (``crm`` or ``warehouse``) in ``target`` with ``tables``'
    rows; returns rows loaded per table."""
    specs, cursor = DATABASES[database]
    try:
        if target.kind == "sqlite":
            _load_sqlite(target, specs, tables, cursor)
        elif target.kind == "mysql":
            _load_mysql(target, specs, tables, cursor)
        else:
            _load_postgres(target, specs, tables, cursor)
    except ShoalError:
        raise
    except Exception as exc:  # every driver's own error class: one scrubbed line
        raise target._fail(exc) from None
    return {s.name: len(tables[s.name]) for s in specs}


def _insert_sql(spec: TableSpec, q: str, mark: str) -> str:
    cols = ", ".join(f"{q}{c}{q}" for c in spec.column_names)
    return f"INSERT INTO {q}{spec.name}{q} ({cols}) VALUES ({', '.join([mark] * len(spec.columns))})"


def _batches(rows: Sequence[Row]) -> list[Sequence[Row]]:
    return [rows[i : i + BATCH] for i in range(0, len(rows), BATCH)]


def _load_sqlite(
    target: Target, specs: Sequence[TableSpec], tables: dict[str, list[Row]], cursor: str
) -> None:
    path = Path(target.database)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    try:
        with con:  # one transaction: readers see the old tables or the new ones
            for spec in specs:
                con.execute(f'DROP TABLE IF EXISTS "{spec.name}"')
                con.execute(spec.ddl("sqlite"))
                con.executemany(_insert_sql(spec, '"', "?"), _sqlite_rows(spec, tables[spec.name]))
                con.execute(spec.cursor_index("sqlite", cursor))  # after the rows: faster
    finally:
        con.close()


def _sqlite_rows(spec: TableSpec, rows: Sequence[Row]) -> Iterator[Sequence[Any]]:
    """Rows as SQLite stores them here (:func:`shoal.replicate.sqlite.sqlite_value`), converting
    only the columns that need it (a loop over every value is most of a big load)."""
    convert = [i for i, (_, t) in enumerate(spec.columns) if t in ("ts", "date", "money")]
    if not convert:
        yield from rows
        return
    for row in rows:
        out = list(row)
        for i in convert:
            if out[i] is not None:
                out[i] = sqlite_value(out[i])
        yield out


def _load_mysql(
    target: Target, specs: Sequence[TableSpec], tables: dict[str, list[Row]], cursor: str
) -> None:
    import pymysql

    con = pymysql.connect(
        host=target.host, port=target.port or 3306, user=target.user, password=target.password,
        database=target.database, charset="utf8mb4", connect_timeout=5,
    )  # fmt: skip
    try:
        with con.cursor() as cur:
            cur.execute("SET time_zone = '+00:00'")
            for spec in specs:
                cur.execute(f"DROP TABLE IF EXISTS `{spec.name}`")
                cur.execute(spec.ddl("mysql"))
                sql = _insert_sql(spec, "`", "%s")
                for batch in _batches(tables[spec.name]):
                    cur.executemany(sql, batch)  # one multi-row INSERT per batch
                cur.execute(spec.cursor_index("mysql", cursor))
        con.commit()
    finally:
        con.close()


def _load_postgres(
    target: Target, specs: Sequence[TableSpec], tables: dict[str, list[Row]], cursor: str
) -> None:
    import psycopg

    con = psycopg.connect(
        host=target.host, port=target.port or 5432, user=target.user, password=target.password or None,
        dbname=target.database, connect_timeout=5,
    )  # fmt: skip
    try:
        with con.transaction(), con.cursor() as cur:
            for spec in specs:
                cur.execute(f'DROP TABLE IF EXISTS "{spec.name}"')
                cur.execute(spec.ddl("postgres"))
                cols = ", ".join(f'"{c}"' for c in spec.column_names)
                with cur.copy(f'COPY "{spec.name}" ({cols}) FROM STDIN') as copy:
                    for row in tables[spec.name]:
                        copy.write_row(row)
                cur.execute(spec.cursor_index("postgres", cursor))
    finally:
        con.close()

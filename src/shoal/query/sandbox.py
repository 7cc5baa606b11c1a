"""A locked-down DuckDB engine for one access profile: granted tables only, personal data masked.

Each access profile (which namespaces, whether personal data is visible) gets its own in-memory
DuckDB database holding only the views it may read: tables of other namespaces do not exist there,
and a column the catalog marks as personal data is replaced by a stable keyed hash (equal values
hash equal, so joins and counts of distinct people still work). After the views are built the
engine is closed off with DuckDB's own controls:

* ``allowed_directories`` = the lake root, then ``enable_external_access = false``: the delta
  views keep reading the lake, nothing else on disk or the network can be read;
* ``lock_configuration = true``: no ``SET``/``PRAGMA`` can undo that or raise the limits.

The parser-level check (:mod:`shoal.query.guard`) is the other fence: it keeps queries from naming
lake files directly (which would bypass the masking views).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import duckdb

from shoal.lake import Lake
from shoal.lake import sql_ident as ident
from shoal.lake.mergeonread import resolve_sql
from shoal.query import pgcompat
from shoal.query.engine import Connection, connect_lake


@dataclass(frozen=True)
class Access:
    """What one caller may read: namespaces (None: all) and whether personal data is in clear."""

    namespaces: frozenset[str] | None = None
    pii: bool = False

    def can_read(self, table: str) -> bool:
        return self.namespaces is None or table.split(".", 1)[0] in self.namespaces


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def mask_expression(column: str, salt: str) -> str:
    """SQL for the masked value of ``column``: NULL stays NULL, anything else a keyed hash."""
    col = ident(column)
    return (
        f"CASE WHEN {col} IS NULL THEN NULL "
        f"ELSE 'pii_' || left(sha256({_literal(salt)} || CAST({col} AS VARCHAR)), 16) END"
    )


class Sandbox:
    """One access profile's engine. ``cursor()`` gives a connection for one query (thread-safe)."""

    def __init__(
        self,
        lake: Lake,
        access: Access,
        *,
        pii_columns: Mapping[str, Iterable[str]],
        salt: str,
        threads: int | None = None,
        memory_limit: str | None = None,
        connect: Callable[[], Connection] | None = None,
    ) -> None:
        self.lake = lake
        self.access = access
        con = (
            connect()
            if connect is not None
            else connect_lake(lake, threads=threads, memory_limit=memory_limit)
        )
        self._con = con
        con.unpin_snapshots()  # pinned snapshots are attached databases: the sandbox lists only views
        mounted = con.tables
        self.tables: frozenset[str] = frozenset(t for t in mounted if access.can_read(t))
        db = con.duckdb
        for name in mounted:
            ns, tbl = name.split(".", 1)
            if name not in self.tables:
                db.execute(f"DROP VIEW IF EXISTS {ident(ns)}.{ident(tbl)}")
                continue
            masked = set(pii_columns.get(name, ())) if not access.pii else set()
            if masked:
                self._mask(db, name, masked, salt)
        for ns in {t.split(".", 1)[0] for t in mounted} - {t.split(".", 1)[0] for t in self.tables}:
            db.execute(f"DROP SCHEMA IF EXISTS {ident(ns)} CASCADE")
        self.masked: dict[str, frozenset[str]] = {
            t: frozenset(pii_columns.get(t, ())) for t in self.tables if not access.pii and pii_columns.get(t)
        }
        self.database_tables = self._databases(db, access)
        pgcompat.install(db, self.tables)  # what psql and BI tools ask pg_catalog (pgcompat.py)
        _lock_down(db, lake, threads=threads, memory_limit=memory_limit)
        self._lock = threading.Lock()
        self._closed = False

    @staticmethod
    def _databases(db: duckdb.DuckDBPyConnection, access: Access) -> frozenset[str]:
        """``NAME.table`` of the declared databases ``connect`` attached (live federation, ADR 0019)
        that ``access`` may read, by the database's name as namespace; any other is detached."""
        attached = [
            r[0]
            for r in db.execute(
                "SELECT database_name FROM duckdb_databases() WHERE type IN ('sqlite', 'mysql', 'postgres')"
            ).fetchall()
        ]
        served: set[str] = set()
        for name in attached:
            if not access.can_read(f"{name}.x"):
                db.execute(f"DETACH {ident(name)}")
                continue
            rows = db.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = $1 "
                "UNION SELECT view_name FROM duckdb_views() WHERE database_name = $1 AND NOT internal",
                [name],
            ).fetchall()
            served.update(f"{name}.{r[0]}".lower() for r in rows)
        return frozenset(served)

    def _mask(self, db: duckdb.DuckDBPyConnection, name: str, masked: set[str], salt: str) -> None:
        ns, tbl = name.split(".", 1)
        uri = self._con._mounted[name]
        cols = [r[0] for r in db.execute(f"DESCRIBE {ident(ns)}.{ident(tbl)}").fetchall()]
        select = ", ".join(
            f"{mask_expression(c, salt)} AS {ident(c)}" if c in masked else ident(c) for c in cols
        )
        source = f"delta_scan({_literal(uri)})"
        layout = self.lake.table(name).layout()
        if layout is not None:  # a merge-on-read replica: mask its rows, not its raw changes
            source = f"({resolve_sql(source, layout)})"
        db.execute(f"CREATE OR REPLACE VIEW {ident(ns)}.{ident(tbl)} AS SELECT {select} FROM {source}")

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A new connection to this engine's database, for one query on one thread."""
        with self._lock:
            return self._con.duckdb.cursor()

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._con.close()


def _lock_down(
    db: duckdb.DuckDBPyConnection, lake: Lake, *, threads: int | None, memory_limit: str | None
) -> None:
    """Turn external access off (the lake stays readable) and lock the configuration."""
    if memory_limit:
        db.execute(f"SET memory_limit = {_literal(memory_limit)}")
    if threads:
        db.execute(f"SET threads = {int(threads)}")
    db.execute("SET GLOBAL TimeZone = 'UTC'")
    db.execute("SET allow_community_extensions = false")
    db.execute("SET autoinstall_known_extensions = false")
    db.execute("SET autoload_known_extensions = false")
    root = lake.root.rstrip("/") + "/"
    if lake.location.scheme == "s3":
        db.execute(f"SET allowed_paths = [{_literal(root)}]")
        db.execute(f"SET allowed_directories = [{_literal(root)}]")
    else:
        db.execute(f"SET allowed_directories = [{_literal(root)}]")
    db.execute("SET enable_external_access = false")
    db.execute("SET lock_configuration = true")

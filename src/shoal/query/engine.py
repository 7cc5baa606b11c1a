"""SQL over the lake: one DuckDB connection where every table is ``namespace.table``.

Each lake table is a view over ``delta_scan`` (DuckDB's delta extension, built on
delta-kernel): it reads the table's current snapshot at query time, so a long-lived
connection (notebook, HTTP API) always sees new commits, and scans are lazy with
partition and file-statistics pruning. Older versions are reached with
``ns.t VERSION AS OF n`` / ``TIMESTAMP AS OF '...'`` (see timetravel.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any
from urllib.parse import urlparse

import duckdb
import pyarrow as pa

from shoal.errors import NotFoundError, ShoalError, Terminal
from shoal.lake import Lake
from shoal.lake import sql_ident as ident
from shoal.lake.mergeonread import resolve_sql
from shoal.query.extensions import load_extension
from shoal.query.partition_bounds import add_partition_bounds
from shoal.query.partition_keys import rewrite_partition_keys
from shoal.query.partition_wise import Lookups, split_by_partition
from shoal.query.rewrite_cache import Columns, RewriteCache
from shoal.query.snapshots import PIN_PREFIX, PinnedSnapshots
from shoal.query.timetravel import AsOf, rewrite_as_of
from shoal.query.utctime import rewrite_utc_time

#: a statement that may change the session's time zone (then the UTC rewrite stops)
_SETS_TIMEZONE = re.compile(r"\b(SET|RESET)\b[^;]*\btime_?zone\b", re.IGNORECASE)
#: how long a table's rows per partition are used to split queries before they are read again
SPLIT_POINTS_S = 60.0
#: SHOW DATABASES, answered without the attached databases that hold pinned snapshots
_SHOW_DATABASES = re.compile(r"^\s*SHOW\s+DATABASES\s*;?\s*$", re.IGNORECASE)
_USER_DATABASES = (
    "SELECT database_name FROM duckdb_databases() "
    f"WHERE NOT internal AND NOT starts_with(database_name, '{PIN_PREFIX}') ORDER BY database_name"
)


class QueryError(ShoalError, Terminal):
    """The engine rejected a query (syntax, unknown table or column, type error)."""


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _configure_s3(con: duckdb.DuckDBPyConnection, lake: Lake) -> None:
    load_extension(con, "httpfs")
    opts = lake.location.storage_options
    endpoint = urlparse(opts.get("AWS_ENDPOINT_URL", ""))
    parts = [
        "TYPE s3",
        "PROVIDER config",
        f"KEY_ID {_quote_literal(opts.get('AWS_ACCESS_KEY_ID', ''))}",
        f"SECRET {_quote_literal(opts.get('AWS_SECRET_ACCESS_KEY', ''))}",
        f"REGION {_quote_literal(opts.get('AWS_REGION', 'us-east-1'))}",
    ]
    if endpoint.netloc:
        parts += [
            f"ENDPOINT {_quote_literal(endpoint.netloc)}",
            "URL_STYLE 'path'",
            f"USE_SSL {'true' if endpoint.scheme == 'https' else 'false'}",
        ]
    if opts.get("AWS_SESSION_TOKEN"):
        parts.append(f"SESSION_TOKEN {_quote_literal(opts['AWS_SESSION_TOKEN'])}")
    bucket = lake.root.removeprefix("s3://").split("/", 1)[0]
    parts.append(f"SCOPE {_quote_literal('s3://' + bucket)}")
    con.execute(f"CREATE OR REPLACE SECRET shoal_lake ({', '.join(parts)})")


class Connection:
    """A DuckDB connection with the lake's tables mounted; use like a DuckDB connection.

    ``sql``/``execute`` accept Delta time-travel clauses; everything else is delegated to the
    underlying :class:`duckdb.DuckDBPyConnection` (``.duckdb``).
    """

    def __init__(
        self,
        lake: Lake,
        *,
        threads: int | None = None,
        memory_limit: str | None = None,
        database: str = ":memory:",
        pin_snapshots: bool = True,
    ) -> None:
        self.lake = lake
        #: time bucketing of lake timestamps without ICU (utctime.py); off only to compare
        self.utc_time_rewrite = True
        #: day/hour buckets read from the partition column they derive from (partition_keys.py);
        #: off only to compare
        self.partition_key_rewrite = True
        #: ... and from the plain columns ingest derives (``derive``, ADR 0047); off only to compare
        self.derived_column_rewrite = True
        #: aggregations with a DISTINCT run one range of day partitions at a time (ADR 0050); off
        #: only to compare
        self.partition_wise_aggregation = True
        config: dict[str, Any] = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
        if threads:
            config["threads"] = threads
        if memory_limit:
            config["memory_limit"] = memory_limit
        self.duckdb = duckdb.connect(database, config=config)
        # Results land in Delta tables, which only know UTC: never label timestamps with the
        # machine's zone (DuckDB would say 'Etc/UTC' or worse, e.g. 'Europe/Paris').
        self.duckdb.execute("SET TimeZone = 'UTC'")
        # Delta data files are immutable (a write adds new files): caching their Parquet footers
        # across queries is safe and spares re-reading them on every query of a long-lived session.
        self.duckdb.execute("SET enable_object_cache = true")
        load_extension(self.duckdb, "delta")
        if lake.location.scheme == "s3":
            _configure_s3(self.duckdb, lake)
        self._mounted: dict[str, str] = {}
        #: each table's partition sources and derived columns (catalog sidecar), read once on first use
        self._column_sources: dict[str, tuple[dict[str, tuple[str, str]], dict[str, tuple[str, str]]]] = {}
        #: rows per partition value of each table, with when they were read (partition_wise.py)
        self._partition_rows: dict[tuple[str, str], tuple[float, Mapping[object, int]]] = {}
        # each table's view reads a pinned snapshot, re-pinned before a query when the table changed
        self._snapshots = PinnedSnapshots(self._raw, lake, pin=pin_snapshots)
        # statements of shoal's own (parsing, catalog look-ups) run here, not on the connection,
        # whose pending result stays the caller's
        self._helper = self._raw.cursor()
        #: rewrites of queries seen before (a watcher's models, a dashboard's panels)
        self._rewrites = RewriteCache(self._helper, self._lake_columns)
        #: declared databases that could not be attached, with the one-line reason (federation.py)
        self.unreachable: dict[str, str] = {}
        self.refresh()

    # -- catalog ---------------------------------------------------------------------------------
    def refresh(self) -> list[str]:
        """Mount tables created since the connection opened (data of known tables is always fresh)."""
        names = self.lake.table_names()
        for name in names:
            if name in self._mounted:
                continue
            ns, tbl = name.split(".", 1)
            uri = self.lake.location.table_uri(ns, tbl)
            self.duckdb.execute(f"CREATE SCHEMA IF NOT EXISTS {ident(ns)}")
            self._snapshots.mount(name, uri)
            self._mounted[name] = uri
        return names

    def unpin_snapshots(self) -> None:
        """Every lake view back on ``delta_scan`` and no pinned snapshot attached (ADR 0021): for an
        engine that then drops or masks views and must list only its own (the HTTP API sandbox)."""
        self._snapshots.unpin_all()

    @property
    def tables(self) -> list[str]:
        return sorted(self._mounted)

    def _resolve_as_of(self, as_of: AsOf) -> str:
        if as_of.table not in self._mounted:
            self.refresh()
        if as_of.table not in self._mounted:
            raise NotFoundError(self.lake.not_found_message(as_of.table))
        table = self.lake.table(as_of.table)
        version = as_of.version
        if version is None:
            assert as_of.timestamp is not None
            version = version_at(table.history(), as_of.timestamp, as_of.table)
        elif version > table.version:
            raise NotFoundError(f"table {as_of.table} has no version {version} (latest is {table.version})")
        scan = f"delta_scan({_quote_literal(self._mounted[as_of.table])}, version => {int(version)})"
        layout = table.layout(int(version))  # a merge-on-read table: its rows resolved per key
        return scan if layout is None else f"({resolve_sql(scan, layout, fixed=True)})"

    def _prepare(self, query: str) -> str:
        try:
            query = rewrite_as_of(query, self._resolve_as_of)
        except ValueError as exc:
            raise QueryError(str(exc)) from exc
        if _SHOW_DATABASES.match(query):
            return _USER_DATABASES
        if _SETS_TIMEZONE.search(query):
            self.utc_time_rewrite = False  # it holds in UTC only: from now on DuckDB's own functions
        if not self.utc_time_rewrite:
            return query
        partition_keys = self.partition_key_rewrite
        # what the rewrite can depend on besides the columns: the tables mounted, the switches, and
        # the partition ranges a split query was cut at (re-read every SPLIT_POINTS_S: they only
        # decide its speed, never its rows)
        switches = partition_keys * 4 + self.derived_column_rewrite * 2 + self.partition_wise_aggregation
        epoch = int(time.monotonic() // SPLIT_POINTS_S) if self.partition_wise_aggregation else 0
        generation = hash((len(self._mounted), switches, epoch))
        return self._rewrites.rewrite(
            query, generation, lambda columns: self._rewrite(query, columns, partition_keys=partition_keys)
        )

    def _rewrite(self, query: str, columns: Columns, *, partition_keys: bool) -> str:
        if partition_keys and self.partition_wise_aggregation:  # first: it reads the query as written
            lookups = Lookups(self._sources_of, self._derived_of, self._rows_per_partition, columns)
            query = split_by_partition(self._helper, query, lookups)
        derived = self._names_derived_column(query)
        if derived and partition_keys:  # first: the UTC rewrite would take its calls
            query = rewrite_partition_keys(self._helper, query, self._keys_of, columns)
        query = rewrite_utc_time(self._helper, query, columns)
        if not derived:
            return query
        return add_partition_bounds(self._helper, query, self._sources_of, columns)

    def _names_derived_column(self, query: str) -> bool:
        """Whether ``query`` names a lake table and a column one of its partitions or derived columns
        comes from: spares the parses of the partition rewrites (a few ms) for every other query."""
        text = query.lower()
        for name in self._mounted:
            schema, table = name.split(".", 1)
            if table in text:
                sources = self._keys_of(schema, table)
                if sources and any(src.lower() in text for src, _ in sources.values()):
                    return True
        return False

    def _declared(self, schema: str, table: str) -> tuple[dict[str, tuple[str, str]], ...] | None:
        """A mounted lake table's (partition sources, derived columns) (``Lake.column_sources``)."""
        name = f"{schema}.{table}".lower()
        if name not in self._mounted:
            return None
        if name not in self._column_sources:
            try:
                self._column_sources[name] = self.lake.column_sources(name)
            except ShoalError:
                return None
        return self._column_sources[name]

    def _sources_of(self, schema: str, table: str) -> dict[str, tuple[str, str]] | None:
        """A mounted lake table's partition sources (``Lake.partition_sources``), else None: the
        columns whose values prune files."""
        declared = self._declared(schema, table)
        return None if declared is None else declared[0]

    def _derived_of(self, schema: str, table: str) -> dict[str, tuple[str, str]] | None:
        """A mounted lake table's derived columns (none when ``derived_column_rewrite`` is off)."""
        declared = self._declared(schema, table)
        return None if declared is None or not self.derived_column_rewrite else declared[1]

    def _rows_per_partition(self, schema: str, table: str, column: str) -> Mapping[object, int]:
        """Rows per value of a partition column (``Table.partition_rows``), read at most once per
        ``SPLIT_POINTS_S`` per table; empty when the log cannot be read (the query is not split)."""
        key = (f"{schema}.{table}".lower(), column)
        now = time.monotonic()
        kept = self._partition_rows.get(key)
        if kept is not None and now - kept[0] < SPLIT_POINTS_S:
            return kept[1]
        try:
            rows: Mapping[object, int] = self.lake.table(key[0]).partition_rows(column)
        except ShoalError:
            rows = {}
        self._partition_rows[key] = (now, rows)
        return rows

    def _keys_of(self, schema: str, table: str) -> dict[str, tuple[str, str]] | None:
        """Its partition sources, then its derived columns (unless ``derived_column_rewrite`` is
        off): the columns a truncation of their source may be read from."""
        declared = self._declared(schema, table)
        if declared is None:
            return None
        return {**declared[0], **declared[1]} if self.derived_column_rewrite else declared[0]

    def _lake_columns(self, schema: str, table: str) -> dict[str, str] | None:
        """Column types of a mounted lake table's view (None for anything else): the view's types
        are those bound when it was mounted, so no snapshot is read for them."""
        if f"{schema}.{table}".lower() not in self._mounted:
            return None
        rows = self._helper.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = ? AND table_name = ?",
            [schema.lower(), table.lower()],
        ).fetchall()
        return {str(c): str(t) for c, t in rows}

    # -- running queries ---------------------------------------------------------------------------
    def sql(self, query: str, params: Sequence[Any] | None = None) -> duckdb.DuckDBPyRelation:
        """Run ``query``; returns a lazy relation (``.arrow()``, ``.df()``, ``.fetchall()``)."""
        try:
            return self.duckdb.sql(self._prepare(query), params=params)
        except duckdb.Error as exc:
            raise self._error(exc, query) from exc

    def execute(self, query: str, params: Sequence[Any] | None = None) -> duckdb.DuckDBPyConnection:
        try:
            return self.duckdb.execute(self._prepare(query), params)
        except duckdb.Error as exc:
            raise self._error(exc, query) from exc

    def query_arrow(self, query: str, params: Sequence[Any] | None = None) -> pa.Table:
        rel = self.sql(query, params)
        if rel is None:  # a statement without a result
            return pa.table({})
        try:
            return rel.to_arrow_table()
        except duckdb.Error as exc:
            raise _query_error(exc) from exc

    def table(self, name: str, *, version: int | None = None) -> duckdb.DuckDBPyRelation:
        """A lazy relation over a lake table, optionally at an older version."""
        clause = f" VERSION AS OF {int(version)}" if version is not None else ""
        return self.sql(f"SELECT * FROM {name}{clause}")

    def _error(self, exc: duckdb.Error, query: str = "") -> QueryError:
        err = _query_error(exc)
        if isinstance(exc, duckdb.CatalogException):
            # A query on a declared database that is down: say so, not "no such table".
            for name, reason in self.unreachable.items():
                if re.search(rf"(?<![\w.]){re.escape(name)}\s*\.", query, flags=re.IGNORECASE):
                    return QueryError(reason)
        missing = re.search(r"Table with name (\S+) does not exist", str(exc))
        if missing:
            import difflib

            want = missing.group(1).strip('"').lower()
            names = self.refresh()
            close = (
                difflib.get_close_matches(want, names, n=3, cutoff=0.5)
                or [
                    n for n in names if difflib.SequenceMatcher(None, want, n.split(".", 1)[1]).ratio() > 0.6
                ][:3]
            )
            hint = f"; lake tables like it: {', '.join(close)}" if close else ""
            return QueryError(f"unknown table {want}{hint} ({err})")
        return err

    # -- federation ------------------------------------------------------------------------------
    def attach_database(self, alias: str, kind: str, dsn: str, *, schema: str | None = None) -> None:
        """Attach a live MySQL/MariaDB or PostgreSQL database, or a SQLite file (``dsn`` is its
        path), as ``alias`` (read-only)."""
        ext = {"mysql": "mysql_scanner", "postgres": "postgres_scanner", "sqlite": "sqlite_scanner"}.get(kind)
        if ext is None:
            raise QueryError(f"cannot attach {kind!r}: expected mysql, postgres or sqlite")
        load_extension(self.duckdb, ext)
        options = [f"TYPE {kind}", "READ_ONLY"]
        if kind == "postgres" and schema and schema != "public":
            options.append(f"SCHEMA {_quote_literal(schema)}")
        if kind == "mysql":
            # TIMESTAMP columns are instants: read them in UTC, like the lake (see federation.py).
            self.duckdb.execute("SET mysql_session_time_zone = '+00:00'")
        try:
            self.duckdb.execute(f"ATTACH {_quote_literal(dsn)} AS {ident(alias)} ({', '.join(options)})")
        except duckdb.Error as exc:
            raise _query_error(exc) from exc
        self.unreachable.pop(alias, None)

    # -- lifecycle -------------------------------------------------------------------------------
    def close(self) -> None:
        self._helper.close()
        self._raw.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __getattr__(self, item: str) -> Any:
        # not through .duckdb: con.execute(q) then con.fetchall() must not re-pin in between
        return getattr(self._raw, item)

    @property
    def duckdb(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB connection, its lake views first brought to each table's latest snapshot:
        every statement through it (``sql``, ``execute``, models' SQL) sees every commit made
        before it. Hold the Connection, not this: a DuckDB connection kept aside is not re-pinned."""
        snapshots: PinnedSnapshots | None = self.__dict__.get("_snapshots")
        if snapshots is not None:
            snapshots.ensure_fresh()
        return self._raw

    @duckdb.setter
    def duckdb(self, con: duckdb.DuckDBPyConnection) -> None:
        self._raw = con


def version_at(history: list[dict[str, Any]], timestamp: str, table: str) -> int:
    """The last version committed at or before ``timestamp`` (ISO 8601; naive means UTC)."""
    try:
        when = datetime.fromisoformat(timestamp)
    except ValueError as exc:
        raise QueryError(f"TIMESTAMP AS OF {timestamp!r}: not an ISO 8601 timestamp") from exc
    if when.tzinfo is None:
        from datetime import UTC

        when = when.replace(tzinfo=UTC)
    target_ms = when.timestamp() * 1000
    candidates = [int(h["version"]) for h in history if float(h.get("timestamp", 0)) <= target_ms]
    if not candidates:
        raise NotFoundError(f"table {table} has no version at or before {timestamp}")
    return max(candidates)


def _query_error(exc: duckdb.Error) -> QueryError:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    # DuckDB's hint ("Did you mean ...") is on a later line: keep it, it names close matches.
    hint = next((ln.strip() for ln in text.splitlines()[1:] if "did you mean" in ln.lower()), "")
    msg = f"{first} {hint}".strip() if hint and hint not in first else first
    return QueryError(re.sub(r"\s+", " ", msg))


def connect_lake(lake: Lake, **kwargs: Any) -> Connection:
    return Connection(lake, **kwargs)

"""The parser-level check of served SQL: read-only queries over granted tables, nothing else.

Served queries (HTTP API, Postgres wire protocol) are parsed with sqlglot and refused unless the
statement is one read-only query whose every table is a granted lake table, a CTE of the query, or
an allowed catalog view (``information_schema``), and whose functions read no file, URL or
environment. The SQL that runs is sqlglot's rendering of the checked tree, not the client's text,
so what was checked is what DuckDB executes (no parser differential through comments or quoting).

This is one of two fences: the sandboxed engine (:mod:`shoal.query.sandbox`) also turns DuckDB's
external access off and locks its configuration, so a gap here still cannot read server files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass

import sqlglot
from sqlglot import expressions as exp
from sqlglot.errors import ParseError, TokenError

from shoal.errors import ShoalError, Terminal
from shoal.query.pgcompat import EMPTY, INFO_VIEWS, PG_VIEWS, rewrite
from shoal.query.pgcompat import SCHEMA as PG_SCHEMA

# sqlglot logs a warning for every statement it falls back to parsing as a bare command; the
# guard refuses those anyway, the log line is noise.
logging.getLogger("sqlglot").setLevel(logging.ERROR)


class RefusedQuery(ShoalError, Terminal):
    """A served query does something served SQL may not do (write, read files, change settings)."""


class DeniedTable(ShoalError, Terminal):
    """A served query names a table the caller has no grant for."""

    def __init__(self, table: str) -> None:
        super().__init__(f"access to table {table} is not granted")
        self.table = table


class UnknownTable(ShoalError, Terminal):
    """A served query names a table that does not exist (or is not served)."""


#: statement kinds (and nodes anywhere in the tree) that write, change settings or reach outside
_FORBIDDEN_NODES: tuple[type[exp.Expression], ...] = tuple(
    getattr(exp, name)
    for name in (
        "Insert",
        "Update",
        "Delete",
        "Merge",
        "Create",
        "Drop",
        "Alter",
        "AlterTable",
        "TruncateTable",
        "Copy",
        "Command",
        "Pragma",
        "Set",
        "SetItem",
        "Use",
        "Attach",
        "Detach",
        "Install",
        "LoadData",
        "Transaction",
        "Commit",
        "Rollback",
        "Describe",
        "Summarize",
        "Export",
        "Into",
        "Cache",
        "Uncache",
        "Refresh",
        "Grant",
        "Revoke",
    )
    if hasattr(exp, name)
)

#: function names (lower case) that read files, URLs, the environment or run SQL given as a string
_FORBIDDEN_FUNCTION_PREFIXES = (
    "read_",
    "parquet_",
    "duckdb_",
    "delta_",
    "iceberg_",
    "pragma_",
    # the federation scanners (loaded in engines serving a database) reach any file or server
    "sqlite_",
    "postgres_",
    "mysql_",
)
_FORBIDDEN_FUNCTIONS = frozenset(
    {
        "getenv",
        "glob",
        "query",
        "query_table",
        "sniff_csv",
        "which_secret",
        "load_extension",
        "csv_scan",
        "json_scan",
        "parquet_scan",
        "delta_scan",
        "iceberg_scan",
        "postgres_scan",
        "mysql_scan",
        "sqlite_scan",
        "postgres_query",
        "mysql_query",
        "postgres_execute",
        "mysql_execute",
        "arrow_scan",
        "pg_get_viewdef",
        "pg_read_file",
        "pg_read_binary_file",
        "pg_ls_dir",
        "lo_import",
        "lo_export",
        "current_setting",
        "set_config",
        "checkpoint",
        "force_checkpoint",
        "enable_profiling",
        "shell",
        "system",
        "from_json_file",
        "json_execute_serialized_sql",
        "sql_auto_complete",
        "test_all_types",
    }
)

#: catalog views served read-only; they list only what the caller's engine holds (granted tables).
#: Views that show view definitions (information_schema.views, pg_views: they hold the masking
#: key) or settings (pg_settings: server paths) are left out.
PG_CATALOG = frozenset(
    {
        "pg_namespace",
        "pg_class",
        "pg_attribute",
        "pg_type",
        "pg_tables",
        "pg_database",
        "pg_index",
        "pg_description",
        "pg_attrdef",
        "pg_constraint",
        "pg_am",
        "pg_enum",
        "pg_collation",
        "pg_sequence",
        "pg_sequences",
        "pg_tablespace",
        "pg_depend",
        "pg_indexes",
        *EMPTY,  # pgcompat's empty catalogs (policies, triggers, publications, ...)
    }
)
ALLOWED_CATALOG = frozenset(
    {
        "information_schema.tables",
        "information_schema.columns",
        "information_schema.schemata",
        *(f"pg_catalog.{name}" for name in PG_CATALOG),
        *(f"{PG_SCHEMA}.{name}" for name in PG_VIEWS),
        *(f"{PG_SCHEMA}.information_schema_{name}" for name in INFO_VIEWS),
    }
)


@dataclass(frozen=True)
class CheckedQuery:
    """A query that passed the guard: the SQL to run and the lake tables it reads."""

    sql: str
    tables: frozenset[str]


def _function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return node.sql_name().lower()


def _forbidden_function(name: str) -> bool:
    return name in _FORBIDDEN_FUNCTIONS or name.startswith(_FORBIDDEN_FUNCTION_PREFIXES)


def _cte_names(tree: exp.Query) -> set[str]:
    return {str(cte.alias_or_name).lower() for cte in tree.find_all(exp.CTE)}


def check_query(
    sql: str,
    *,
    granted: Callable[[str], bool],
    known: Collection[str],
    dialect: str = "duckdb",
    pg_compat: bool = False,
) -> CheckedQuery:
    """Parse ``sql`` and return what may run, or raise RefusedQuery / DeniedTable / UnknownTable.

    ``granted(name)`` says whether the caller may read lake table ``ns.table``; ``known`` is every
    served table (so a denied table is told apart from a missing one). ``pg_compat`` turns the
    Postgres catalog syntax clients send (psql ``\\d``, SQLAlchemy reflection) into what an engine
    prepared by :func:`shoal.query.pgcompat.install` answers.
    """
    text = sql.strip().rstrip(";").strip()
    if not text:
        raise RefusedQuery("empty query")
    try:
        statements = [s for s in sqlglot.parse(text, read=dialect) if s is not None]
    except (ParseError, TokenError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RefusedQuery(f"could not parse the query: {first}") from exc
    if len(statements) != 1:
        raise RefusedQuery(f"one statement per query, got {len(statements)}")
    tree = statements[0]
    if not isinstance(tree, exp.Query):
        raise RefusedQuery(
            f"only read-only queries (SELECT, WITH, VALUES) are served, not {tree.key.upper()}"
        )
    if pg_compat:
        # before the checks: what is checked is what runs (the rewrite reads only pg_shoal's views)
        rewritten = rewrite(tree)
        assert isinstance(rewritten, exp.Query)  # the rewrite replaces expressions, never the statement
        tree = rewritten
    ctes = _cte_names(tree)
    tables: set[str] = set()
    for node in tree.walk():
        if isinstance(node, _FORBIDDEN_NODES):
            raise RefusedQuery(f"{node.key.upper()} is not allowed in served queries")
        if isinstance(node, exp.Func):
            name = _function_name(node)
            if _forbidden_function(name):
                raise RefusedQuery(f"function {name} is not allowed in served queries")
        if isinstance(node, exp.Table):
            tables.add(_check_table(node, ctes, granted, known))
    tables.discard("")
    # Comments are dropped: a rendered comment is the one place client text would pass unchecked.
    return CheckedQuery(sql=tree.sql(dialect="duckdb", comments=False), tables=frozenset(tables))


def _check_table(
    node: exp.Table, ctes: set[str], granted: Callable[[str], bool], known: Collection[str]
) -> str:
    """The lake table a FROM item names ("" for a CTE or catalog view); raise if it may not be read."""
    target = node.this
    if not isinstance(target, exp.Identifier):
        # a table function (read_csv(...)), a string literal path ('x.parquet'), unnest(...)
        if isinstance(target, exp.Func):
            name = _function_name(target)
            if name in {"unnest", "range", "generate_series"}:
                return ""
            raise RefusedQuery(f"table function {name} is not allowed in served queries")
        raise RefusedQuery(f"FROM {target.sql(dialect='duckdb')} is not allowed: name a lake table")
    name = str(target.this)
    if node.args.get("version"):
        raise RefusedQuery("time travel (VERSION/TIMESTAMP AS OF) is not served: use shoal sql")
    if node.args.get("catalog"):
        raise RefusedQuery(f"three-part name {node.sql(dialect='duckdb')} is not allowed")
    db = str(node.db) if node.db else ""
    if not db:
        if name.lower() in ctes or name.lower() in PG_CATALOG:
            return ""
        if "." in name or "/" in name or ":" in name:
            # DuckDB's replacement scans read a file named by a quoted identifier ("x.csv")
            raise RefusedQuery(f"FROM {target.sql(dialect='duckdb')} is not allowed: name a lake table")
        raise UnknownTable(f"unknown table {name}: name lake tables as namespace.table")
    full = f"{db}.{name}".lower()
    if full in ALLOWED_CATALOG:
        return ""
    if full not in known:
        raise UnknownTable(f"unknown table {full}")
    if not granted(full):
        raise DeniedTable(full)
    return full

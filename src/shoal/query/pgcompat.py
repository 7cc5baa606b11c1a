"""What Postgres clients ask the catalog, answered by the served engine (psql ``\\d``, BI tools).

psql's backslash commands, SQLAlchemy's reflection and BI tools introspect through ``pg_catalog``
with Postgres-only syntax: ``OPERATOR(pg_catalog.~)``, ``COLLATE pg_catalog.default``,
schema-qualified functions (``pg_catalog.pg_get_userbyid(...)``) and ``::regclass`` casts. DuckDB
has a ``pg_catalog`` of its own, but lists shoal's lake tables as views (they are views over Delta
snapshots), so ``\\dt`` would show nothing, and lacks a few functions those clients call.

Two parts, both applied to what the guard already checked (:mod:`shoal.query.guard`):

* :func:`install` creates, in the sandboxed engine before it is locked, a schema ``pg_shoal``
  (hidden from ``\\dn``, which skips ``pg_*``) with a ``pg_class`` that reports served lake tables
  as ordinary tables (``relkind = 'r'``) and the missing functions as macros;
* :func:`rewrite` turns the Postgres-only syntax into DuckDB's and points catalog reads at
  ``pg_shoal`` where it has its own answer.
"""

from __future__ import annotations

from collections.abc import Collection

import duckdb
from sqlglot import expressions as exp
from sqlglot.errors import ParseError

SCHEMA = "pg_shoal"

#: information_schema views read through a copy that leaves pg_shoal's own objects out
INFO_VIEWS = {"tables": "table_schema", "columns": "table_schema", "schemata": "schema_name"}

#: pg_catalog relations answered by pg_shoal's own view instead of DuckDB's
#: catalogs of things shoal's tables never have (row policies, triggers, publications,
#: inheritance, extended statistics): empty, with the columns psql's ``\\d`` reads
EMPTY: dict[str, str] = {
    "pg_policy": "oid BIGINT, polname VARCHAR, polrelid BIGINT, polcmd VARCHAR, polpermissive BOOLEAN, "
    "polroles BIGINT[], polqual VARCHAR, polwithcheck VARCHAR",
    "pg_statistic_ext": "oid BIGINT, stxrelid BIGINT, stxname VARCHAR, stxnamespace BIGINT, "
    "stxowner BIGINT, stxstattarget INTEGER, stxkeys INTEGER[], stxkind VARCHAR[], stxexprs VARCHAR",
    "pg_publication": "oid BIGINT, pubname VARCHAR, pubowner BIGINT, puballtables BOOLEAN, "
    "pubinsert BOOLEAN, pubupdate BOOLEAN, pubdelete BOOLEAN, pubtruncate BOOLEAN, pubviaroot BOOLEAN",
    "pg_publication_rel": "oid BIGINT, prpubid BIGINT, prrelid BIGINT, prqual VARCHAR, prattrs INTEGER[]",
    "pg_publication_namespace": "oid BIGINT, pnpubid BIGINT, pnnspid BIGINT",
    "pg_inherits": "inhrelid BIGINT, inhparent BIGINT, inhseqno INTEGER, inhdetachpending BOOLEAN",
    "pg_trigger": "oid BIGINT, tgrelid BIGINT, tgparentid BIGINT, tgname VARCHAR, tgfoid BIGINT, "
    "tgtype INTEGER, tgenabled VARCHAR, tgisinternal BOOLEAN, tgconstraint BIGINT",
    "pg_rewrite": "oid BIGINT, rulename VARCHAR, ev_class BIGINT, ev_type VARCHAR, ev_enabled VARCHAR, "
    "is_instead BOOLEAN",
    "pg_partitioned_table": "partrelid BIGINT, partstrat VARCHAR, partnatts INTEGER",
    "pg_foreign_table": "ftrelid BIGINT, ftserver BIGINT, ftoptions VARCHAR[]",
    "pg_opclass": "oid BIGINT, opcmethod BIGINT, opcname VARCHAR, opcnamespace BIGINT, opcowner BIGINT, "
    "opcfamily BIGINT, opcintype BIGINT, opcdefault BOOLEAN, opckeytype BIGINT",
    "pg_roles": "oid BIGINT, rolname VARCHAR, rolsuper BOOLEAN, rolinherit BOOLEAN, "
    "rolcreaterole BOOLEAN, rolcreatedb BOOLEAN, rolcanlogin BOOLEAN",
}

#: information_schema views read through a copy that leaves pg_shoal's own objects out
INFO_VIEWS = {"tables": "table_schema", "columns": "table_schema", "schemata": "schema_name"}

#: pg_catalog relations answered by pg_shoal's own view instead of DuckDB's
#: DuckDB's catalog views with the columns it lacks and clients read (SQLAlchemy's reflection)
_EXTENDED: dict[str, str] = {
    "pg_collation": "0::BIGINT AS collnamespace, 0::BIGINT AS collowner, 'c' AS collprovider",
    "pg_index": "false AS indnullsnotdistinct",
}

#: information_schema views read through a copy that leaves pg_shoal's own objects out
INFO_VIEWS = {"tables": "table_schema", "columns": "table_schema", "schemata": "schema_name"}

#: pg_catalog relations answered by pg_shoal's own view instead of DuckDB's
PG_VIEWS = frozenset(
    {"pg_class", "pg_tables", "pg_database", "pg_attribute", "pg_type", "pg_namespace", *EMPTY, *_EXTENDED}
)

#: what current_setting() answers (the engine's own settings stay unreadable: they hold paths)
SETTINGS = {
    "default_table_access_method": "heap",
    "server_version": "16.0",
    "server_version_num": "160000",
    "server_encoding": "UTF8",
    "client_encoding": "UTF8",
    "standard_conforming_strings": "on",
    "datestyle": "ISO, MDY",
    "timezone": "UTC",
    "integer_datetimes": "on",
    "search_path": '"$user", public',
    "max_identifier_length": "63",
    "transaction_isolation": "read committed",
    "default_transaction_read_only": "on",
    "transaction_read_only": "on",
}

#: Postgres types DuckDB's pg_type lacks: (oid, name, element oid, category, a row to copy the rest from)
_EXTRA_TYPES = [
    (25, "text", 0, "S", 1043),
    (114, "json", 0, "U", 1043),
    (19, "name", 0, "S", 1043),
    (26, "oid", 0, "N", 23),
    (1000, "_bool", 16, "A", 16),
    (1005, "_int2", 21, "A", 21),
    (1007, "_int4", 23, "A", 23),
    (1016, "_int8", 20, "A", 20),
    (1009, "_text", 25, "A", 1043),
    (1021, "_float4", 700, "A", 700),
    (1022, "_float8", 701, "A", 701),
    (1231, "_numeric", 1700, "A", 1700),
    (1182, "_date", 1082, "A", 1082),
    (1115, "_timestamp", 1114, "A", 1114),
    (1185, "_timestamptz", 1184, "A", 1184),
]

#: DuckDB column types (duckdb_columns().data_type) → the Postgres OID a column is described as;
#: the same mapping the wire protocol uses for result columns (serve/pgtypes.type_oid)
_PG_OID_OF = {
    "BOOLEAN": 16,
    "TINYINT": 21,
    "SMALLINT": 21,
    "UTINYINT": 21,
    "INTEGER": 23,
    "USMALLINT": 23,
    "BIGINT": 20,
    "UINTEGER": 20,
    "UBIGINT": 1700,
    "HUGEINT": 1700,
    "UHUGEINT": 1700,
    "FLOAT": 700,
    "DOUBLE": 701,
    "VARCHAR": 25,
    "BLOB": 17,
    "DATE": 1082,
    "TIME": 1083,
    "TIMESTAMP": 1114,
    "TIMESTAMP_S": 1114,
    "TIMESTAMP_MS": 1114,
    "TIMESTAMP_NS": 1114,
    "TIMESTAMP WITH TIME ZONE": 1184,
    "INTERVAL": 1186,
    "UUID": 2950,
    "JSON": 114,
}
_ARRAY_OID = {16: 1000, 21: 1005, 23: 1007, 20: 1016, 25: 1009, 700: 1021, 701: 1022, 1700: 1231}
_ARRAY_OID |= {1082: 1182, 1114: 1115, 1184: 1185}


def _oid_case(expr: str) -> str:
    whens = " ".join(f"WHEN '{duck}' THEN {oid}" for duck, oid in _PG_OID_OF.items())
    return f"CASE WHEN {expr} LIKE 'DECIMAL(%' THEN 1700 ELSE (CASE {expr} {whens} ELSE NULL END) END"


def _array_case(expr: str) -> str:
    whens = " ".join(f"WHEN {element} THEN {array}" for element, array in _ARRAY_OID.items())
    return f"CASE ({_oid_case(expr)}) {whens} ELSE NULL END"


_PG_NAMES = {
    16: "boolean",
    17: "bytea",
    20: "bigint",
    21: "smallint",
    23: "integer",
    25: "text",
    114: "json",
    700: "real",
    701: "double precision",
    1082: "date",
    1083: "time without time zone",
    1114: "timestamp without time zone",
    1184: "timestamp with time zone",
    1186: "interval",
    1700: "numeric",
    2950: "uuid",
    1000: "boolean[]",
    1005: "smallint[]",
    1007: "integer[]",
    1016: "bigint[]",
    1009: "text[]",
    1021: "real[]",
    1022: "double precision[]",
    1231: "numeric[]",
    1182: "date[]",
    1115: "timestamp without time zone[]",
    1185: "timestamp with time zone[]",
}


#: functions psql, SQLAlchemy and BI tools call that DuckDB's pg_catalog lacks (macros in pg_shoal)
_MACROS: dict[str, str] = {
    "pg_get_userbyid": "(role) AS 'shoal'",
    "pg_encoding_to_char": "(encoding) AS 'UTF8'",
    # shoal's tables have no indexes, defaults, triggers, rules or partition keys to describe
    "pg_get_expr": "(expr, rel) AS NULL::VARCHAR, (expr, rel, pretty) AS NULL::VARCHAR",
    "pg_get_indexdef": "(i) AS NULL::VARCHAR, (i, col, pretty) AS NULL::VARCHAR",
    "pg_get_constraintdef": "(c) AS NULL::VARCHAR, (c, pretty) AS NULL::VARCHAR",
    "pg_get_statisticsobjdef_columns": "(oid) AS NULL::VARCHAR",
    "pg_get_partkeydef": "(oid) AS NULL::VARCHAR",
    "pg_get_triggerdef": "(oid) AS NULL::VARCHAR, (oid, pretty) AS NULL::VARCHAR",
    "pg_get_ruledef": "(oid) AS NULL::VARCHAR, (oid, pretty) AS NULL::VARCHAR",
    "pg_relation_is_publishable": "(oid) AS false",
    "pg_total_relation_size": "(oid) AS NULL::BIGINT",
    "pg_relation_size": "(oid) AS NULL::BIGINT",
    "pg_backend_pid": "() AS 0",
    "array_upper": "(arr, dim) AS len(arr)",
    # Postgres spellings, which SQLAlchemy and BI tools map to their types (DuckDB says int8, varchar)
    # a column's Postgres OID from its DuckDB type: element OID + array, or json for what has none
    "pg_oid_of": (
        "(dt) AS CASE WHEN dt LIKE '%[]' THEN coalesce("
        + _array_case("left(dt, -2)")
        + ", 114) ELSE coalesce("
        + _oid_case("dt")
        + ", 114) END"
    ),
    # Postgres spellings of Postgres OIDs (what psql, SQLAlchemy and BI tools map to their types)
    "format_type": (
        "(t, m) AS CASE "
        "WHEN t = 1700 AND m > 4 THEN 'numeric(' || ((m - 4) >> 16) || ',' || ((m - 4) & 65535) || ')' "
        + " ".join(f"WHEN t = {oid} THEN '{name}'" for oid, name in _PG_NAMES.items())
        + " ELSE (SELECT typname FROM pg_shoal.pg_type WHERE oid = t) END"
    ),
    "pg_get_serial_sequence": "(tbl, col) AS NULL::VARCHAR",
    "pg_setting": "(name) AS "
    + "CASE lower(name) "
    + " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in SETTINGS.items())
    + " END",
    "regclass_oid": (
        "(name) AS (SELECT min(c.oid) FROM pg_shoal.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace, "
        "(SELECT string_split(replace(name, '\"', ''), '.') AS parts) "
        "WHERE c.relname = parts[-1] AND (len(parts) = 1 OR n.nspname = parts[-2]))"
    ),
    "regclass": "(x) AS coalesce(TRY_CAST(x AS BIGINT), pg_shoal.regclass_oid(CAST(x AS VARCHAR)))",
    "regclass_name": (
        "(rel) AS (SELECT CASE WHEN n.nspname IN ('main', 'pg_catalog') THEN c.relname "
        "ELSE n.nspname || '.' || c.relname END FROM pg_shoal.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = rel)"
    ),
}


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def install(db: duckdb.DuckDBPyConnection, tables: Collection[str]) -> None:
    """Create ``pg_shoal`` in ``db``: its catalog views over the served ``tables`` and the macros."""
    db.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    # macros that read pg_shoal's views come after them (a macro's tables bind when it is made);
    # the others before (the views call them)
    later = {name for name, body in _MACROS.items() if f"{SCHEMA}." in body}
    for name, body in _MACROS.items():
        if name not in later:
            db.execute(f"CREATE OR REPLACE MACRO {SCHEMA}.{name}{body}")
    served = ", ".join(
        f"({_literal(t.split('.', 1)[0])}, {_literal(t.split('.', 1)[1])})" for t in sorted(tables)
    )
    is_lake = f"(n.nspname, c.relname) IN (SELECT * FROM (VALUES {served}))" if served else "false"
    db.execute(
        f"""CREATE OR REPLACE VIEW {SCHEMA}.pg_class AS
        SELECT c.* REPLACE (CASE WHEN {is_lake} THEN 'r' ELSE c.relkind END AS relkind),
               false AS relforcerowsecurity
        FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname <> '{SCHEMA}'"""
    )
    db.execute(
        f"""CREATE OR REPLACE VIEW {SCHEMA}.pg_database AS
        SELECT d.*, 0 AS datdba, 6 AS encoding, 'C' AS datcollate, 'C' AS datctype,
               NULL::VARCHAR AS daticulocale, NULL::VARCHAR AS daticurules, 'c' AS datlocprovider,
               NULL::VARCHAR[] AS datacl, -1 AS datconnlimit, 0 AS dattablespace
        FROM pg_catalog.pg_database d WHERE d.datname = current_database()"""
    )
    db.execute(
        f"""CREATE OR REPLACE VIEW {SCHEMA}.pg_tables AS
        SELECT n.nspname AS schemaname, c.relname AS tablename, 'shoal' AS tableowner,
               NULL::VARCHAR AS tablespace, false AS hasindexes, false AS hasrules,
               false AS hastriggers, false AS rowsecurity
        FROM {SCHEMA}.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r'"""
    )
    # DuckDB's pg_attribute gives its own type ids, its pg_type Postgres OIDs: joins of the two (JDBC's
    # getColumns, SQLAlchemy's domains) would match by accident. Here both speak Postgres OIDs.
    db.execute(
        f"""CREATE OR REPLACE VIEW {SCHEMA}.pg_attribute AS
        SELECT a.* REPLACE (
                   {SCHEMA}.pg_oid_of(dc.data_type) AS atttypid,
                   CASE WHEN dc.data_type LIKE 'DECIMAL(%' THEN
                       ((dc.numeric_precision::INTEGER << 16) | dc.numeric_scale::INTEGER) + 4
                   ELSE -1 END AS atttypmod)
        FROM pg_catalog.pg_attribute a
        JOIN duckdb_columns() dc ON dc.table_oid = a.attrelid AND dc.column_index = a.attnum"""
    )
    extra_types = " UNION ALL ".join(
        f"SELECT * REPLACE ({oid} AS oid, '{name}' AS typname, {elem} AS typelem, '{cat}' AS typcategory) "
        f"FROM pg_catalog.pg_type WHERE oid = {like}"
        for oid, name, elem, cat, like in _EXTRA_TYPES
    )
    db.execute(
        f"""CREATE OR REPLACE VIEW {SCHEMA}.pg_type AS
        SELECT * FROM pg_catalog.pg_type WHERE oid IS NOT NULL UNION ALL {extra_types}"""
    )
    db.execute(
        f"CREATE OR REPLACE VIEW {SCHEMA}.pg_namespace AS "
        f"SELECT * FROM pg_catalog.pg_namespace WHERE nspname <> '{SCHEMA}'"
    )
    for name, column in INFO_VIEWS.items():
        db.execute(
            f"CREATE OR REPLACE VIEW {SCHEMA}.information_schema_{name} AS "
            f"SELECT * FROM information_schema.{name} WHERE {column} <> '{SCHEMA}'"
        )
    for name, extra in _EXTENDED.items():
        db.execute(f"CREATE OR REPLACE VIEW {SCHEMA}.{name} AS SELECT *, {extra} FROM pg_catalog.{name}")
    for name, columns in EMPTY.items():
        cols = ", ".join(f"NULL::{c.split(' ', 1)[1]} AS {c.split(' ', 1)[0]}" for c in columns.split(", "))
        db.execute(f"CREATE OR REPLACE VIEW {SCHEMA}.{name} AS SELECT {cols} WHERE false")
    for name in sorted(later, key=lambda n: sum(f"{SCHEMA}.{m}(" in _MACROS[n] for m in later)):
        # a macro calling another of these comes after it (none calls more than one level deep)
        db.execute(f"CREATE OR REPLACE MACRO {SCHEMA}.{name}{_MACROS[name]}")


def _is_pg_catalog(node: exp.Expr | None) -> bool:
    return isinstance(node, exp.Identifier) and str(node.this).lower() == "pg_catalog"


def _type_name(to: exp.Expr) -> str:
    """``regclass`` for ``::regclass`` and ``::pg_catalog.regclass`` alike (the latter parses as a
    user-defined type whose name is ``pg_catalog.regclass``)."""
    if isinstance(to, exp.ObjectIdentifier):
        return str(to.this).lower()
    if isinstance(to, exp.DataType):
        kind = to.args.get("kind")
        if isinstance(kind, exp.Dot) and isinstance(kind.expression, exp.Identifier):
            return str(kind.expression.this).lower()
        if to.this == exp.DataType.Type.USERDEFINED and kind is not None:
            text = kind.this if isinstance(kind, exp.Identifier) else kind
            return str(text).lower().rsplit(".", 1)[-1]
        return str(to.this.value).lower()
    return ""


def _qualified_type(to: exp.Expr) -> bool:
    kind = to.args.get("kind") if isinstance(to, exp.DataType) else None
    return isinstance(kind, exp.Dot) or (isinstance(kind, str) and kind.lower().startswith("pg_catalog."))


def _func_name(node: exp.Func) -> str:
    return str(node.this).lower() if isinstance(node, exp.Anonymous) else node.sql_name().lower()


def _plain_type(to: exp.Expr) -> exp.DataType:
    try:
        return exp.DataType.build(_type_name(to), dialect="postgres")
    except (ValueError, ParseError):
        return exp.DataType.build("VARCHAR")  # a type DuckDB does not know: compared as text


def _macro(name: str, *args: exp.Expr) -> exp.Expr:
    call = exp.Anonymous(this=name, expressions=list(args))
    return exp.Dot(this=exp.to_identifier(SCHEMA), expression=call)


_OPERATORS: dict[str, type[exp.Binary]] = {
    "=": exp.EQ,
    "<>": exp.NEQ,
    "!=": exp.NEQ,
    "<": exp.LT,
    "<=": exp.LTE,
    ">": exp.GT,
    ">=": exp.GTE,
}


def _operator(node: exp.Operator) -> exp.Expr:
    op = str(node.args.get("operator") or "").lower().removeprefix("pg_catalog.").strip()
    left, right = node.this, node.expression
    if isinstance(right, exp.Collate):  # psql: OPERATOR(pg_catalog.~) '^(x)$' COLLATE pg_catalog.default
        right = right.this
    if op in ("~", "~*", "!~", "!~*"):
        flags = [exp.Literal.string("i")] if op.endswith("*") else []
        like = exp.RegexpLike(this=left, expression=right, flag=flags[0] if flags else None)
        return exp.Not(this=like) if op.startswith("!") else like
    binary = _OPERATORS.get(op)
    if binary is None:
        return node
    return binary(this=left, expression=right)


#: Postgres functions DuckDB has under another name (variadic, so not a macro)
_RENAMED = {"json_build_object": "json_object"}


def _transform(node: exp.Expr) -> exp.Expr:
    if isinstance(node, exp.Func) and _func_name(node) == "current_setting" and node.expressions:
        name = node.expressions[0]
        if not (isinstance(name, exp.Literal) and name.is_string and name.this.lower() not in SETTINGS):
            # the served settings only; any other name left as is, for the guard to refuse
            return _macro("pg_setting", name)
    if isinstance(node, exp.Anonymous) and str(node.this).lower() in _RENAMED:
        return exp.Anonymous(this=_RENAMED[str(node.this).lower()], expressions=list(node.expressions))
    if isinstance(node, exp.Operator):
        return _operator(node)
    if isinstance(node, exp.Collate):
        target = node.expression
        if isinstance(target, exp.Column) and _is_pg_catalog(target.args.get("table")):
            kept: exp.Expr = node.this  # COLLATE pg_catalog.default / "C": DuckDB compares bytes anyway
            return kept
    if isinstance(node, exp.Dot) and _is_pg_catalog(node.this) and isinstance(node.expression, exp.Func):
        func = node.expression
        name = func.name.lower() if isinstance(func, exp.Anonymous) else func.sql_name().lower()
        if name in _MACROS:
            return _macro(name, *func.expressions)
        plain: exp.Expr = func  # DuckDB's own pg_catalog function, found unqualified
        return plain
    if (
        isinstance(node, exp.Anonymous)
        and str(node.this).lower() in _MACROS
        and not isinstance(node.parent, exp.Dot)
    ):
        return _macro(str(node.this).lower(), *node.expressions)
    if isinstance(node, exp.Cast):
        kind = _type_name(node.args["to"])
        if kind == "regclass":
            inner = node.this
            if isinstance(inner, exp.Literal) and inner.is_string:
                return _macro("regclass_oid", inner)
            return _macro("regclass", inner)  # an oid, or a name sent as a parameter
        if kind in ("regtype", "regproc", "regprocedure", "regnamespace", "regrole", "oid"):
            return exp.Cast(this=node.this, to=exp.DataType.build("BIGINT"))
        if kind in ("name", "text") and isinstance(node.this, exp.Cast):
            inner_kind = _type_name(node.this.args["to"])
            if inner_kind == "regclass":
                return _macro("regclass_name", node.this.this)
            if inner_kind == "regtype":
                return exp.Anonymous(this="format_type", expressions=[node.this.this, exp.Null()])
        if _qualified_type(node.args["to"]):
            # ::pg_catalog.text and the like: the plain type
            return exp.Cast(this=node.this, to=_plain_type(node.args["to"]))
    if isinstance(node, exp.DataType) and not isinstance(node.parent, exp.Cast) and _qualified_type(node):
        # pg_catalog.int2 inside an array type: the plain type
        return _plain_type(node)
    if isinstance(node, exp.Table):
        if isinstance(node.this, exp.Func) and _is_pg_catalog(node.args.get("db")):
            node = node.copy()  # FROM pg_catalog.generate_series(...): DuckDB's own, unqualified
            node.set("db", None)
            alias = node.args.get("alias")
            if isinstance(alias, exp.TableAlias) and alias.this and not alias.columns:
                # Postgres names a scalar function's one column after its alias (... s, WHERE x[s])
                alias.set("columns", [exp.to_identifier(alias.name)])
            return node
        name = str(node.name).lower()
        db = node.args.get("db")
        if (
            name in INFO_VIEWS
            and isinstance(db, exp.Identifier)
            and str(db.this).lower() == "information_schema"
        ):
            node = node.copy()
            node.set("db", exp.to_identifier(SCHEMA))
            node.set("this", exp.to_identifier(f"information_schema_{name}"))
            if not node.args.get("alias"):  # columns qualified as tables.x keep resolving
                node.set("alias", exp.TableAlias(this=exp.to_identifier(name)))
            return node
        if name in PG_VIEWS and (not node.args.get("db") or _is_pg_catalog(node.args.get("db"))):
            node = node.copy()
            node.set("db", exp.to_identifier(SCHEMA))
            return node
    if isinstance(node, exp.Column) and _is_pg_catalog(node.args.get("db")):
        # pg_catalog.pg_class.relname (SQLAlchemy): DuckDB binds the relation by its bare name
        node = node.copy()
        node.set("db", None)
        return node
    if isinstance(node, exp.EQ) and isinstance(node.expression, exp.Any):
        # x = ANY (ARRAY[...]) (SQLAlchemy's IN with a bound array): DuckDB's list_contains
        target = node.expression.this
        if isinstance(target, exp.Paren):
            target = target.this
        if isinstance(target, exp.Array):
            return exp.In(this=node.this, expressions=list(target.expressions))
    return node


def rewrite(tree: exp.Expr) -> exp.Expr:
    """``tree`` with Postgres catalog syntax turned into what the served engine answers."""
    # a replaced node's children are not visited in the same pass (a qualified function around a
    # subquery that reads pg_catalog): repeat until nothing changes
    for _ in range(8):
        new = tree.transform(_transform, copy=True)
        if new == tree:
            break
        tree = new
    return tree

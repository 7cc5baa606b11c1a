"""The operational tables of the leads use case: a CRM and a behavioural warehouse.

One declaration, spelled in each database's dialect (MySQL/MariaDB, PostgreSQL, SQLite), chosen so
that ``shoal sync`` gives the same lake types whichever database held them (ADR 0018's mapping;
SQLite's in :mod:`shoal.replicate.sqlite`): ``int`` → int32, ``bigint`` → int64, ``text`` →
string, ``money`` → decimal(12,2), ``ts`` → naive timestamp (UTC wall time), ``date`` → date.

Every CRM table has ``updated_at`` and every warehouse table ``loaded_at`` (when the row was last
written): the cursor columns of a sync without replication rights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

Dialect = Literal["mysql", "postgres", "sqlite"]
Logical = Literal["int", "bigint", "text", "money", "ts", "date"]

_TYPES: dict[Dialect, dict[Logical, str]] = {
    "mysql": {"int": "INT", "bigint": "BIGINT", "text": "VARCHAR(64)", "money": "DECIMAL(12,2)",
              "ts": "DATETIME(6)", "date": "DATE"},
    "postgres": {"int": "INTEGER", "bigint": "BIGINT", "text": "VARCHAR(64)", "money": "NUMERIC(12,2)",
                 "ts": "TIMESTAMP", "date": "DATE"},
    "sqlite": {"int": "INT", "bigint": "BIGINT", "text": "VARCHAR(64)", "money": "DECIMAL(12,2)",
               "ts": "DATETIME", "date": "DATE"},
}  # fmt: skip

_ARROW: dict[Logical, pa.DataType] = {
    "int": pa.int32(),
    "bigint": pa.int64(),
    "text": pa.string(),
    "money": pa.decimal128(12, 2),
    "ts": pa.timestamp("us"),
    "date": pa.date32(),
}


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[tuple[str, Logical], ...]
    key: str

    @property
    def column_names(self) -> list[str]:
        return [c for c, _ in self.columns]

    @property
    def arrow_schema(self) -> pa.Schema:
        """The lake schema of the table's replica."""
        return pa.schema([pa.field(c, _ARROW[t]) for c, t in self.columns])

    def ddl(self, dialect: Dialect) -> str:
        q = "`" if dialect == "mysql" else '"'
        cols = ", ".join(f"{q}{c}{q} {_TYPES[dialect][t]}" for c, t in self.columns)
        return f"CREATE TABLE {q}{self.name}{q} ({cols}, PRIMARY KEY ({q}{self.key}{q}))"

    def cursor_index(self, dialect: Dialect, cursor_column: str) -> str:
        """An index on (cursor column, key): what a cursor-mode sync reads by (``ORDER BY`` them)."""
        q = "`" if dialect == "mysql" else '"'
        name = f"{q}{self.name}_by_{cursor_column}{q}"
        return f"CREATE INDEX {name} ON {q}{self.name}{q} ({q}{cursor_column}{q}, {q}{self.key}{q})"


CRM: tuple[TableSpec, ...] = (
    TableSpec(
        "sales_reps",
        (("rep_id", "int"), ("name", "text"), ("territory", "text"), ("hired_on", "date"),
         ("updated_at", "ts")),
        "rep_id",
    ),
    TableSpec(
        "accounts",
        (("account_id", "text"), ("name", "text"), ("industry", "text"), ("employees", "int"),
         ("segment", "text"), ("region", "text"), ("owner_rep_id", "int"), ("created_at", "ts"),
         ("updated_at", "ts")),
        "account_id",
    ),
    TableSpec(
        "teams",
        (("team_id", "text"), ("account_id", "text"), ("name", "text"), ("created_at", "ts"),
         ("updated_at", "ts")),
        "team_id",
    ),
    TableSpec(
        "users",
        (("user_id", "text"), ("account_id", "text"), ("team_id", "text"), ("email_domain", "text"),
         ("signup_source", "text"), ("plan", "text"), ("region", "text"), ("signed_up_at", "ts"),
         ("updated_at", "ts")),
        "user_id",
    ),
    TableSpec(
        "opportunities",
        (("opportunity_id", "int"), ("account_id", "text"), ("rep_id", "int"), ("stage", "text"),
         ("amount", "money"), ("created_at", "ts"), ("close_date", "date"), ("updated_at", "ts")),
        "opportunity_id",
    ),
)  # fmt: skip

WAREHOUSE: tuple[TableSpec, ...] = (
    TableSpec(
        "sessions",
        (("session_id", "bigint"), ("user_id", "text"), ("started_at", "ts"), ("duration_s", "int"),
         ("utm_source", "text"), ("device", "text"), ("loaded_at", "ts")),
        "session_id",
    ),
    TableSpec(
        "page_views",
        (("view_id", "bigint"), ("session_id", "bigint"), ("user_id", "text"), ("path", "text"),
         ("viewed_at", "ts"), ("loaded_at", "ts")),
        "view_id",
    ),
    TableSpec(
        "trial_starts",
        (("trial_id", "bigint"), ("user_id", "text"), ("plan", "text"), ("started_at", "ts"),
         ("converted_at", "ts"), ("loaded_at", "ts")),
        "trial_id",
    ),
    TableSpec(
        "feature_usage",
        (("usage_id", "bigint"), ("user_id", "text"), ("feature", "text"), ("used_at", "ts"),
         ("events", "int"), ("loaded_at", "ts")),
        "usage_id",
    ),
)  # fmt: skip

#: the database each group of tables lives in, and the cursor column a sync reads it by
DATABASES: dict[str, tuple[tuple[TableSpec, ...], str]] = {
    "crm": (CRM, "updated_at"),
    "warehouse": (WAREHOUSE, "loaded_at"),
}
SPECS: dict[str, TableSpec] = {t.name: t for group, _ in DATABASES.values() for t in group}

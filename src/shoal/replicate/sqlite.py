"""A SQLite file as a replication source: cursor and full-refresh modes (no change log to read).

SQLite is the embedded stand-in for operational databases (the demo's CRM and warehouse, ADR
0032). It keeps no binlog or WAL stream a reader could follow, so change capture is refused at
configuration time (``DatabaseSettings``); cursor rounds and full refreshes use the same keyset
chunks as the server sources, read through Python's ``sqlite3`` opened read-only.

Column types are SQLite's declared types (it stores values by affinity, not by declaration), mapped
like the server types of the same name so a replica has one shape whichever database fed it:
``INT``/``INTEGER`` → int32/int64, ``BIGINT`` → int64, ``DECIMAL(p,s)`` → decimal(p,s),
``DATETIME``/``TIMESTAMP`` (ISO 8601 text, naive) → timestamp, ``DATE`` → date, ``BOOLEAN`` →
bool, text types → string, ``BLOB`` → binary, ``REAL``/``DOUBLE`` → float64.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ClassVar

import pyarrow as pa

from shoal.lake import progress
from shoal.replicate.errors import ReplicationNotConfigured, SourceUnavailable, SyncError, UnsupportedType
from shoal.replicate.model import Column, Converter, SourceTable, Transaction
from shoal.replicate.source import Source
from shoal.replicate.typemap import check_ident

#: how timestamps are written and compared (SQLite compares them as text: one spelling only)
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _to_datetime(v: Any) -> datetime:
    return v if isinstance(v, datetime) else datetime.fromisoformat(str(v))


def _to_date(v: Any) -> date:
    return v if isinstance(v, date) else date.fromisoformat(str(v)[:10])


def _to_bool(v: Any) -> bool:
    return bool(int(v)) if not isinstance(v, str) else v.lower() in ("1", "t", "true")


def _to_bytes(v: Any) -> bytes:
    return v.encode() if isinstance(v, str) else bytes(v)


def _decimal(scale: int) -> Converter:
    quantum = Decimal(1).scaleb(-scale)

    def convert(v: Any) -> Decimal:
        # DECIMAL columns have NUMERIC affinity: '12.34' may come back as the REAL 12.34, whose
        # shortest repr is the written value (exact while it has at most 15 significant digits)
        return Decimal(repr(v) if isinstance(v, float) else str(v)).quantize(quantum)

    return convert


_DECIMAL = re.compile(r"^(?:decimal|numeric)\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)$")


def sqlite_column(name: str, declared: str) -> Column:
    """The lake column of a SQLite column, by its declared type."""
    d = " ".join(declared.lower().split())
    base = d.split("(")[0].strip()
    conv: Converter | None = None
    if m := _DECIMAL.match(d):
        precision, scale = int(m.group(1)), int(m.group(2) or 0)
        if precision > 38:
            raise UnsupportedType(f"column {name!r}: SQLite type {declared} has no exact lake type")
        typ: pa.DataType = pa.decimal128(precision, scale)
        conv = _decimal(scale)
    elif base in ("int", "mediumint", "smallint", "tinyint"):
        typ = pa.int32()
    elif base in ("integer", "bigint", "int8"):
        typ = pa.int64()
    elif base in ("boolean", "bool"):
        typ, conv = pa.bool_(), _to_bool
    elif base in ("real", "double", "double precision", "float"):
        typ = pa.float64()
    elif base in ("datetime", "timestamp"):
        typ, conv = pa.timestamp("us"), _to_datetime
    elif base == "date":
        typ, conv = pa.date32(), _to_date
    elif base in ("text", "varchar", "char", "character", "nvarchar", "clob", "json", "") or "char" in base:
        typ = pa.string()
    elif base == "blob":
        typ, conv = pa.binary(), _to_bytes
    else:
        raise UnsupportedType(f"column {name!r}: SQLite type {declared} has no exact lake type")
    return Column(name, typ, declared, conv)


def sqlite_value(value: Any) -> Any:
    """A Python value as SQLite stores it here (timestamps as text in :data:`TIMESTAMP_FORMAT`)."""
    if isinstance(value, datetime):
        # the spelling of TIMESTAMP_FORMAT (isoformat is several times faster than strftime)
        naive = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
        return naive.isoformat(" ", "microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


# Integer, float and text columns come from the driver as int/float/str already, except where
# SQLite's dynamic typing stored another type: those values are coerced here, with a cheap type
# check (these columns carry no converter, so building Arrow does not call one per value again).
_PLAIN: dict[pa.DataType, type] = {pa.int32(): int, pa.int64(): int, pa.float64(): float, pa.string(): str}


def _typed(table: SourceTable, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The driver's rows in the columns' Python types (a datetime, not its text: cursor marks are
    read from them), converted in place."""
    fixes: list[tuple[str, Converter]] = []
    for c in table.columns:
        if c.convert is not None:
            fixes.append((c.name, c.convert))
        elif c.type in _PLAIN:
            fixes.append((c.name, _PLAIN[c.type]))
    for name, convert in fixes:
        plain = convert if isinstance(convert, type) else None
        for row in rows:
            value = row[name]
            if value is not None and type(value) is not plain:
                row[name] = convert(value)
    return rows


class SQLiteSource(Source):
    """One SQLite file as a source (``endpoint.path``), read-only."""

    scanner = "sqlite"
    scanner_setup = "SELECT 1"
    _NO_LOG: ClassVar[str] = "sqlite has no change log: use sync.mode cursor or full"

    @property
    def namespace(self) -> str:
        return "main"

    def quote(self, name: str) -> str:
        return _q(name)

    def relation(self, table: str) -> str:
        return _q(table)

    def select_list(self, table: SourceTable) -> list[str]:
        return [_q(c) for c in table.column_names]

    def literal(self, value: Any) -> str:
        v = sqlite_value(value)
        if v is None:
            return "NULL"
        if isinstance(v, bool | int | float):
            return str(int(v) if isinstance(v, bool) else v)
        return "'" + str(v).replace("'", "''") + "'"

    def _unavailable(self, exc: BaseException) -> SyncError:
        return SourceUnavailable(f"database {self.name} ({self.endpoint.where()}): {exc}")

    def connection(self) -> sqlite3.Connection:
        if self._con is None:
            path = self.endpoint.path
            if not path.is_file():
                raise SourceUnavailable(f"database {self.name} ({self.endpoint.where()}): no such file")
            try:
                # read-only: a sync never writes to the source, nor creates an empty file
                self._con = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, check_same_thread=False)
            except sqlite3.Error as exc:
                raise self._unavailable(exc) from None
        con: sqlite3.Connection = self._con
        return con

    def query(self, sql: str, args: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        # the shared keyset SQL uses %s placeholders; sqlite3 takes qmarks
        try:
            cur = self.connection().execute(sql.replace("%s", "?"), [sqlite_value(a) for a in args or ()])
            return list(cur.fetchall())
        except sqlite3.OperationalError as exc:
            self.close()
            raise self._unavailable(exc) from None

    def position_key(self, table: str) -> str:
        return progress.cursor(self.name, table)

    def list_tables(self) -> list[str]:
        rows = self.query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
        return [str(r[0]) for r in rows]

    def describe(self, tables: Sequence[str], *, need_key: bool = True) -> list[SourceTable]:
        out = []
        for table in tables:
            check_ident(table, "table")
            info = self.query(f"PRAGMA table_info({_q(table)})")
            if not info:
                raise SyncError(f"database {self.name}: no table {table!r} in {self.endpoint.path}")
            # (cid, name, type, notnull, default, pk): pk is the column's position in the key, 0 = none
            key = tuple(str(r[1]) for r in sorted((r for r in info if r[5]), key=lambda r: r[5]))
            self.require_key(table, key, need_key)
            columns = tuple(sqlite_column(str(r[1]), str(r[2] or "")) for r in info)
            out.append(SourceTable(table, columns, key))
        return out

    def chunks(
        self,
        table: SourceTable,
        after: Sequence[Any] | None,
        rows: int,
        *,
        order: Sequence[str] | None = None,
        floor: tuple[str, Any] | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        # typed like a server driver's rows (a datetime, not its text): cursor marks are read from them
        for chunk in super().chunks(table, after, rows, order=order, floor=floor):
            yield _typed(table, chunk)

    def stream(self, table: SourceTable, rows: int) -> Iterator[list[dict[str, Any]]]:
        cur = self.connection().execute(f"SELECT {', '.join(self.select_list(table))} FROM {_q(table.name)}")
        names = table.column_names
        while batch := cur.fetchmany(rows):
            yield _typed(table, [dict(zip(names, r, strict=True)) for r in batch])

    def arrow_chunks(self, table: SourceTable, after: Sequence[Any] | None, rows: int) -> Iterator[pa.Table]:
        # through the driver: DuckDB's sqlite scanner reads DECIMAL columns as DOUBLE
        for chunk in self.chunks(table, after, rows):
            yield table.to_arrow(chunk)

    def start_position(self) -> int:
        raise ReplicationNotConfigured(f"database {self.name}: {self._NO_LOG}")

    def changes(self, since: int, tables: Sequence[SourceTable], max_changes: int) -> Iterator[Transaction]:
        raise ReplicationNotConfigured(f"database {self.name}: {self._NO_LOG}")

    def acknowledge(self, position: int) -> None:
        return None

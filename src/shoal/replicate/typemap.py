"""Exact lake types for MySQL/MariaDB and PostgreSQL columns (docs/adr/0018-replication-types.md).

The rule: a value read back from the lake equals the source value. So unsigned BIGINT becomes
DECIMAL(20,0) (it does not fit int64), DECIMAL(p,s) stays DECIMAL(p,s), an unconstrained NUMERIC
is text, TIMESTAMP/timestamptz are instants in UTC and DATETIME/timestamp stay naive, JSON/JSONB are
their JSON text, ENUM/SET are text, BLOB/BYTEA are binary and MySQL's BOOLEAN (tinyint(1)) is a
boolean.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa

from shoal.replicate.errors import UnsupportedType
from shoal.replicate.model import Column, Converter

_MYSQL_INTS = {
    "tinyint": (pa.int8(), pa.int16()),
    "smallint": (pa.int16(), pa.int32()),
    "mediumint": (pa.int32(), pa.int32()),
    "int": (pa.int32(), pa.int64()),
    "integer": (pa.int32(), pa.int64()),
    "bigint": (pa.int64(), pa.decimal128(20, 0)),
}
_MYSQL_STRINGS = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "json", "uuid",
                  "inet4", "inet6"}  # fmt: skip
_MYSQL_BINARY = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}


def _to_bool(v: Any) -> bool:
    return bool(int(v)) if not isinstance(v, bool) else v


def _to_decimal(v: Any) -> Decimal:
    return v if isinstance(v, Decimal) else Decimal(v)


def _to_text(v: Any) -> str:
    if type(v) is str:  # most values (the binlog decoder's text): no other check
        return v
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, dict | list):
        return json.dumps(v, separators=(", ", ": "))
    if isinstance(v, set | frozenset):
        return ",".join(sorted(v))
    return str(v)


def _to_bytes(v: Any) -> bytes:
    if type(v) is bytes:
        return v
    if isinstance(v, str):
        return v.encode("utf-8")
    return bytes(v)


def _to_utc(v: Any) -> datetime:
    # MySQL TIMESTAMP values are read with time_zone '+00:00' and the binlog carries epoch seconds:
    # a naive value is UTC.
    if isinstance(v, datetime):
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
    raise TypeError(f"expected a datetime, got {type(v).__name__}")


def _bit_to_int(v: Any) -> int:
    return int.from_bytes(v, "big") if isinstance(v, bytes) else int(v)


def _time_of(v: Any) -> time:
    if isinstance(v, timedelta):
        seconds = int(v.total_seconds())
        return time(seconds // 3600 % 24, seconds // 60 % 60, seconds % 60, v.microseconds)
    return v if isinstance(v, time) else time.fromisoformat(str(v))


def mysql_column(
    name: str, data_type: str, column_type: str, precision: int | None, scale: int | None
) -> Column:
    """The lake column of a MySQL/MariaDB column (information_schema data_type/column_type)."""
    dt = data_type.lower()
    ct = column_type.lower()
    conv: Converter | None = None
    if dt == "tinyint" and ct.startswith("tinyint(1)"):
        typ: pa.DataType = pa.bool_()
        conv = _to_bool
    elif dt in {"boolean", "bool"}:
        typ, conv = pa.bool_(), _to_bool
    elif dt in _MYSQL_INTS:
        signed, unsigned = _MYSQL_INTS[dt]
        typ = unsigned if "unsigned" in ct else signed
        if pa.types.is_decimal(typ):
            conv = _to_decimal
    elif dt in {"decimal", "numeric"}:
        typ = pa.decimal128(int(precision or 10), int(scale or 0)) if (precision or 10) <= 38 else pa.string()
        conv = _to_decimal if pa.types.is_decimal(typ) else _to_text
    elif dt == "float":
        typ = pa.float32()
    elif dt in {"double", "real"}:
        typ = pa.float64()
    elif dt == "date":
        typ = pa.date32()
    elif dt == "datetime":
        typ = pa.timestamp("us")
    elif dt == "timestamp":
        typ, conv = pa.timestamp("us", tz="UTC"), _to_utc
    elif dt == "time":
        typ, conv = pa.time64("us"), _time_of
    elif dt == "year":
        typ, conv = pa.int16(), int
    elif dt == "bit":
        typ, conv = pa.int64(), _bit_to_int
    elif dt in _MYSQL_STRINGS or dt == "set":
        typ, conv = pa.string(), _to_text
    elif dt in _MYSQL_BINARY:
        typ, conv = pa.binary(), _to_bytes
    else:
        raise UnsupportedType(f"column {name!r}: MySQL type {column_type} has no exact lake type")
    return Column(name, typ, column_type, conv)


def _pg_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    return str(v) in ("t", "true", "1")


def _pg_bytes(v: Any) -> bytes:
    if isinstance(v, str):
        return bytes.fromhex(v[2:]) if v.startswith("\\x") else v.encode()
    return bytes(v)


def _pg_timestamp(v: Any) -> datetime:
    return v if isinstance(v, datetime) else datetime.fromisoformat(str(v))


def _pg_timestamptz(v: Any) -> datetime:
    d = v if isinstance(v, datetime) else datetime.fromisoformat(str(v))
    return d.astimezone(UTC)


def _pg_date(v: Any) -> date:
    return v if isinstance(v, date) else date.fromisoformat(str(v))


def pg_column(name: str, type_name: str, udt: str, precision: int | None, scale: int | None) -> Column:
    """The lake column of a PostgreSQL column (information_schema data_type and udt_name).

    Values arrive typed (psycopg, in the snapshot) or as text (pgoutput): every converter takes both.
    """
    t = type_name.lower()
    u = udt.lower()
    conv: Converter | None
    if u == "bool":
        typ, conv = pa.bool_(), _pg_bool
    elif u in ("int2", "int4", "int8"):
        typ, conv = {"int2": pa.int16(), "int4": pa.int32(), "int8": pa.int64()}[u], int
    elif u == "numeric":
        if precision is not None and precision <= 38:
            typ, conv = pa.decimal128(precision, scale or 0), _to_decimal
        else:
            typ, conv = pa.string(), _to_text  # unconstrained: any scale, kept exact as text
    elif u == "float4":
        typ, conv = pa.float32(), float
    elif u == "float8":
        typ, conv = pa.float64(), float
    elif u == "date":
        typ, conv = pa.date32(), _pg_date
    elif u == "timestamp":
        typ, conv = pa.timestamp("us"), _pg_timestamp
    elif u == "timestamptz":
        typ, conv = pa.timestamp("us", tz="UTC"), _pg_timestamptz
    elif u == "time":
        typ, conv = pa.time64("us"), _time_of
    elif u == "bytea":
        typ, conv = pa.binary(), _pg_bytes
    elif u in ("text", "varchar", "bpchar", "json", "jsonb", "uuid", "citext", "name", "inet", "cidr") or (
        t == "user-defined"  # enums (their labels)
    ):
        typ, conv = pa.string(), _to_text
    else:
        raise UnsupportedType(f"column {name!r}: PostgreSQL type {udt} has no exact lake type")
    return Column(name, typ, udt, conv)


def pg_select_expr(column: Column) -> str:
    """The snapshot's SELECT expression: JSON, enums and others as their text (as pgoutput sends)."""
    ident = '"' + column.name.replace('"', '""') + '"'
    if pa.types.is_string(column.type) and column.source_type not in ("text", "varchar", "bpchar"):
        return f"{ident}::text"
    return ident


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


def check_ident(name: str, what: str) -> str:
    if not _IDENT.match(name):
        raise UnsupportedType(f"{what} {name!r}: only plain identifiers are supported")
    return name

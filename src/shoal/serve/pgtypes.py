"""Postgres types of served columns: the OID a column is described as, and its values in binary
format (what a client asks for per result column in Bind: pgjdbc does for numbers, dates and times
once a statement is prepared; psycopg with ``binary=True``).

Text format is in :mod:`shoal.serve.wire`; a column whose binary form is not written here (a list of
structs, a map) is refused with one line naming it, so a client never misreads text as binary.
"""

from __future__ import annotations

import struct
import uuid
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa

from shoal.errors import ShoalError, Terminal

PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_EPOCH_DATE = PG_EPOCH.date()

BOOL, BYTEA, INT8, INT2, INT4, TEXT, JSON, FLOAT4, FLOAT8 = 16, 17, 20, 21, 23, 25, 114, 700, 701
DATE, TIME, TIMESTAMP, TIMESTAMPTZ, INTERVAL, NUMERIC, UUID = 1082, 1083, 1114, 1184, 1186, 1700, 2950
ARRAY_OF = {BOOL: 1000, INT2: 1005, INT4: 1007, INT8: 1016, TEXT: 1009, FLOAT4: 1021, FLOAT8: 1022}
ARRAY_OF |= {NUMERIC: 1231, DATE: 1182, TIMESTAMP: 1115, TIMESTAMPTZ: 1185}
TYPE_SIZE = {BOOL: 1, INT2: 2, INT4: 4, INT8: 8, FLOAT4: 4, FLOAT8: 8, DATE: 4, TIME: 8, TIMESTAMP: 8}
TYPE_SIZE |= {TIMESTAMPTZ: 8, INTERVAL: 16, UUID: 16}


def type_oid(t: pa.DataType) -> int:
    """The Postgres type a column of Arrow type ``t`` is described as."""
    if pa.types.is_boolean(t):
        return BOOL
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t):
        return INT2
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return INT4
    if pa.types.is_int64(t) or pa.types.is_uint32(t):
        return INT8
    if pa.types.is_uint64(t) or pa.types.is_decimal(t):
        return NUMERIC
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return FLOAT4
    if pa.types.is_float64(t):
        return FLOAT8
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return BYTEA
    if pa.types.is_date(t):
        return DATE
    if pa.types.is_time(t):
        return TIME
    if pa.types.is_timestamp(t):
        return TIMESTAMPTZ if t.tz else TIMESTAMP
    if pa.types.is_duration(t) or pa.types.is_interval(t):
        return INTERVAL
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return ARRAY_OF.get(type_oid(t.value_type), JSON)
    if pa.types.is_struct(t) or pa.types.is_map(t):
        return JSON
    return TEXT


class UnsupportedBinary(ShoalError, Terminal):
    """A client asked for a result column in binary format that shoal does not encode."""


ELEMENT_OF = {array: element for element, array in ARRAY_OF.items()}


def _numeric(v: Decimal) -> bytes:
    """Postgres binary NUMERIC: base-10000 digits, weight, sign, display scale."""
    if v.is_nan():
        return struct.pack("!hhHh", 0, 0, 0xC000, 0)
    sign, digits, exp = v.as_tuple()
    assert isinstance(exp, int)
    dscale = max(-exp, 0)
    text = "".join(map(str, digits))
    # integer part and fraction as decimal strings, each padded to whole base-10000 groups
    if exp >= 0:
        int_part, frac_part = text + "0" * exp, ""
    else:
        int_part = text[:exp] if len(text) > -exp else ""
        frac_part = text[exp:].rjust(-exp, "0")
    int_part = int_part.lstrip("0")
    int_groups = [int(int_part[max(i - 4, 0) : i]) for i in range(len(int_part), 0, -4)][::-1]
    frac_part = frac_part + "0" * (-len(frac_part) % 4)
    frac_groups = [int(frac_part[i : i + 4]) for i in range(0, len(frac_part), 4)]
    groups = int_groups + frac_groups
    weight = len(int_groups) - 1
    while groups and groups[-1] == 0:  # trailing zero groups carry no digits
        groups.pop()
    while groups and groups[0] == 0:  # leading ones (a pure fraction) move the weight instead
        groups.pop(0)
        weight -= 1
    if not groups:
        weight = 0
    head = struct.pack("!hhHh", len(groups), weight, 0x4000 if sign else 0, dscale)
    return head + struct.pack(f"!{len(groups)}H", *groups)


def _micros(d: timedelta) -> int:
    return (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds


def binary_value(v: Any, oid: int) -> bytes:
    """``v`` (a Python value of the column) in Postgres binary format for type ``oid``."""
    if oid == BOOL:
        return b"\x01" if v else b"\x00"
    if oid == INT2:
        return struct.pack("!h", v)
    if oid == INT4:
        return struct.pack("!i", v)
    if oid == INT8:
        return struct.pack("!q", v)
    if oid == FLOAT4:
        return struct.pack("!f", v)
    if oid == FLOAT8:
        return struct.pack("!d", v)
    if oid == NUMERIC:
        return _numeric(v if isinstance(v, Decimal) else Decimal(v))
    if oid == BYTEA:
        return bytes(v)
    if oid in (TEXT, JSON):
        return v.encode() if isinstance(v, str) else str(v).encode()
    if oid == DATE:
        return struct.pack("!i", (v - _EPOCH_DATE).days)
    if oid == TIME:
        assert isinstance(v, time)
        return struct.pack("!q", ((v.hour * 60 + v.minute) * 60 + v.second) * 1_000_000 + v.microsecond)
    if oid in (TIMESTAMP, TIMESTAMPTZ):
        assert isinstance(v, datetime)
        when = v if v.tzinfo is not None else v.replace(tzinfo=UTC)
        return struct.pack("!q", _micros(when - PG_EPOCH))
    if oid == INTERVAL:
        return struct.pack(
            "!qii", _micros(timedelta(seconds=v.seconds, microseconds=v.microseconds)), v.days, 0
        )
    if oid == UUID:
        return uuid.UUID(str(v)).bytes
    element = ELEMENT_OF.get(oid)
    if element is not None and isinstance(v, list):
        has_null = any(x is None for x in v)
        out = bytearray(struct.pack("!iiIii", 1, int(has_null), element, len(v), 1))
        for x in v:
            if x is None:
                out += b"\xff\xff\xff\xff"
            else:
                item = binary_value(x, element)
                out += struct.pack("!i", len(item)) + item
        return bytes(out)
    raise UnsupportedBinary(f"binary result format for type oid {oid} is not supported: ask for text")


def column_binary(column: pa.Array, oid: int) -> list[bytes | None]:
    """One result column in binary format (None for NULL)."""
    if oid == JSON:
        from shoal.jsonsafe import dumps

        return [None if v is None else dumps(v).encode() for v in column.to_pylist()]
    if oid in (TIMESTAMP, TIMESTAMPTZ) and pa.types.is_timestamp(column.type):
        # straight from the Arrow integers: no datetime objects per row
        micros = column.cast(pa.timestamp("us", tz=column.type.tz)).cast(pa.int64())
        offset = _micros(PG_EPOCH - datetime(1970, 1, 1, tzinfo=UTC))
        return [None if m is None else struct.pack("!q", m - offset) for m in micros.to_pylist()]
    return [None if v is None else binary_value(v, oid) for v in column.to_pylist()]

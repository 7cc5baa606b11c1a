"""Query results as strict RFC 8259 JSON, one documented encoding per SQL type.

Used by every JSON output (CLI ``--format json``, the HTTP API) so the same value always looks
the same:

======================  =========================================================================
SQL type                JSON
======================  =========================================================================
BOOLEAN, integers       true/false, numbers (64-bit integers are exact numbers; HUGEINT too)
DOUBLE/FLOAT            numbers; NaN, +inf and -inf as the strings "NaN", "Infinity", "-Infinity"
                        (bare NaN/Infinity are not JSON, strict parsers reject them)
DECIMAL                 a string with the exact digits ("12.340000"): money must not round
DATE / TIME             ISO 8601 strings ("2026-01-31", "13:45:00.123456")
TIMESTAMP [WITH TZ]     ISO 8601 strings; with a zone the offset is written ("...T10:00:00+00:00")
INTERVAL                a number of seconds
BLOB                    a lower-case hex string
UUID                    its canonical string
LIST / ARRAY            an array of encoded elements
STRUCT                  an object of encoded fields
MAP                     an object; keys as strings
======================  =========================================================================
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any


def to_jsonable(value: Any) -> Any:
    """``value`` (as Arrow/DuckDB hand it to Python) in the documented JSON encoding."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, Decimal):
        if value.is_nan():
            return "NaN"
        if value.is_infinite():
            return "Infinity" if value > 0 else "-Infinity"
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        # Arrow maps come back as lists of (key, value) tuples
        if value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
            return {str(k): to_jsonable(v) for k, v in value}
        return [to_jsonable(v) for v in value]
    return str(value)


def dumps(obj: Any, **kwargs: Any) -> str:
    """Strict JSON text of ``obj`` (never a bare NaN or Infinity)."""
    return json.dumps(to_jsonable(obj), allow_nan=False, ensure_ascii=False, **kwargs)

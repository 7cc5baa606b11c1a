"""SQL text for refreshes: quoted identifiers, literals, and constant bounds of touched values;
and the few Arrow helpers refreshes share.

A constant bound (``col IN (...)``, ``col BETWEEN a AND b``, ``col >= a``) added to a join lets
DuckDB push a filter into the Delta scans and skip partitions and files.
"""

from __future__ import annotations

import datetime as dt
import decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shoal.lake import sql_literal

IN_LIST_MAX = 256  # more touched values than this: a range instead of an IN list
#: what Arrow raises for a type its joins, aggregations or casts cannot take (callers fall back)
ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)
#: the row-position column of :func:`with_row_index`
ROW_INDEX = "__shoal_i"


def literal(value: object) -> str | None:
    """A DuckDB literal for a value of a basic type, None for anything else (no bound is derived)."""
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return f"TIMESTAMPTZ '{value.isoformat()}'" if value.tzinfo else f"TIMESTAMP '{value.isoformat()}'"
    return sql_literal(value)


def plain(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """String views (DuckDB's Arrow output) as strings: few compute kernels take views."""
    return values.cast(pa.string()) if pa.types.is_string_view(values.type) else values


def with_row_index(keys: pa.Table) -> pa.Table:
    """``keys`` with ``ROW_INDEX``, each row's position: an Arrow join reorders rows, so what it
    matches is taken back by position."""
    return keys.append_column(ROW_INDEX, pa.array(np.arange(keys.num_rows, dtype=np.int64)))


def constant_bound(column_sql: str, values: pa.ChunkedArray, *, exact: bool) -> str | None:
    """A constant condition every row in scope satisfies: ``column IN (touched values)`` when
    ``exact`` and there are few, else ``column >= min`` (and ``<= max`` when ``exact``)."""
    if values.null_count or len(values) == 0:
        return None  # NULL slices and whole-slice restates: no constant bound holds
    values = plain(values)
    try:
        return _bound(column_sql, values, exact=exact)
    except pa.ArrowNotImplementedError:
        return None  # a type without min/max or unique kernels


def _bound(column_sql: str, values: pa.ChunkedArray, *, exact: bool) -> str | None:
    if exact:
        distinct = pc.unique(values).to_pylist()
        if len(distinct) <= IN_LIST_MAX:
            literals = [literal(v) for v in distinct]
            if all(lit is not None for lit in literals):
                return f"{column_sql} IN ({', '.join(str(lit) for lit in literals)})"
    bounds = pc.min_max(values)
    low, high = literal(bounds["min"].as_py()), literal(bounds["max"].as_py())
    if low is None or high is None:
        return None
    return f"{column_sql} BETWEEN {low} AND {high}" if exact else f"{column_sql} >= {low}"

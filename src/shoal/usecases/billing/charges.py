"""``billing.charges_hourly``'s incremental rows in Arrow and numpy (the model's ``incremental_arrow``).

The revenue watcher refreshes charges every second or so with a few thousand to some tens of
thousands of new events. ``CHARGES_HOURLY_INCREMENTAL_SQL`` costs ~7 CPU-µs per event there,
most of it DuckDB's windows (the dedupe by event id, the running total per resource-month) and
its string handling for rows it only passes through. This computes the same rows with one sort
and a segmented cumulative sum in numpy (issue 18).

It is conservative, like the columnar protobuf decoder: it returns None — and the runner runs the
SQL, the definition — for any input where its arithmetic or ordering could differ from DuckDB's:
a NULL in a key, an hour, a price or a quantity; a negative amount (SQL's integer division and
``least``/``greatest`` treat those in ways not worth copying); a product that could leave int64
(the SQL multiplies in HUGEINT). Every other input gives exactly the SQL's rows
(``tests/unit/test_billing_charges.py`` compares them, and the Decimal reference checks both).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shoal.models import ScopeInputs, SliceInputs
from shoal.models.sql import ARROW_ERRORS
from shoal.usecases.billing.events import USAGE

MICROS = 1_000_000
_SLICE = ("billing_month", "resource_id")
#: the columns copied from each event to its charge row, as they are
_ATTRIBUTES = (
    "event_id",
    "resource_id",
    "user_id",
    "team_id",
    "region",
    "product",
    "plan",
    "unit",
    "currency",
)
_LIMIT = 1 << 62  # sums and products stay below this: no int64 overflow anywhere below
_US_PER_DAY = 86_400 * MICROS
_MONEY = pa.decimal128(18, 6)
_LINES = pa.schema([("billing_month", pa.string()), ("resource_id", pa.string()), ("micros", pa.int64())])


def charges_incremental(inputs: SliceInputs) -> pa.Table | None:
    """The rows ``CHARGES_HOURLY_INCREMENTAL_SQL`` returns for ``inputs``, or None (run the SQL)."""
    try:
        return _compute(inputs)
    except ARROW_ERRORS:
        return None  # a column of a type this does not take (e.g. after a schema change): the SQL's


def _compute(inputs: SliceInputs) -> pa.Table | None:
    changes, old = inputs.changes, inputs.old
    if changes is None or any(c not in changes.column_names for c in _NEEDED):
        return None
    if old.schema != inputs.schema:
        old = old.select(inputs.schema.names).cast(inputs.schema)
    fresh = _dedupe(
        changes.filter(pc.is_in(changes["_change_type"], pa.array(["insert", "update_postimage"])))
    )
    if fresh is None:
        return None
    if old.num_rows:  # events already charged are in scope with their charge rows
        fresh = fresh.filter(pc.invert(pc.is_in(fresh["event_id"], old["event_id"])))
    fresh = fresh.filter(pc.equal(fresh["event_type"], USAGE))

    old_money = [_micros(old[c]) for c in ("quantity", "hourly_price", "monthly_cap")]
    if any(m is None for m in old_money):
        return None
    qty_o, price_o, cap_o = old_money
    qty = _concat(qty_o, _ints(fresh["quantity_micros"]))
    price = _concat(price_o, _ints(fresh["hourly_price_micros"]))
    cap = _concat(cap_o, _ints(fresh["monthly_cap_micros"]))
    if qty is None or price is None or cap is None or qty[1] is not None or price[1] is not None:
        return None  # a NULL quantity or price: NULL arithmetic is the SQL's to do
    q, p = qty[0], price[0]
    c_val, c_null = cap
    if len(q) and (q.min() < 0 or p.min() < 0 or int(q.max()) * int(p.max()) + MICROS >= _LIMIT):
        return None
    if len(c_val) and (c_val.min() < 0 or c_val.max() >= _LIMIT):
        return None
    uncapped = (p * q + MICROS // 2) // MICROS
    if int(uncapped.sum()) >= _LIMIT:
        return None

    keys = pa.table(
        {
            "billing_month": _concat_arrays(old["billing_month"], fresh["billing_month"]),
            "resource_id": _concat_arrays(old["resource_id"], fresh["resource_id"]),
            "billing_hour": _concat_arrays(old["billing_hour"], fresh["billing_hour"]),
            "event_id": _concat_arrays(old["event_id"], fresh["event_id"]),
        }
    )
    if any(col.null_count for col in keys.columns):
        return None  # SQL orders and partitions NULLs in its own way; not worth copying

    lines = _month_lines(inputs.query)
    if lines is None:
        return None
    before = _before(keys, uncapped, old.num_rows, lines)
    if before is None:
        return None
    charge = np.maximum(0, np.minimum(uncapped, c_val - before))
    if c_null is not None:
        charge[c_null] = uncapped[c_null]  # no cap: the uncapped charge

    hours = keys["billing_hour"].combine_chunks()
    hour_us = np.asarray(hours.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
    dates = pa.array(np.floor_divide(hour_us, _US_PER_DAY).astype(np.int32), pa.int32()).cast(pa.date32())
    columns: dict[str, pa.Array | pa.ChunkedArray] = {
        "billing_month": keys["billing_month"],
        "billing_date": dates,
        "billing_hour": hours,
    }
    for name in _ATTRIBUTES:
        columns[name] = keys[name] if name in keys.column_names else _concat_arrays(old[name], fresh[name])
    columns["quantity"] = _decimal(q)
    columns["hourly_price"] = _decimal(p)
    columns["monthly_cap"] = _decimal(c_val, c_null)
    columns["uncapped_charge"] = _decimal(uncapped)
    columns["charge"] = _decimal(charge)
    table = pa.table(columns)
    return table.select(inputs.schema.names).cast(inputs.schema)


_NEEDED = (
    "_change_type", "_kafka_partition", "_kafka_offset", "event_type", "quantity_micros",
    "hourly_price_micros", "monthly_cap_micros", *_SLICE, "billing_hour", *_ATTRIBUTES,
)  # fmt: skip


def _dedupe(rows: pa.Table) -> pa.Table | None:
    """One row per event id: the first by Kafka position (the SQL's ``_DEDUPE``). Only the rows of
    ids that occur more than once (re-sent duplicates, a few in a hundred) are sorted."""
    ids = rows["event_id"]
    if ids.null_count:
        return None
    counts = pc.value_counts(ids)
    repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    if len(repeated) == 0:
        return rows
    dup_rows = np.flatnonzero(np.asarray(pc.is_in(ids, value_set=repeated).to_numpy(zero_copy_only=False)))
    dups = rows.select(["event_id", "_kafka_partition", "_kafka_offset"]).take(pa.array(dup_rows))
    order = np.asarray(
        pc.sort_indices(
            dups,
            sort_keys=[
                ("event_id", "ascending"),
                ("_kafka_partition", "ascending"),
                ("_kafka_offset", "ascending"),
            ],
        ).to_numpy(),
        dtype=np.int64,
    )
    sorted_ids = dups["event_id"].take(pa.array(order))
    later = np.zeros(len(order), dtype=bool)  # a repeat of the id before it in this order
    later[1:] = np.asarray(
        pc.equal(sorted_ids.slice(1), sorted_ids.slice(0, len(order) - 1)).to_numpy(zero_copy_only=False),
        dtype=bool,
    )
    keep = np.ones(rows.num_rows, dtype=bool)
    keep[dup_rows[order[later]]] = False
    return rows.filter(pa.array(keep))


def _month_lines(query: Callable[[str], pa.Table]) -> pa.Table | None:
    """Every invoice line's slice and uncapped amount in micro-units: the month-to-date totals.
    Read whole (one line per resource and plan, however many hours) and matched here: cheaper
    than joining them with the touched slices in DuckDB (3 against 12 CPU-ms a cycle)."""
    read = query("SELECT billing_month, resource_id, uncapped_amount FROM billing.invoice_lines")
    amounts = _micros(read["uncapped_amount"].cast(_MONEY))
    if amounts is None:
        return None
    return pa.table(
        {"billing_month": read["billing_month"], "resource_id": read["resource_id"], "micros": amounts[0]}
    ).cast(_LINES)  # (DuckDB may hand strings over as views)


def _before(keys: pa.Table, uncapped: np.ndarray, n_old: int, lines: pa.Table) -> np.ndarray | None:
    """Per row, what the SQL's running window gives: the uncapped total of its slice's earlier
    hours (its month-to-date total in ``lines`` less the rows being restated, the first ``n_old``)
    plus the uncapped charges of the slice's earlier rows in (hour, event id) order."""
    n = keys.num_rows
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    # one integer per slice, over the rows and the lines alike (a hash per column, no join)
    codes = []
    for col in _SLICE:
        both = pa.chunked_array([*keys[col].chunks, *lines[col].chunks], pa.string())
        encoded = both.combine_chunks().dictionary_encode()
        codes.append((np.asarray(encoded.indices.to_numpy(), dtype=np.int64), len(encoded.dictionary)))
    (month, _), (resource, n_resources) = codes
    slice_code = month * n_resources + resource
    row_code, line_code = slice_code[:n], slice_code[n:]

    order = pc.sort_indices(
        pa.table({"s": row_code, "h": keys["billing_hour"], "e": keys["event_id"]}),
        sort_keys=[("s", "ascending"), ("h", "ascending"), ("e", "ascending")],
    )
    idx = np.asarray(order.to_numpy(), dtype=np.int64)
    sorted_code = row_code[idx]
    starts = np.ones(n, dtype=bool)
    starts[1:] = sorted_code[1:] != sorted_code[:-1]
    group = np.cumsum(starts) - 1
    head_code = sorted_code[starts]  # ascending: one per slice

    # month-to-date totals of every slice the lines name, then those of the slices here
    month_totals = _sum_by(
        line_code, lines["micros"].to_numpy(), len(slice_code) and int(slice_code.max()) + 1
    )
    prior = month_totals[head_code]
    restated = idx < n_old  # sorted positions holding the rows being restated
    prior -= _sum_by(group[restated], uncapped[idx[restated]], len(head_code))
    if np.abs(prior).max() >= _LIMIT:
        return None

    u = uncapped[idx]
    exclusive = np.cumsum(u) - u
    within = exclusive - exclusive[starts][group]
    before = np.empty(n, dtype=np.int64)
    before[idx] = prior[group] + within
    return before


def _sum_by(index: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """Exact int64 sums of ``values`` per ``index`` (0 .. size-1): a float bincount when every
    partial sum is an integer float64 holds exactly, else the slower unbuffered add."""
    if len(values) == 0 or int(np.abs(values).sum()) < 1 << 53:
        return np.bincount(index, weights=values, minlength=size).astype(np.int64)
    out = np.zeros(size, dtype=np.int64)
    np.add.at(out, index, values)
    return out


def charges_scope(inputs: ScopeInputs) -> pa.Table | None:
    """The candidate slices whose charged rows a refresh must still read (the model's
    ``restate_scope``, ADR 0055), or None (all of them).

    A late usage event raises the running total of every later event of its resource-month by its
    uncapped charge. That changes no charge when the slice's month-to-date uncapped total, the new
    events included, stays within every cap the slice holds (each event is charged in full before
    and after), and the late event itself is then charged in full too. So a slice needs no read
    when its total after the new events is at most the least cap among its rows (the runner's
    lower bound) and the new events. The new rows are then exactly what the refresh computes
    without old rows: each event's uncapped charge. Re-sent events whose id is charged already
    are not among the changes any more (the model's ``dedupe_by``); one whose original is in the
    same changes is deduped among them, as before. Anything this cannot tell exactly (NULL or
    negative amounts, a change other than an insert) keeps the slice read."""
    try:
        return _scope(inputs)
    except ARROW_ERRORS:
        return None


def _scope(inputs: ScopeInputs) -> pa.Table | None:
    cand, changes = inputs.candidates, inputs.changes
    if any(c not in changes.column_names for c in _NEEDED) or "monthly_cap" not in cand.column_names:
        return None
    if changes.num_rows == 0:
        return cand.slice(0, 0)  # nothing new (re-deliveries dropped): no row can change
    if pc.any(pc.not_equal(changes["_change_type"], "insert")).as_py():
        return None  # deletes and updates: restated by reading, as without this
    lines = _month_lines(inputs.query)
    if lines is None:
        return None
    n_cand, n_rows = cand.num_rows, changes.num_rows
    codes = []
    for col in _SLICE:
        parts = [cand[col], changes[col], lines[col]]
        both = pa.chunked_array([c for p in parts for c in p.cast(pa.string()).chunks], pa.string())
        encoded = both.combine_chunks().dictionary_encode()
        if encoded.null_count:
            return None  # a NULL slice value: such slices are read anyway, keep it simple
        codes.append((np.asarray(encoded.indices.to_numpy(), dtype=np.int64), len(encoded.dictionary)))
    (month, _), (resource, n_resources) = codes
    code = month * n_resources + resource
    cand_code, row_code, line_code = code[:n_cand], code[n_cand : n_cand + n_rows], code[n_cand + n_rows :]
    size = int(code.max()) + 1
    slot = np.full(size, -1, dtype=np.int64)  # slice code -> candidate position
    slot[cand_code] = np.arange(n_cand)
    at = slot[row_code]  # per change row: its candidate, or -1
    mine = at >= 0
    if not mine.any():
        return cand.slice(0, 0)
    rows = changes.filter(pa.array(mine))
    at = at[mine]

    read = np.zeros(n_cand, dtype=bool)
    if rows["event_id"].null_count:
        return None
    usage = np.asarray(pc.equal(rows["event_type"], USAGE).to_numpy(zero_copy_only=False), dtype=bool)
    money = ("quantity_micros", "hourly_price_micros", "monthly_cap_micros")
    qty, price, cap = (_ints(rows[c]) for c in money)
    if qty is None or price is None or cap is None:
        return None
    q, p = qty[0], price[0]
    bad = np.zeros(len(q), dtype=bool)
    for nulls in (qty[1], price[1]):
        if nulls is not None:
            bad |= nulls
    bad |= (q < 0) | (p < 0) | (cap[0] < 0)
    read[at[usage & bad]] = True
    ok = usage & ~bad
    if ok.any() and int(q[ok].max()) * int(p[ok].max()) + MICROS >= _LIMIT:
        return None
    uncapped = np.where(ok, (p * q + MICROS // 2) // MICROS, 0)
    added = np.zeros(n_cand, dtype=np.int64)
    np.add.at(added, at, uncapped)

    # the least cap: the slice's rows (a lower bound kept by the runner) and its new usage events
    low = _micros(cand["monthly_cap"].cast(_MONEY))
    if low is None:
        return None
    none = np.iinfo(np.int64).max
    least = np.where(low[1], none, low[0]) if low[1] is not None else low[0].copy()
    capped = ok if cap[1] is None else ok & ~cap[1]
    np.minimum.at(least, at[capped], cap[0][capped])

    month_total = np.zeros(size, dtype=np.int64)
    np.add.at(month_total, line_code, lines["micros"].to_numpy())
    total = month_total[cand_code] + added
    if int(np.abs(month_total).max(initial=0)) >= _LIMIT or int(added.max(initial=0)) >= _LIMIT:
        return None
    read |= (least != none) & (total > least)
    return cand.filter(pa.array(read))


# -- Arrow <-> integer micro-units -------------------------------------------------------------------
def _ints(values: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray | None] | None:
    """int64 values and their NULL mask (None: no NULL)."""
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if not pa.types.is_integer(arr.type):
        return None
    nulls = np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool) if arr.null_count else None
    data = np.asarray(pc.fill_null(arr, 0).cast(pa.int64()).to_numpy(), dtype=np.int64)
    return data, nulls


def _micros(values: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray | None] | None:
    """DECIMAL(18,6) → its unscaled integers (exact micro-units) and NULL mask; None for other types."""
    arr = values.combine_chunks()
    if arr.type != _MONEY:
        return None
    n = len(arr)
    if n == 0:
        return np.zeros(0, dtype=np.int64), None
    words = np.frombuffer(arr.buffers()[1], dtype="<i8", count=2 * (arr.offset + n))[2 * arr.offset :]
    low, high = words[0::2], words[1::2]
    nulls = np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool) if arr.null_count else None
    valid = ~nulls if nulls is not None else slice(None)
    if np.any(high[valid] != (low[valid] >> 63)):
        return None  # beyond int64 (DECIMAL(18,6) never is; a wider type would be)
    return np.where(nulls, 0, low) if nulls is not None else low.copy(), nulls


def _decimal(micros: np.ndarray, nulls: np.ndarray | None = None) -> pa.Array:
    """Integer micro-units → DECIMAL(18,6) (the same unscaled value, sign-extended to 128 bits)."""
    words = np.empty(2 * len(micros), dtype="<i8")
    words[0::2] = micros
    words[1::2] = micros >> 63
    validity = None
    null_count = 0
    if nulls is not None and nulls.any():
        validity = pa.array(~nulls).buffers()[1]
        null_count = int(nulls.sum())
    return pa.Array.from_buffers(_MONEY, len(micros), [validity, pa.py_buffer(words.tobytes())], null_count)


def _concat(
    a: tuple[np.ndarray, np.ndarray | None] | None, b: tuple[np.ndarray, np.ndarray | None] | None
) -> tuple[np.ndarray, np.ndarray | None] | None:
    if a is None or b is None:
        return None
    values = np.concatenate([a[0], b[0]])
    if a[1] is None and b[1] is None:
        return values, None
    masks = [m if m is not None else np.zeros(len(v), dtype=bool) for v, m in (a, b)]
    return values, np.concatenate(masks)


def _concat_arrays(a: pa.ChunkedArray, b: pa.ChunkedArray) -> pa.ChunkedArray:
    """``a`` then ``b`` (old rows first, as the arrays above), as ``a``'s type."""
    if b.type != a.type:
        b = b.cast(a.type)
    return pa.chunked_array([*a.chunks, *b.chunks], a.type)

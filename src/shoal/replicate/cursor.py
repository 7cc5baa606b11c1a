"""Sync without replication rights: a cursor column, periodic delete detection, or full refresh.

``mode: cursor`` reads the rows whose cursor column (``updated_at`` or an increasing id) is at or
past the high-water mark kept in the lake (``progress.cursor``, in the same commit as the rows),
ordered by (cursor, key) in chunks, and upserts them by key. Re-reading the mark's own value makes
a row committed late with an equal cursor value arrive; rows are upserted, so reading one twice is
harmless. Deletes leave no trace in a cursor: every ``delete_check_every`` rounds the source's keys
are compared with the lake's and the missing ones deleted.

``mode: full`` replaces the whole table in one commit from a streaming read (bounded memory):
the explicit choice for tables without a primary key.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

import pyarrow as pa

from shoal.config import DatabaseSyncSettings
from shoal.lake import Progress, Table, progress
from shoal.query.federation import Endpoint
from shoal.replicate.errors import SyncError
from shoal.replicate.model import Column, SourceTable, SyncReport, TableReport
from shoal.replicate.source import Source


class Syncer(Protocol):
    """What a cursor or full-refresh round needs of the syncer driving it (``sync.Syncer``)."""

    endpoint: Endpoint
    settings: DatabaseSyncSettings
    source: Source
    report: SyncReport

    def target(self, st: SourceTable) -> Table: ...

    def tell(self, table: str, done: int, total: int | None, phase: str) -> None: ...


_EPOCH = datetime(1970, 1, 1)


def encode_cursor(value: Any) -> int:
    """A cursor value as the integer a Delta ``txn`` holds (timestamps: microseconds)."""
    if isinstance(value, bool):
        raise TypeError("a boolean is no cursor")
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):
        naive = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
        return (naive - _EPOCH) // timedelta(microseconds=1)
    if isinstance(value, date):
        return (value - _EPOCH.date()).days
    raise TypeError(f"cannot use a {type(value).__name__} as a cursor")


def decode_cursor(column: Column, value: int) -> Any:
    if pa.types.is_timestamp(column.type):
        naive = _EPOCH + timedelta(microseconds=value)
        # timestamps are read in UTC (both sources set their session zone): compare in UTC
        return naive
    if pa.types.is_date(column.type):
        return _EPOCH.date() + timedelta(days=value)
    return value


def _cursor_column(syncer: Syncer, st: SourceTable) -> Column:
    name = syncer.settings.cursor_column
    try:
        column = st.column(name)
    except KeyError:
        raise SyncError(
            f"sync {syncer.endpoint.name}: table {st.name} has no cursor column {name!r} "
            f"(set databases.{syncer.endpoint.name}.sync.cursor_column)"
        ) from None
    if not (
        pa.types.is_integer(column.type)
        or pa.types.is_timestamp(column.type)
        or pa.types.is_date(column.type)
    ):
        raise SyncError(
            f"sync {syncer.endpoint.name}: cursor column {st.name}.{name} is {column.type}, "
            "not a time or an integer"
        )
    return column


def cursor_round(syncer: Syncer, st: SourceTable, *, check_deletes: bool) -> int:
    """Upsert rows at or past the high-water mark; detect deletes when asked. Returns rows changed."""

    column = _cursor_column(syncer, st)
    target = syncer.target(st)
    key = progress.cursor(syncer.endpoint.name, st.name)
    mark = Progress.read(target, [key]).position(key)
    report = syncer.report.tables.setdefault(st.name, TableReport(st.name, target.name))
    floor = None if mark is None else (column.name, decode_cursor(column, mark))
    changed = 0
    for rows in syncer.source.chunks(
        st, None, syncer.settings.chunk_rows, order=[column.name, *st.key], floor=floor
    ):
        top = encode_cursor(rows[-1][column.name]) if rows[-1][column.name] is not None else mark
        if (
            mark is not None
            and top == mark
            and all(r[column.name] is not None and encode_cursor(r[column.name]) == mark for r in rows)
        ):
            continue  # only the rows at the mark, read again: already applied
        target.merge(
            st.to_arrow(rows), list(st.key), app_transactions={key: top} if top is not None else None
        )
        report.upserted += len(rows)
        changed += len(rows)
        if mark is None or (top is not None and top > mark):
            mark = top
    report.position = mark
    if check_deletes:
        changed += _delete_missing(syncer, st)
    return changed


def _delete_missing(syncer: Syncer, st: SourceTable) -> int:
    """Delete the lake rows whose key the source no longer has."""
    keys_only = SourceTable(st.name, tuple(st.column(k) for k in st.key), st.key)
    source_keys: set[tuple[Any, ...]] = set()
    for rows in syncer.source.chunks(keys_only, None, max(syncer.settings.chunk_rows, 10_000)):
        # through Arrow, so source and lake keys compare as the same Python values
        source_keys.update(tuple(r.values()) for r in keys_only.to_arrow(rows).to_pylist())
    target = syncer.target(st)
    lake = target.to_arrow(columns=list(st.key)).to_pylist()
    gone = [r for r in lake if tuple(r[k] for k in st.key) not in source_keys]
    if not gone:
        return 0
    schema = pa.schema([st.schema.field(k) for k in st.key])
    target.merge(st.to_arrow([]), list(st.key), delete_keys=pa.Table.from_pylist(gone, schema=schema))
    syncer.report.tables[st.name].deleted += len(gone)
    return len(gone)


def full_refresh(syncer: Syncer, st: SourceTable) -> int:
    """Replace the lake table with the source's rows in one commit (streamed in chunks)."""

    target = syncer.target(st)
    report = syncer.report.tables.setdefault(st.name, TableReport(st.name, target.name))
    count = 0

    def batches() -> Iterator[pa.RecordBatch]:
        nonlocal count
        for rows in syncer.source.stream(st, syncer.settings.chunk_rows):
            count += len(rows)
            syncer.tell(st.name, count, None, "refresh")
            yield from st.to_arrow(rows).to_batches()

    target.overwrite(pa.RecordBatchReader.from_batches(st.schema, batches()))
    report.snapshot_rows = count
    return count

"""Commit Parquet files another engine wrote (Spark) into a lake table as ONE Delta commit.

The files must already sit inside the table's directory. Their add actions carry the row count,
null counts and min/max of the top-level columns, read from each file's Parquet footer, so that
readers (DuckDB, delta-rs) skip files by statistics exactly as they do for shoal's own writes.
Files that were written but never committed (a killed job) are not referenced by any version:
``shoal vacuum`` removes them once they are older than its retention.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable
from deltalake import Schema as DeltaSchema
from deltalake.transaction import AddAction, RemoveAction, create_table_with_add_actions

from shoal.errors import ConfigError
from shoal.lake.catalog import SIDECAR, TABLE_CONFIGURATION, Lake, validate_name
from shoal.lake.table import Table, check_compatible, retry_conflicts, translate_errors

__all__ = ["DataFile", "add_files", "file_stats"]

Mode = Literal["append", "overwrite"]


@dataclass(frozen=True)
class DataFile:
    """A Parquet file inside a table's directory and the partition it belongs to.

    ``path`` is relative to the table root; ``partition_values`` are Delta's serialised partition
    values (``'2026-01-01'`` for a date, ``None`` for null), one per partition column.
    """

    path: str
    partition_values: Mapping[str, str | None]


def _ms_floor(ts: datetime) -> datetime:
    return ts.replace(microsecond=ts.microsecond // 1000 * 1000)


def _ms_ceil(ts: datetime) -> datetime:
    floor = _ms_floor(ts)
    return floor if floor == ts else floor + timedelta(milliseconds=1)


def _stat_value(value: Any, field: pa.Field, upper: bool) -> Any:
    """A footer min/max as Delta's stats JSON spells it, or None to leave the column out.

    Delta keeps timestamp statistics in milliseconds: a minimum is rounded down and a maximum
    up, so a reader's file skipping never drops a file that holds a matching row.
    """
    t = field.type
    if isinstance(value, bool) or value is None:
        return None
    if pa.types.is_integer(t) and isinstance(value, int):
        return value
    if pa.types.is_floating(t) and isinstance(value, float):
        return value if math.isfinite(value) else None
    if (pa.types.is_string(t) or pa.types.is_large_string(t)) and isinstance(value, str):
        return value
    if pa.types.is_date32(t) and isinstance(value, date):
        return value.isoformat()
    if pa.types.is_timestamp(t) and isinstance(value, datetime):
        ts = _ms_ceil(value) if upper else _ms_floor(value)
        if t.tz is None:
            return ts.replace(tzinfo=None).isoformat(sep=" ", timespec="milliseconds")
        return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"
    return None  # decimals, binaries, booleans, nested: counts only, no bounds


def file_stats(meta: pq.FileMetaData, schema: pa.Schema) -> str:
    """Delta ``stats`` JSON (numRecords, nullCount, minValues, maxValues) of one Parquet file."""
    columns: dict[str, int] = {}
    for i in range(meta.num_columns):
        path = meta.row_group(0).column(i).path_in_schema if meta.num_row_groups else ""
        if path and "." not in path:
            columns[path] = i
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    for field in schema:
        col = columns.get(field.name)
        if col is None:
            continue
        lo: Any = None
        hi: Any = None
        count = 0
        bounded = True
        for g in range(meta.num_row_groups):
            s = meta.row_group(g).column(col).statistics
            if s is None or not s.has_null_count:
                count = -1
                bounded = False
                break
            count += int(s.null_count or 0)
            if meta.row_group(g).num_rows == s.null_count:
                continue  # all null: no bounds to merge
            if not s.has_min_max:
                bounded = False
                continue
            a, b = _stat_value(s.min, field, False), _stat_value(s.max, field, True)
            if a is None or b is None:
                bounded = False
                continue
            lo = a if lo is None or a < lo else lo
            hi = b if hi is None or b > hi else hi
        if count >= 0:
            nulls[field.name] = count
        if bounded and lo is not None:
            mins[field.name], maxs[field.name] = lo, hi
    return json.dumps(
        {"numRecords": meta.num_rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls},
        separators=(",", ":"),
    )


def _add_actions(lake: Lake, name: str, files: Sequence[DataFile], schema: pa.Schema) -> list[AddAction]:
    fs, base = lake.location.filesystem()
    ns, tbl = name.split(".", 1)
    now = int(time.time() * 1000)
    actions = []
    for f in files:
        full = f"{base}/{ns}/{tbl}/{f.path}"
        with translate_errors(f"read the footer of {f.path}"):
            info = fs.get_file_info(full)
            with fs.open_input_file(full) as handle:
                meta = pq.ParquetFile(handle).metadata
        actions.append(
            AddAction(
                path=f.path,
                size=int(info.size or 0),
                partition_values=dict(f.partition_values),
                modification_time=now,
                data_change=True,
                stats=file_stats(meta, schema),
            )
        )
    return actions


def add_files(
    lake: Lake,
    name: str,
    files: Sequence[DataFile],
    schema: pa.Schema,
    *,
    mode: Mode = "append",
    partition_by: Sequence[str] = (),
    operation: str = "shoal add files",
    description: str = "",
    owner: str = "",
    source: str = "",
) -> int:
    """Add ``files`` (already in the table's directory) to table ``name`` in one Delta commit.

    ``schema`` is the whole table's schema, partition columns included. A missing table is created
    by that same commit (with change data feed on, like :meth:`Lake.create_table`); ``overwrite``
    removes every file of the current version in it. Returns the committed version.
    """
    validate_name(name)
    if mode not in ("append", "overwrite"):
        raise ConfigError(f"write to {name}: mode must be append or overwrite, not {mode!r}")
    missing = [c for c in partition_by if c not in schema.names]
    if missing:
        raise ConfigError(f"table {name}: partition column(s) {missing} not in the schema")
    data_schema = pa.schema([f for f in schema if f.name not in partition_by])
    actions = _add_actions(lake, name, files, data_schema)
    meta = CommitProperties(custom_metadata={"operation_detail": operation, "files": len(files)})
    existing = lake.find(name)
    if existing is None:
        table = Table(name, lake.location)
        lake.location.check_writable()
        lake.location.write_json(
            f"{table.namespace}/{table.table_name}/{SIDECAR}",
            {"description": description, "owner": owner, "source": source, "pii": []},
        )
        with translate_errors(f"create {name}"):
            create_table_with_add_actions(
                table.uri,
                DeltaSchema.from_arrow(schema),
                actions,
                mode="error",
                partition_by=list(partition_by) or None,
                name=name,
                description=description or None,
                configuration=dict(TABLE_CONFIGURATION),
                storage_options=dict(lake.location.storage_options) or None,
                commit_properties=meta,
            )
        return table.version
    table = existing
    have = table.partition_by
    if list(partition_by) != have:
        raise ConfigError(f"write to {name}: the table is partitioned by {have}, not {list(partition_by)}")
    if mode == "append":
        check_compatible(f"append to {name}", table.schema, schema)

    def commit() -> None:
        dt: DeltaTable = table.delta()
        dt.create_write_transaction(
            list[AddAction | RemoveAction](actions),
            mode,
            DeltaSchema.from_arrow(schema),
            partition_by=list(partition_by) or None,
            commit_properties=meta,
        )

    # The same add actions are safe to offer again after a conflict: they name new files only.
    retry_conflicts(commit, f"{mode} {name}")
    return table.version

"""Compaction of a merge-on-read table: fold the change tail into the base, in one commit.

From one snapshot of the table (``shoal.lake.mergeonread`` describes the layout):

1. every file holding change rows (``_shoal_op`` not all NULL in its statistics) is read, and the
   latest change of each key kept;
2. a base file is rewritten only if it holds a key that changed: file statistics rule most files
   out for an integer key, the key column of the rest is read to make sure;
3. the rewritten files' untouched rows and the keys' latest rows (deletes dropped) are written as
   new base files, streamed in pieces of at most ``FILE_ROWS`` rows (memory is bounded by that and
   the tail, not the table);
4. one commit removes the files read in 1 and 2 and adds those of 3, with the highest sequence
   folded as a ``txn`` (``progress.compacted``).

The commit names the files it removes and has no read predicate, so the writer's concurrent
appends of newer changes do not conflict with it (Delta's conflict check under WriteSerializable:
blind appends never do) and stay in the tail, newer than every base row. Another compaction, a
TRUNCATE's overwrite or a schema change in between is a conflict: the compaction starts over from
the new snapshot. Files of an attempt that did not commit (a conflict, or kill -9) are never
referenced; ``shoal vacuum --full`` removes them.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, Transaction
from deltalake.transaction import AddAction, RemoveAction

from shoal.lake import progress
from shoal.lake.addfiles import file_stats
from shoal.lake.errors import CommitConflict, LakeError
from shoal.lake.mergeonread import OP, SEQ, UPSERT, MergeOnRead, layout_of_fields
from shoal.lake.table import ROW_GROUP_ROWS, Table, committed_version, translate_errors

log = logging.getLogger("shoal.lake")

#: rows per new base file (and the most base rows held in memory at once)
FILE_ROWS = 1_000_000
#: attempts of a compaction that loses the race to another commit touching the same files
ATTEMPTS = 5


@dataclass
class Compaction:
    """What one compaction did (``version`` None: nothing to fold, or nothing committed)."""

    table: str
    version: int | None = None
    #: the highest change sequence folded into the base
    folded_seq: int | None = None
    change_rows: int = 0
    files_removed: int = 0
    files_added: int = 0
    rows_written: int = 0
    seconds: float = 0.0
    attempts: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "extra"} | self.extra


def tail_rows(table: Table) -> int:
    """Change rows waiting in the tail (from the file statistics of the latest snapshot)."""
    acts = pa.table(table.delta().get_add_actions(flatten=True))
    total = 0
    for f in acts.to_pylist():
        if _has_changes(f):
            total += int(f["num_records"] or 0) - int(f.get(f"null_count.{OP}") or 0)
    return total


def compact(table: Table, *, attempts: int = ATTEMPTS) -> Compaction:
    """Fold ``table``'s change tail into its base in one commit (see the module's doc)."""
    started = time.monotonic()
    result = Compaction(table.name)
    for attempt in range(1, attempts + 1):
        result.attempts = attempt
        try:
            _attempt(table, result)
            break
        except CommitConflict as exc:
            if attempt == attempts:
                raise
            log.info("compaction of %s lost a race (%s): again from the new snapshot", table.name, exc)
            time.sleep(0.05 * attempt)
    result.seconds = round(time.monotonic() - started, 3)
    return result


def _attempt(table: Table, result: Compaction) -> None:
    # a handle of its own: the writer's Table may be in use in another thread
    with translate_errors(f"compact {table.name}"):
        dt = DeltaTable(table.uri, storage_options=table.storage_options or None)
        layout = layout_of_fields(dt.schema().fields)
    if layout is None:
        raise LakeError(f"compact {table.name}: not a merge-on-read table")
    if dt.metadata().partition_columns:
        raise LakeError(f"compact {table.name}: partitioned merge-on-read tables are not supported")
    files = pa.table(dt.get_add_actions(flatten=True)).to_pylist()
    changed = [f for f in files if _has_changes(f)]
    if not changed:
        return
    dataset = dt.to_pyarrow_dataset()
    fragments = {frag.path: frag for frag in dataset.get_fragments()}
    schema = dataset.schema

    def read(path: str, columns: list[str] | None = None) -> pa.Table:
        frag = fragments.get(path)
        if frag is None:
            raise LakeError(f"compact {table.name}: file {path} of the snapshot is not in its dataset")
        return frag.to_table(schema=schema, columns=columns)

    raw = pa.concat_tables([read(f["path"]) for f in changed])
    is_change = pc.is_valid(raw.column(OP))
    tail = raw.filter(is_change)
    latest = _latest(tail, layout)
    touched = latest.select(list(layout.keys))
    # base rows of files that also held changes (e.g. after an optimize merged files)
    stray_base = raw.filter(pc.invert(is_change))
    keys = list(layout.keys)
    rewritten = [
        f for f in files if not _has_changes(f) and _holds_any(f, layout, touched, lambda p: read(p, keys))
    ]
    # read one rewritten file at a time: memory holds a piece, not the table
    sources = itertools.chain([stray_base], (read(f["path"]) for f in rewritten))
    pieces = _pieces(sources, touched, layout, schema, tail=_base_of(latest, schema))
    attempt_id = str(uuid.uuid4())
    read_version = int(dt.version())
    written: list[AddAction] = []
    fs, root = table.location.filesystem()
    directory = f"{root}/{table.namespace}/{table.table_name}"
    try:
        for piece in pieces:
            written.append(_write(fs, directory, piece, schema))
            result.rows_written += piece.num_rows
        now = int(time.time() * 1000)
        removes = [
            RemoveAction(path=f["path"], data_change=True, deletion_timestamp=now, size=int(f["size_bytes"]))
            for f in [*changed, *rewritten]
        ]
        folded = int(pc.max(tail.column(SEQ)).as_py() or 0) if tail.num_rows else 0
        props = CommitProperties(
            app_transactions=[Transaction(app_id=progress.compacted(table.name), version=folded)],
            custom_metadata={
                "operation_detail": "shoal merge-on-read compaction",
                "change_rows": str(tail.num_rows),
                "read_version": str(read_version),
                "compaction_id": attempt_id,
            },
        )
        with translate_errors(f"compact {table.name}"):
            actions = list[AddAction | RemoveAction]([*written, *removes])
            dt.create_write_transaction(actions, "append", dt.schema(), commit_properties=props)
    except BaseException:
        # never referenced: remove what this attempt wrote (kill -9 leaves them to vacuum --full)
        for add in written:
            with contextlib.suppress(OSError):
                fs.delete_file(f"{directory}/{add.path}")
        raise
    result.version = committed_version(table, read_version, attempt_id)
    result.folded_seq = folded
    result.change_rows += tail.num_rows
    result.files_removed = len(changed) + len(rewritten)
    result.files_added = len(written)


def _has_changes(f: dict[str, Any]) -> bool:
    """Whether a file (an add action with flattened statistics) may hold change rows."""
    nulls = f.get(f"null_count.{OP}")
    if nulls is not None:
        return int(nulls) < int(f["num_records"] or 0)
    # No statistics for the column: a file written before the layout was added (a copy-on-write
    # replica turned merge-on-read) has none but has them for others -- its rows are base rows.
    # A file with no statistics at all may hold anything.
    return not any(k.startswith("null_count.") and v is not None for k, v in f.items())


def _latest(tail: pa.Table, layout: MergeOnRead) -> pa.Table:
    """Each key's change row of the highest sequence (deletes included)."""
    import duckdb

    con = duckdb.connect()
    try:
        con.register("__tail", tail)
        keys = ", ".join(f'"{k}"' for k in layout.keys)
        return con.sql(
            f'SELECT * FROM __tail QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY "{SEQ}" DESC) = 1 '
            f"ORDER BY {keys}"
        ).to_arrow_table()
    finally:
        con.close()


def _base_of(latest: pa.Table, schema: pa.Schema) -> pa.Table:
    """The keys' latest upserts as base rows (layout columns NULL); deletes are dropped."""
    rows = latest.filter(pc.equal(latest.column(OP), UPSERT))
    arrays = [
        pa.nulls(rows.num_rows, f.type) if f.name in (OP, SEQ) else rows.column(f.name).cast(f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def _holds_any(f: dict[str, Any], layout: MergeOnRead, touched: pa.Table, read_keys: Any) -> bool:
    """Whether base file ``f`` holds one of the ``touched`` keys: its min/max statistics first
    (one integer key), then its key column."""
    if touched.num_rows == 0:
        return False
    if len(layout.keys) == 1:
        key = layout.keys[0]
        values = touched.column(key)
        lo, hi = f.get(f"min.{key}"), f.get(f"max.{key}")
        if pa.types.is_integer(values.type) and isinstance(lo, int) and isinstance(hi, int):
            sorted_keys = np.sort(values.to_numpy())
            if np.searchsorted(sorted_keys, lo, "left") >= np.searchsorted(sorted_keys, hi, "right"):
                return False
        keys = read_keys(f["path"])
        return bool(pc.any(pc.is_in(keys.column(key), value_set=values.cast(keys.column(key).type))).as_py())
    keys = read_keys(f["path"])
    return bool(_anti(keys, touched, layout).num_rows < keys.num_rows)


def _anti(rows: pa.Table, touched: pa.Table, layout: MergeOnRead) -> pa.Table:
    """``rows`` whose key is not among ``touched`` (order kept)."""
    if touched.num_rows == 0 or rows.num_rows == 0:
        return rows
    if len(layout.keys) == 1:
        key = layout.keys[0]
        hit = pc.is_in(rows.column(key), value_set=touched.column(key).cast(rows.column(key).type))
        return rows.filter(pc.invert(hit))
    import duckdb

    con = duckdb.connect()
    try:
        con.register("__rows", rows)
        con.register("__touched", touched)
        on = " AND ".join(f'r."{k}" = t."{k}"' for k in layout.keys)
        return con.sql(f"SELECT r.* FROM __rows AS r ANTI JOIN __touched AS t ON {on}").to_arrow_table()
    finally:
        con.close()


def _pieces(
    sources: Iterable[pa.Table], touched: pa.Table, layout: MergeOnRead, schema: pa.Schema, *, tail: pa.Table
) -> Iterator[pa.Table]:
    """The new base: the sources' rows without the touched keys, then ``tail``, regrouped into
    pieces of at most ``FILE_ROWS`` rows (small rewritten files are merged on the way)."""
    held: list[pa.Table] = []
    count = 0
    for source in sources:
        kept = _anti(source, touched, layout).cast(schema)
        if kept.num_rows:
            held.append(kept)
            count += kept.num_rows
        while count >= FILE_ROWS:
            merged = pa.concat_tables(held)
            yield merged.slice(0, FILE_ROWS)
            rest = merged.slice(FILE_ROWS)
            held, count = ([rest] if rest.num_rows else []), rest.num_rows
    if tail.num_rows:
        held.append(tail.cast(schema))
    if held:
        merged = pa.concat_tables(held)
        for start in range(0, merged.num_rows, FILE_ROWS):
            yield merged.slice(start, FILE_ROWS)


def _write(fs: Any, directory: str, piece: pa.Table, schema: pa.Schema) -> AddAction:
    name = f"part-00000-{uuid.uuid4()}-compacted.snappy.parquet"
    path = f"{directory}/{name}"
    collected: list[pq.FileMetaData] = []
    pq.write_table(
        piece.cast(schema),
        path,
        filesystem=fs,
        row_group_size=ROW_GROUP_ROWS,
        compression="snappy",
        metadata_collector=collected,
    )
    size = fs.get_file_info(path).size
    return AddAction(
        path=name,
        size=int(size or 0),
        partition_values={},
        modification_time=int(time.time() * 1000),
        data_change=True,
        stats=file_stats(collected[0], schema),
    )

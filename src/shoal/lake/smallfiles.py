"""Small files folded into one while their writer goes on: the rewrite apart from its commit.

A writer that commits every second (a model watcher appending each cycle's rows) adds a file per
commit, and delta-rs pays for every live file on every later commit (an append costs ~0.1 ms more
per file in the snapshot: 7 ms at 1 file, 70 ms at 600, docs/benchmarks.md, issue 18). Compaction
by another process (``shoal maintain compact``) is a foreign commit to such a writer: it drops
what the writer keeps in memory about its table, and a merge of the writer's may conflict with it.
So the writer folds its own small files, in two steps:

1. :func:`rewrite` (any thread, no commit): the chosen files of one partition are read and written
   again as one file (sorted, when asked, so its statistics bound a range column), beside them;
2. :func:`commit` (the writer's thread, between its own commits): one commit removes the files
   and adds the new one, both with ``dataChange=false`` (Delta's mark of a data-neutral commit:
   change-feed and streaming readers skip it), built on the snapshot the writer's handle holds,
   after checking that every file is still in it. A file gone (another compaction, a merge that
   rewrote it) makes the rewrite stale: its file is deleted and nothing is committed, never rows
   twice. A commit since the handle's snapshot that removed one of the files is a conflict.
"""

from __future__ import annotations

import contextlib
import posixpath
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import CommitProperties
from deltalake.transaction import AddAction, RemoveAction

from shoal.lake.addfiles import file_stats
from shoal.lake.errors import CommitConflict
from shoal.lake.table import ROW_GROUP_ROWS, Table, committed_version, translate_errors

#: the name part that marks a file this module wrote (it is not picked again: see :func:`pick`)
MARK = "-folded"


@dataclass(frozen=True)
class SmallFile:
    """A live file of the table: its path (relative to the table root) and size."""

    path: str
    size: int


@dataclass(frozen=True)
class Pick:
    """The small files of one partition to fold, with the partition's serialised values."""

    files: tuple[SmallFile, ...]
    partition_values: dict[str, str | None]


@dataclass(frozen=True)
class Rewritten:
    """A rewrite waiting for its commit: the files it replaces and the one it wrote."""

    pick: Pick
    add: AddAction
    rows: int


def pick(table: Table, *, min_files: int, max_bytes: int, max_files: int) -> list[Pick]:
    """Per partition, the files smaller than ``max_bytes`` that this module did not write, when
    there are at least ``min_files`` of them (the oldest ``max_files`` at most: a rewrite's memory
    is bounded by them). Files written by an earlier fold are left to ``shoal maintain compact``,
    so one fold never rewrites the rows of another."""
    with translate_errors(f"compact {table.name}"):
        actions = pa.table(table.delta().get_add_actions(flatten=False)).to_pylist()
    groups: dict[tuple[tuple[str, str | None], ...], list[tuple[int, SmallFile]]] = {}
    for a in actions:
        if a["size_bytes"] >= max_bytes or MARK in posixpath.basename(a["path"]):
            continue
        values = _serialised(a.get("partition") or {})
        if values is None:
            return []  # a partition value this module cannot write back: leave the table alone
        groups.setdefault(tuple(sorted(values.items())), []).append(
            (int(a["modification_time"]), SmallFile(a["path"], int(a["size_bytes"])))
        )
    out = []
    for key, files in groups.items():
        if len(files) >= min_files:
            oldest = [f for _, f in sorted(files, key=lambda x: (x[0], x[1].path))[:max_files]]
            out.append(Pick(tuple(oldest), dict(key)))
    return out


def _serialised(values: dict[str, Any]) -> dict[str, str | None] | None:
    """Delta's string form of partition values (None: a type not handled here)."""
    out: dict[str, str | None] = {}
    for name, value in values.items():
        if value is None:
            out[name] = None
        elif isinstance(value, datetime):
            return None  # timestamp partitions: their string form has variants; not folded
        elif isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, date | str | int):
            out[name] = value.isoformat() if isinstance(value, date) else str(value)
        else:
            return None
    return out


def rewrite(table: Table, chosen: Pick, *, sort_by: Sequence[str] = ()) -> Rewritten | None:
    """Read ``chosen``'s files and write their rows as one new file beside them (no commit).
    None when the files' columns differ (the schema grew in between: left to ``shoal maintain``).
    Safe in another thread than the table's writer: it reads only immutable files."""
    fs, root = table.location.filesystem()
    base = f"{root}/{table.namespace}/{table.table_name}"
    parts = []
    with translate_errors(f"compact {table.name}"):
        for f in chosen.files:
            parts.append(pq.read_table(f"{base}/{f.path}", filesystem=fs))
    schema = parts[0].schema
    if any(not p.schema.equals(schema) for p in parts[1:]):
        return None
    rows = pa.concat_tables(parts)
    order = [(c, "ascending") for c in sort_by if c in rows.column_names]
    if order:
        # in the range column's order, row-group statistics bound it (reads from a point on)
        rows = rows.take(pc.sort_indices(rows, sort_keys=order))
    folder = posixpath.dirname(chosen.files[0].path)
    name = posixpath.join(folder, f"part-00000-{uuid.uuid4()}{MARK}.snappy.parquet")
    collected: list[pq.FileMetaData] = []
    with translate_errors(f"compact {table.name}"):
        pq.write_table(
            rows,
            f"{base}/{name}",
            filesystem=fs,
            row_group_size=ROW_GROUP_ROWS,
            compression="snappy",
            metadata_collector=collected,
        )
        size = fs.get_file_info(f"{base}/{name}").size
    add = AddAction(
        path=name,
        size=int(size or 0),
        partition_values=chosen.partition_values,
        modification_time=int(time.time() * 1000),
        data_change=False,
        stats=file_stats(collected[0], rows.schema),
    )
    return Rewritten(chosen, add, rows.num_rows)


def commit(table: Table, done: Rewritten) -> int | None:
    """Replace ``done``'s files by the one it wrote, in one data-neutral commit on the snapshot
    ``table``'s handle holds; the version committed, or None (the new file deleted) when a file
    is no longer live or another commit since the snapshot removed one (see the module doc)."""
    try:
        with translate_errors(f"compact {table.name}"):
            dt = table.delta()
            live = {str(p) for p in pa.table(dt.get_add_actions(flatten=False)).column("path").to_pylist()}
            if any(f.path not in live for f in done.pick.files):
                raise CommitConflict(f"compact {table.name}: a file to fold is no longer live")
            before = int(dt.version())
            now = int(time.time() * 1000)
            removes = [
                RemoveAction(
                    path=f.path,
                    data_change=False,
                    deletion_timestamp=now,
                    size=f.size,
                    partition_values=done.pick.partition_values,
                )
                for f in done.pick.files
            ]
            fold_id = str(uuid.uuid4())
            props = CommitProperties(
                custom_metadata={
                    "operation_detail": "shoal fold of small files",
                    "files": str(len(removes)),
                    "fold_id": fold_id,
                }
            )
            actions = list[AddAction | RemoveAction]([done.add, *removes])
            dt.create_write_transaction(actions, "append", dt.schema(), commit_properties=props)
        # another writer may have committed first (no conflict): find the version that is ours
        return committed_version(table, before, fold_id)
    except CommitConflict:
        discard(table, done)
        return None
    except BaseException:
        discard(table, done)
        raise


def discard(table: Table, done: Rewritten) -> None:
    """Delete the file of a rewrite that will not be committed (never referenced by the log)."""
    fs, root = table.location.filesystem()
    with contextlib.suppress(OSError):
        fs.delete_file(f"{root}/{table.namespace}/{table.table_name}/{done.add.path}")

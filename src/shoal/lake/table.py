"""One Delta table: writes that commit atomically, reads at any version.

Every write is a single Delta commit. ``app_transactions`` are written as Delta
``txn`` actions in that same commit: this is how sources (Kafka offsets, scrape
rounds, model refreshes) make their progress exactly-once with their data.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import (
    ColumnProperties,
    CommitProperties,
    DeltaTable,
    Transaction,
    WriterProperties,
    write_deltalake,
)
from deltalake.exceptions import (
    CommitFailedError,
    DeltaError,
    DeltaProtocolError,
    SchemaMismatchError,
    TableNotFoundError,
)

from shoal.errors import NotFoundError, StorageUnavailable
from shoal.lake.errors import CommitConflict, LakeError, SchemaMismatch
from shoal.lake.mergeonread import MergeOnRead, layout_of_fields, resolve
from shoal.retry import RetryPolicy, retry

if TYPE_CHECKING:
    from shoal.lake.storage import LakeLocation

T = TypeVar("T")
Data: TypeAlias = pa.Table | pa.RecordBatch | pa.RecordBatchReader

#: how often a conflicting commit is retried before giving up with CommitConflict
COMMIT_RETRIES = 20


def _as_reader(data: Data) -> pa.Table | pa.RecordBatchReader:
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    return data


# Row groups of at most this many rows (DuckDB writes 122,880): min/max statistics then let readers
# skip most of a large file written in an order (e.g. a model rebuilt in hour order), where the
# writer's default of 1M rows leaves one or two groups per file.
ROW_GROUP_ROWS = 131_072


# Columns that are (nearly) unique per row -- event ids, event times, offsets -- gain nothing from
# a dictionary: arrow-rs builds one and abandons it when it outgrows its 1 MiB page, leaving each
# row group half dictionary-, half plain-encoded. Written plain from the start, such columns cost
# less to write and to read a few rows back from (docs/adr/0037). A column is taken as unique when
# at least this share of the values in a run of rows is distinct; each Table decides once per
# column (on its first large enough write: ingest appends the same kind of rows every flush).
PLAIN_DISTINCT_SHARE = 0.9
_SAMPLE_ROWS = 16_384
_MIN_ROWS = 4_096


def _scalar(t: pa.DataType) -> bool:
    return bool(
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_integer(t)
        or pa.types.is_timestamp(t)
        or pa.types.is_decimal(t)
    )


def unique_columns(data: pa.Table, known: dict[str, bool]) -> list[str]:
    """Top-level scalar columns of ``data`` that are (nearly) unique per row. ``known`` caches
    each column's verdict; columns of a write too small to judge are left out, undecided."""
    if data.num_rows >= _MIN_ROWS:
        sample = data.slice(0, _SAMPLE_ROWS)
        for field, column in zip(sample.schema, sample.columns, strict=True):
            if field.name not in known and _scalar(field.type):
                distinct = pc.count_distinct(column).as_py()
                known[field.name] = distinct >= PLAIN_DISTINCT_SHARE * sample.num_rows
    return [c for c in data.column_names if known.get(c)]


def _writer_props(plain: Sequence[str] = ()) -> WriterProperties:
    return WriterProperties(
        max_row_group_size=ROW_GROUP_ROWS,
        column_properties={c: ColumnProperties(dictionary_enabled=False) for c in plain} or None,
    )


def _commit_props(app_transactions: Mapping[str, int] | None, **meta: str) -> CommitProperties:
    txns = [Transaction(app_id=k, version=int(v)) for k, v in (app_transactions or {}).items()]
    return CommitProperties(app_transactions=txns or None, custom_metadata=meta or None)


@contextmanager
def translate_errors(what: str) -> Iterator[None]:
    """Turn delta-rs/object-store errors into shoal's typed, one-line errors."""
    try:
        yield
    except SchemaMismatchError as exc:
        raise SchemaMismatch(f"{what}: schema mismatch: {_first_line(exc)}") from exc
    except CommitFailedError as exc:
        raise CommitConflict(f"{what}: commit conflict: {_first_line(exc)}") from exc
    except TableNotFoundError as exc:
        raise NotFoundError(f"{what}: table not found") from exc
    except (DeltaError, DeltaProtocolError, OSError, Exception) as exc:
        if isinstance(exc, (NotFoundError, LakeError, StorageUnavailable)):
            raise
        msg = _first_line(exc)
        low = msg.lower()
        if "cast error" in low or (
            "schema" in low and ("cast" in low or "mismatch" in low or "invalid" in low or "merge" in low)
        ):
            raise SchemaMismatch(f"{what}: schema mismatch: {msg}") from exc
        if any(
            s in low
            for s in (
                "connect",
                "dns",
                "connection refused",
                "timed out",
                "timeout",
                "s3 error",
                "error sending",
            )
        ):
            raise StorageUnavailable(f"{what}: storage unavailable: {msg}") from exc
        if "permission denied" in low or "read-only" in low:
            raise StorageUnavailable(f"{what}: not writable: {msg}") from exc
        raise LakeError(f"{what}: {msg}") from exc


def _normal_type(t: pa.DataType) -> str:
    """Type identity for compatibility checks: string flavours and timestamp units are equal."""
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return "binary"
    if pa.types.is_timestamp(t):
        return f"timestamp[{'tz' if t.tz else 'naive'}]"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t):
        return f"list<{_normal_type(t.value_type)}>"
    if pa.types.is_struct(t):
        return "struct"  # nested fields may evolve; delta-rs merges them
    if pa.types.is_dictionary(t):
        return _normal_type(t.value_type)
    return str(t)


def check_compatible(name: str, table_schema: pa.Schema, data_schema: pa.Schema) -> None:
    """Raise SchemaMismatch naming the first column whose type changed incompatibly.

    New columns are fine (they are added as nullable); an integer may widen.
    """
    for field in data_schema:
        idx = table_schema.get_field_index(field.name)
        if idx < 0:
            continue
        have, got = table_schema.field(idx).type, field.type
        if _normal_type(have) == _normal_type(got) or pa.types.is_null(got):
            continue
        if pa.types.is_integer(have) and pa.types.is_integer(got) and have.bit_width >= got.bit_width:
            continue
        if pa.types.is_floating(have) and (pa.types.is_floating(got) or pa.types.is_integer(got)):
            continue
        raise SchemaMismatch(
            f"{name}: column {field.name!r} is {have} in the table but {got} in the new data"
        )


PARTITION_FILTER_MAX = 200  # partitions named in a merge's pruning condition, per column


def sql_literal(value: object) -> str | None:
    """A SQL literal both DuckDB and delta-rs (DataFusion) read as ``value``, for booleans,
    integers, strings and dates; None for any other type (callers then derive no condition)."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, date) and not isinstance(value, datetime):
        return f"DATE '{value.isoformat()}'"
    return None


def _first_line(exc: BaseException) -> str:
    """One line: the error's headline plus, for nested object-store errors, the root cause."""
    text = str(exc).strip() or type(exc).__name__
    # object_store nests causes on lines decorated with ANSI colours and arrows
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    lines = [ln.strip().strip("↳ ") for ln in plain.splitlines() if ln.strip()]
    if len(lines) > 1:
        return f"{lines[0]}: {lines[-1]}"[:500]
    return lines[0][:500]


class _NotAConflict(Exception):
    """Carries an error out of :func:`retry_conflicts` unretried (it is not Transient)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def retry_conflicts(fn: Callable[[], T], what: str, retries: int = COMMIT_RETRIES) -> T:
    """Run a commit, retrying with backoff when another writer won the race.

    Only commit conflicts are retried here; other transient errors (storage unreachable) go to
    the caller at once, whose own retry knows whether the whole operation may be repeated.
    """

    def once() -> T:
        try:
            with translate_errors(what):
                return fn()
        except CommitConflict:
            raise
        except Exception as exc:
            raise _NotAConflict(exc) from exc

    try:
        return retry(once, what, RetryPolicy(attempts=retries + 1, base_s=0.02, max_delay_s=1.0))
    except _NotAConflict as wrapped:
        raise wrapped.error from wrapped.error.__cause__


def _without_views(table: pa.Table) -> pa.Table:
    """String/binary views as plain strings/binaries: delta-rs returns views, which few Arrow
    compute kernels take (a filter DuckDB pushes into a registered table would fail)."""
    views = {pa.string_view(): pa.string(), pa.binary_view(): pa.binary()}
    if not any(f.type in views for f in table.schema):
        return table
    return table.cast(pa.schema([f.with_type(views.get(f.type, f.type)) for f in table.schema]))


class Table:
    """A handle on one lake table (``namespace.table``). Cheap; reloads on demand."""

    def __init__(self, name: str, location: LakeLocation) -> None:
        self.name = name
        namespace, table = name.split(".", 1)
        self.namespace = namespace
        self.table_name = table
        self._location = location
        self.uri = location.table_uri(namespace, table)
        self._dt: DeltaTable | None = None
        #: column -> written without a dictionary (nearly unique per row), decided on first write
        self._plain: dict[str, bool] = {}

    def __repr__(self) -> str:
        return f"Table({self.name!r}, uri={self.uri!r})"

    @property
    def location(self) -> LakeLocation:
        return self._location

    @property
    def storage_options(self) -> dict[str, str]:
        return dict(self._location.storage_options)

    # -- reading -------------------------------------------------------------------------------
    def delta(self, version: int | str | datetime | None = None) -> DeltaTable:
        """The deltalake handle at the latest (or a given) version or timestamp."""
        with translate_errors(f"table {self.name}"):
            if version is None:
                if self._dt is None:
                    self._dt = DeltaTable(self.uri, storage_options=self.storage_options or None)
                elif self._may_have_moved(self._dt):
                    self._dt.update_incremental()
                return self._dt
            if isinstance(version, int) and self._dt is not None and self._dt.version() == version:
                # the snapshot a writer just read its progress from (append(read_version=...)):
                # the handle already holds it, a fresh load would replay the log again
                return self._dt
            dt = DeltaTable(self.uri, storage_options=self.storage_options or None)
            try:
                dt.load_as_version(version)
            except (DeltaError, ValueError) as exc:
                raise NotFoundError(
                    f"table {self.name} has no version {version}: {_first_line(exc)}"
                ) from exc
            return dt

    def _may_have_moved(self, dt: DeltaTable) -> bool:
        """Whether a commit after ``dt``'s version may exist. On a local lake a commit is the
        atomic creation of its log file, so one stat answers; ``update_incremental`` lists the
        log directory (1.6 ms at 2,000 commits, and an ingest table gains several a second), and a
        watcher asks dozens of times a cycle. Object stores: delta-rs finds out."""
        if self._location.scheme != "file":
            return True
        return os.path.exists(os.path.join(self.uri, "_delta_log", f"{dt.version() + 1:020d}.json"))

    @property
    def version(self) -> int:
        return int(self.delta().version())

    @property
    def schema(self) -> pa.Schema:
        return pa.schema(self.delta().schema().to_arrow())

    @property
    def partition_by(self) -> list[str]:
        return list(self.delta().metadata().partition_columns)

    def app_version(self, app_id: str) -> int | None:
        """The latest ``txn`` version written for ``app_id`` (e.g. a Kafka offset), or None."""
        with translate_errors(f"table {self.name}"):
            dt = self.delta()
            v = dt.transaction_version(app_id)
            return None if v is None else int(v)

    def app_versions(self, app_ids: list[str]) -> tuple[int, dict[str, int | None]]:
        """The table version and the ``txn`` version of each of ``app_ids``, from one snapshot."""
        with translate_errors(f"table {self.name}"):
            dt = self.delta()
            out: dict[str, int | None] = {}
            for app_id in app_ids:
                v = dt.transaction_version(app_id)
                out[app_id] = None if v is None else int(v)
            return int(dt.version()), out

    def files(self, version: int | str | datetime | None = None) -> list[str]:
        return list(self.delta(version).file_uris())

    def layout(self, version: int | str | datetime | None = None) -> MergeOnRead | None:
        """The merge-on-read layout recorded in the table's schema (at ``version``), or None for a
        plain table (``shoal.lake.mergeonread``)."""
        with translate_errors(f"table {self.name}"):
            return layout_of_fields(self.delta(version).schema().fields)

    def to_arrow(
        self,
        columns: Sequence[str] | None = None,
        filter: str | None = None,
        version: int | str | datetime | None = None,
    ) -> pa.Table:
        """Read (part of) the table; ``filter`` is a DuckDB SQL boolean expression.

        A merge-on-read table is read resolved (one row per key, its latest change), from one
        snapshot: the raw rows are read whole, then ranked per key.
        """
        dt = self.delta(version)
        with translate_errors(f"table {self.name}"):
            dataset = dt.to_pyarrow_dataset()
            layout = layout_of_fields(dt.schema().fields)
        if layout is not None:
            return resolve(dataset.to_table(), layout, columns, filter)
        if filter is None:
            return dataset.to_table(columns=list(columns) if columns else None)
        import duckdb

        con = duckdb.connect()
        try:
            con.register("t", dataset)
            cols = ", ".join(f'"{c}"' for c in columns) if columns else "*"
            return con.sql(f"SELECT {cols} FROM t WHERE {filter}").to_arrow_table()
        finally:
            con.close()

    def partition_rows(self, column: str) -> dict[object, int]:
        """Rows per value of partition column ``column`` in the current snapshot, from the log's
        file statistics (no data file is read); a file without a row count counts as one row."""
        with translate_errors(f"table {self.name}"):
            actions = pa.table(self.delta().get_add_actions(flatten=True))
        key = f"partition.{column}"
        if key not in actions.column_names:
            return {}
        values = actions.column(key).to_pylist()
        has_counts = "num_records" in actions.column_names
        counts = actions.column("num_records").to_pylist() if has_counts else [None] * len(values)
        rows: dict[object, int] = {}
        for value, n in zip(values, counts, strict=True):
            rows[value] = rows.get(value, 0) + (1 if n is None else int(n))
        return rows

    def count(self, version: int | None = None) -> int:
        dt = self.delta(version)
        layout = layout_of_fields(dt.schema().fields)
        if layout is not None:
            return int(self.to_arrow(columns=list(layout.keys), version=version).num_rows)
        return int(dt.count())

    def history(self, limit: int | None = None) -> list[dict[str, Any]]:
        with translate_errors(f"table {self.name}"):
            return list(self.delta().history(limit))

    def changes_since(self, version: int) -> pa.Table:
        """Change-data-feed rows of every commit after ``version``.

        Includes ``_change_type`` (insert, update_preimage, update_postimage, delete): incremental
        models take the values they recompute from all of them, so a row that moved is recomputed
        in both its old and new place.
        """
        dt = self.delta()
        if dt.version() <= version:
            return pa.table({})
        with translate_errors(f"table {self.name}"):
            reader = dt.load_cdf(starting_version=version + 1, ending_version=dt.version())
            return _without_views(pa.table(reader.read_all()))

    def inserted_in(self, version: int, columns: Sequence[str]) -> pa.Table:
        """``columns`` of the rows commit ``version`` inserted (from the change data feed)."""
        with translate_errors(f"table {self.name}"):
            reader = self.delta().load_cdf(
                starting_version=version, ending_version=version, columns=[*columns, "_change_type"]
            )
            changes = _without_views(pa.table(reader.read_all()))
        inserted = changes.filter(pc.equal(changes.column("_change_type"), "insert"))
        return inserted.select(list(columns))

    # -- writing -------------------------------------------------------------------------------
    def _plain_columns(self, payload: pa.Table | pa.RecordBatchReader) -> list[str]:
        if isinstance(payload, pa.Table):
            return unique_columns(payload, self._plain)
        return [c for c in payload.schema.names if self._plain.get(c)]

    def _after_write(self) -> int:
        # delta-rs advances the DeltaTable it wrote through: no need to reload the log.
        assert self._dt is not None
        return int(self._dt.version())

    def append(
        self,
        data: Data,
        *,
        app_transactions: Mapping[str, int] | None = None,
        read_version: int | None = None,
        commit_metadata: Mapping[str, str] | None = None,
    ) -> int:
        """Append rows in one commit; new nullable columns are added to the schema.

        ``read_version``: the snapshot the caller read its progress (and any rows it checked) from.
        The commit is built on that snapshot, so a commit since then that wrote one of the same
        ``app_transactions`` keys is a :class:`CommitConflict` instead of going unnoticed.
        ``commit_metadata`` is stored in the commit (visible in :meth:`history`).
        """
        payload = _as_reader(data)
        if isinstance(payload, pa.Table) and payload.num_rows == 0 and not app_transactions:
            return self.version
        check_compatible(f"append to {self.name}", self.schema, payload.schema)
        target: list[DeltaTable] = []
        props = _writer_props(self._plain_columns(payload))

        def commit() -> None:
            dt = self.delta() if read_version is None else self.delta(read_version)
            target[:] = [dt]
            write_deltalake(
                dt,
                payload,
                mode="append",
                schema_mode="merge",
                writer_properties=props,
                commit_properties=_commit_props(app_transactions, **dict(commit_metadata or {})),
            )

        # With app transactions the caller owns progress: after a conflict it must re-read the txn
        # versions and re-filter its rows, so retrying the same rows here could duplicate them.
        retry_conflicts(commit, f"append to {self.name}", retries=0 if app_transactions else COMMIT_RETRIES)
        if read_version is not None:
            return int(target[0].version())
        return self._after_write()

    def overwrite(
        self,
        data: Data,
        *,
        predicate: str | None = None,
        app_transactions: Mapping[str, int] | None = None,
    ) -> int:
        """Replace the table's rows (or only those matching ``predicate``) in one commit."""
        payload = _as_reader(data)
        props = _writer_props(self._plain_columns(payload))

        def commit() -> None:
            write_deltalake(
                self.delta(),
                payload,
                mode="overwrite",
                predicate=predicate,
                schema_mode=None if predicate else "merge",
                writer_properties=props,
                commit_properties=_commit_props(app_transactions),
            )

        retry_conflicts(commit, f"overwrite {self.name}")
        return self._after_write()

    def merge(
        self,
        data: Data,
        keys: Sequence[str],
        *,
        delete_keys: pa.Table | None = None,
        app_transactions: Mapping[str, int] | None = None,
        read_version: int | None = None,
    ) -> int:
        """Upsert by ``keys`` in one commit: matched rows are updated, new ones inserted.

        ``delete_keys``: key values (columns named as ``keys``) whose target rows are deleted in the
        same commit — how a recomputed slice replaces the old one exactly. New columns in ``data``
        are added to the schema only when nothing is deleted.

        ``read_version``: as for :meth:`append`, the snapshot the caller read its progress from; the
        merge is built on it, so a commit since then of the same ``app_transactions`` keys is a
        :class:`CommitConflict` (not retried here: the caller's rows were computed from that
        snapshot and must be computed again).
        """
        if not keys:
            raise LakeError(f"merge into {self.name}: no key columns given")
        source = _as_reader(data)
        if isinstance(source, pa.RecordBatchReader):
            source = source.read_all()
        predicate = " AND ".join(f'(t."{k}" IS NOT DISTINCT FROM s."{k}")' for k in keys)
        pruning = self._partitions_of(keys, [source, *([delete_keys] if delete_keys is not None else [])])
        if pruning:
            predicate = f"{predicate} AND {pruning}"
        built: list[DeltaTable] = []

        def base() -> DeltaTable:
            dt = self.delta() if read_version is None else self.delta(read_version)
            built[:] = [dt]
            return dt

        retries = 0 if read_version is not None and app_transactions else COMMIT_RETRIES
        if delete_keys is not None and delete_keys.num_rows:
            self._merge_with_deletes(
                source, delete_keys, predicate, app_transactions=app_transactions, base=base, retries=retries
            )
        else:

            def commit() -> None:
                merger = base().merge(
                    source,
                    predicate,
                    source_alias="s",
                    target_alias="t",
                    merge_schema=True,
                    writer_properties=_writer_props(),
                    commit_properties=_commit_props(app_transactions),
                )
                merger.when_matched_update_all().when_not_matched_insert_all().execute()

            retry_conflicts(commit, f"merge into {self.name}", retries=retries)
        if read_version is not None:
            return int(built[0].version())
        return self._after_write()

    def _partitions_of(self, keys: Sequence[str], tables: Sequence[pa.Table]) -> str | None:
        """A condition on the target's partition columns (those among ``keys``) naming the
        partitions ``tables`` touch: a merge streams its source, so delta-rs prunes target files
        only by such constant terms and would otherwise read every partition. Target rows
        outside them cannot match a key, so the merge's result is the same."""
        terms = []
        for column in self.partition_by:
            if column not in keys or any(column not in t.column_names for t in tables):
                continue
            values: set[object] = set()
            for t in tables:
                values.update(_without_views(t.select([column]))[column].unique().to_pylist())
            if len(values) > PARTITION_FILTER_MAX:
                continue
            nulls = None in values
            literals = [sql_literal(v) for v in values if v is not None]
            if any(lit is None for lit in literals):
                continue  # a type without a literal form here: no pruning on this column
            ors = [f't."{column}" = {lit}' for lit in sorted(str(lit) for lit in literals)]
            ors += [f't."{column}" IS NULL'] if nulls else []
            if ors:
                terms.append(f"({' OR '.join(ors)})")
        return " AND ".join(terms) or None

    def _merge_with_deletes(
        self,
        source: pa.Table,
        delete_keys: pa.Table,
        predicate: str,
        *,
        app_transactions: Mapping[str, int] | None,
        base: Callable[[], DeltaTable],
        retries: int,
    ) -> None:
        # Tombstones (the keys, other columns null) ride in the merge source with a flag column, so
        # upserts and deletes are one commit. The flag is never mapped into the target.
        flag = "__shoal_delete"
        rows = source.append_column(flag, pa.repeat(False, source.num_rows))
        tombstones = {
            f.name: pa.repeat(True, delete_keys.num_rows)
            if f.name == flag
            else delete_keys[f.name].cast(f.type)
            if f.name in delete_keys.column_names
            else pa.nulls(delete_keys.num_rows, f.type)
            for f in rows.schema
        }
        rows = pa.concat_tables([rows, pa.table(tombstones, schema=rows.schema)])
        mapping = {f'"{c}"': f's."{c}"' for c in source.column_names}

        def commit() -> None:
            (
                base()
                .merge(
                    rows,
                    predicate,
                    source_alias="s",
                    target_alias="t",
                    merge_schema=False,
                    writer_properties=_writer_props(),
                    commit_properties=_commit_props(app_transactions),
                )
                .when_matched_delete(predicate=f"s.{flag}")
                .when_matched_update(updates=mapping, predicate=f"NOT s.{flag}")
                .when_not_matched_insert(updates=mapping, predicate=f"NOT s.{flag}")
                .execute()
            )

        retry_conflicts(commit, f"merge into {self.name}", retries=retries)

    def update_matched(
        self,
        data: Data,
        keys: Sequence[str],
        columns: Sequence[str],
        *,
        app_transactions: Mapping[str, int] | None = None,
    ) -> int:
        """Set ``columns`` of the rows matching ``data`` by ``keys`` (one commit; nothing inserted).

        Only the named columns change, so rows that share a key keep their other values.
        """
        if not keys or not columns:
            raise LakeError(f"update {self.name}: no key or value columns given")
        source = _as_reader(data)
        if isinstance(source, pa.RecordBatchReader):
            source = source.read_all()
        predicate = " AND ".join(f'(t."{k}" IS NOT DISTINCT FROM s."{k}")' for k in keys)
        updates = {f'"{c}"': f's."{c}"' for c in columns}

        def commit() -> None:
            (
                self.delta()
                .merge(
                    source,
                    predicate,
                    source_alias="s",
                    target_alias="t",
                    writer_properties=_writer_props(),
                    commit_properties=_commit_props(app_transactions),
                )
                .when_matched_update(updates=updates)
                .execute()
            )

        retry_conflicts(commit, f"update {self.name}")
        return self._after_write()

    def add_columns(self, fields: Sequence[pa.Field]) -> int:
        """Add nullable columns (those not there yet) in one commit; existing rows read them as null."""
        from deltalake import Schema

        have = set(self.schema.names)
        new = [f.with_nullable(True) for f in fields if f.name not in have]
        if not new:
            return self.version
        delta_fields = list(Schema.from_arrow(pa.schema(new)).fields)
        retry_conflicts(lambda: self.delta().alter.add_columns(delta_fields), f"add columns to {self.name}")
        return self._after_write()

    def delete(self, predicate: str) -> int:
        retry_conflicts(lambda: self.delta().delete(predicate), f"delete from {self.name}")
        return self._after_write()

    # -- maintenance -----------------------------------------------------------------------------
    def compact(
        self,
        target_size_mb: int | None = None,
        *,
        sort_by: Sequence[str] = (),
        partition_filters: list[tuple[str, str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Rewrite small files into larger ones. Data-neutral: readers and appenders go on.

        The new files have the layout shoal's writer gives (row groups of ``ROW_GROUP_ROWS``,
        unique columns without a dictionary). ``sort_by``: rewrite every file of each partition
        (of ``partition_filters``, e.g. ``[("event_date", "=", "2026-01-05")]``) in the order of
        these columns (delta-rs Z-order; with one column, that column's order), so that min/max
        statistics let a lookup by them skip most row groups (docs/adr/0039).
        """
        size = target_size_mb * 1024 * 1024 if target_size_mb else None
        props = _writer_props(self._sampled_plain_columns())

        def rewrite() -> dict[str, Any]:
            opt = self.delta().optimize  # a fresh snapshot on every retry
            if sort_by:
                return opt.z_order(
                    list(sort_by),
                    partition_filters=partition_filters,
                    target_size=size,
                    writer_properties=props,
                )
            return opt.compact(partition_filters=partition_filters, target_size=size, writer_properties=props)

        result: dict[str, Any] = retry_conflicts(rewrite, f"compact {self.name}")
        self._after_write()
        return result

    def _sampled_plain_columns(self) -> list[str]:
        """The columns written plain (``unique_columns``), judged on the table's first rows when
        this handle has not written yet."""
        if not self._plain and self.version >= 0:
            with translate_errors(f"read {self.name}"):
                sample = self.delta().to_pyarrow_dataset().head(_SAMPLE_ROWS)
            unique_columns(sample, self._plain)
        return [c for c, plain in self._plain.items() if plain]

    def vacuum(self, retention_hours: float = 168, dry_run: bool = False, full: bool = False) -> list[str]:
        """Delete files no longer referenced by versions younger than ``retention_hours``.

        ``full`` also deletes files no version ever referenced (what a killed writer, e.g. a Spark
        job, left in the table's directory); it lists the whole directory, so it costs more.
        """
        with translate_errors(f"vacuum {self.name}"):
            removed = self.delta().vacuum(
                retention_hours=int(retention_hours),
                dry_run=dry_run,
                enforce_retention_duration=False,
                full=full,
            )
        self._after_write()
        return list(removed)

    def checkpoint(self) -> int:
        """Write a checkpoint of the current version (readers then skip replaying the JSON log) and
        drop log files past the table's log retention; returns the version checkpointed."""
        with translate_errors(f"checkpoint {self.name}"):
            dt = self.delta()
            dt.create_checkpoint()
            dt.cleanup_metadata()
            return int(dt.version())

    def last_checkpoint(self) -> int | None:
        """The version of the table's latest checkpoint (its ``_last_checkpoint`` hint), None when it
        has none or the hint cannot be read."""
        fs, root = self.location.filesystem()
        hint = f"{root}/{self.namespace}/{self.table_name}/_delta_log/_last_checkpoint"
        try:
            with fs.open_input_stream(hint) as f:
                return int(json.loads(f.read().decode()).get("version"))
        except (OSError, ValueError, TypeError):
            return None

    def checkpoint_if_behind(self) -> int | None:
        """:meth:`checkpoint` unless the latest version has one already (ADR 0057); returns the
        version checkpointed, None when there was nothing to do."""
        version = self.version
        last = self.last_checkpoint()
        if last is not None and last >= version:
            return None
        return self.checkpoint()


def committed_version(table: Table, read_version: int, attempt_id: str) -> int | None:
    """The version of the commit after ``read_version`` whose log entry holds ``attempt_id`` (a
    writer's mark in its commit metadata): where a commit of ours landed, others may have committed
    before and after it. delta-rs's ``history()`` is no help here: with commits landing while it
    reads, it was seen numbering its entries one short. None: not committed."""
    fs, root = table.location.filesystem()
    log_dir = f"{root}/{table.namespace}/{table.table_name}/_delta_log"
    version = read_version + 1
    while True:
        try:
            with fs.open_input_stream(f"{log_dir}/{version:020d}.json") as commit:
                if attempt_id.encode() in commit.read():
                    return version
        except FileNotFoundError:
            return None
        version += 1

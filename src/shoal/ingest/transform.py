"""The per-batch transform: a pipeline's ``transform_sql``, its partition and derived columns.

All run on one consumed batch (decoded rows plus the ``_kafka_*`` metadata columns) before it is
buffered. A row that cannot be transformed or has no partition value becomes a dead letter; an
error no subset of rows can fix (bad SQL, a missing source column) stops the pipeline. A derived
column (``derive``) is NULL where its source is: the same as the truncation it stands for.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from shoal.ingest.dead_letter import MISSING_PARTITION_VALUE
from shoal.ingest.errors import PipelineStopped, TransformSqlError
from shoal.ingest.spec import PipelineSpec

#: the columns naming a row's record: (topic, partition, offset)
KEY_COLUMNS = ("_kafka_topic", "_kafka_partition", "_kafka_offset")
#: a row that failed: its record's (topic, partition, offset), error class and message
FailedRow = tuple[str, int, int, str, str]
# DuckDB errors that no subset of rows can fix: the SQL itself is wrong.
_SQL_ERRORS: tuple[type[Exception], ...] = (
    duckdb.ParserException,
    duckdb.BinderException,
    duckdb.CatalogException,
    duckdb.SyntaxException,
)


class BatchTransform:
    """``transform_sql`` then partition columns, per batch. Close it to free the DuckDB connection."""

    def __init__(self, spec: PipelineSpec) -> None:
        self.spec = spec
        self._sql: duckdb.DuckDBPyConnection | None = None

    def apply(self, table: pa.Table) -> tuple[pa.Table, list[FailedRow]]:
        """The rows to buffer and the rows that failed (to dead-letter)."""
        failed: list[FailedRow] = []
        if self.spec.transform_sql and table.num_rows:
            table, bad = self._transform(table)
            failed.extend(bad)
        if self.spec.partition_by and table.num_rows:
            table, missing = self._partition_columns(table)
            failed.extend(missing)
        for dcol in self.spec.derive if table.num_rows else ():
            val = derived_value(self._source(table, "derive", dcol.column, dcol.source), dcol.transform)
            table = _put(table, dcol.column, val)
        return table, failed

    def close(self) -> None:
        if self._sql is not None:
            self._sql.close()
            self._sql = None

    # -- transform_sql ----------------------------------------------------------------------------
    def _transform(self, table: pa.Table) -> tuple[pa.Table, list[FailedRow]]:
        """Run ``transform_sql``; a failing batch is bisected so only failing records are dead-lettered."""
        try:
            out = self._run_sql(table)
        except _SQL_ERRORS as exc:
            raise TransformSqlError(
                f"pipeline {self.spec.name}: transform_sql: {one_line(exc)}",
                pipeline=self.spec.name,
                table=self.spec.table,
            ) from exc
        except duckdb.Error as exc:
            if table.num_rows == 1:
                t, p, o = (table.column(c)[0].as_py() for c in KEY_COLUMNS)
                return table.schema.empty_table(), [(t, p, o, type(exc).__name__, one_line(exc))]
            mid = table.num_rows // 2
            left, lf = self._transform(table.slice(0, mid))
            right, rf = self._transform(table.slice(mid))
            parts = [x for x in (left, right) if x.num_rows] or [left]
            return pa.concat_tables(parts, promote_options="permissive"), lf + rf
        missing = [c for c in KEY_COLUMNS if c not in out.column_names]
        if missing:
            raise TransformSqlError(
                f"pipeline {self.spec.name}: transform_sql must keep columns {', '.join(missing)} "
                "(write SELECT *, ... or SELECT * EXCLUDE (...))",
                pipeline=self.spec.name,
                table=self.spec.table,
            )
        return out, []

    def _run_sql(self, table: pa.Table) -> pa.Table:
        if self._sql is None:
            self._sql = duckdb.connect()
            self._sql.execute("SET TimeZone = 'UTC'")
        con = self._sql
        con.register("batch", table)
        try:
            return con.sql(self.spec.transform_sql or "").to_arrow_table()
        finally:
            con.unregister("batch")

    # -- partition columns ------------------------------------------------------------------------
    def _partition_columns(self, table: pa.Table) -> tuple[pa.Table, list[FailedRow]]:
        dead: list[FailedRow] = []
        for pcol in self.spec.partition_by:
            val = derived_value(self._source(table, "partition_by", pcol.column, pcol.source), pcol.transform)
            if val.null_count:
                mask = pc.is_null(val)
                bad = table.filter(mask)
                why = f"{pcol.source!r} is null: no value for partition column {pcol.column!r}"
                for t, p, o in zip(*(bad.column(c).to_pylist() for c in KEY_COLUMNS), strict=True):
                    dead.append((t, p, o, MISSING_PARTITION_VALUE, why))
                keep = pc.invert(mask)
                table = table.filter(keep)
                val = val.filter(keep)
            table = _put(table, pcol.column, val)
        return table, dead

    def _source(self, table: pa.Table, field: str, column: str, source: str) -> pa.ChunkedArray:
        if source not in table.column_names:
            raise PipelineStopped(
                f"pipeline {self.spec.name}: {field} column {column!r}: source column "
                f"{source!r} is not in the decoded rows ({', '.join(table.column_names[:12])}...)",
                pipeline=self.spec.name,
                table=self.spec.table,
            )
        return table.column(source)


def derived_value(src: pa.ChunkedArray, transform: str) -> pa.ChunkedArray:
    """``transform`` of each value of ``src``: ``day`` a DATE, ``hour`` the hour's start, both UTC."""
    if transform != "identity" and pa.types.is_timestamp(src.type) and src.type.tz:
        # Arrow takes the day/hour in the column's zone; the lake's are UTC (as are the bounds
        # queries derive from them, partition_bounds.py), whatever the label
        src = src.cast(pa.timestamp(src.type.unit, tz="UTC"))
    if transform == "day":
        return pc.cast(src, pa.date32())
    if transform == "hour":
        return pc.floor_temporal(src, unit="hour")
    return src


def _put(table: pa.Table, column: str, values: pa.ChunkedArray) -> pa.Table:
    if column in table.column_names:
        return table.set_column(table.column_names.index(column), column, values)
    return table.append_column(column, values)


def one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]

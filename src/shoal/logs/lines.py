"""JSON log lines → rows of ``logs.lines`` and dead letters (the HTTP receiver's conversion).

The same decoder and SQL as the Kafka pipeline (:mod:`shoal.logs.schema`); a line that cannot be
decoded or has no message becomes a dead letter with a one-line error, and nothing else is lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb
import pyarrow as pa

from shoal.decode import build_decoder
from shoal.decode.result import Decoder, one_line
from shoal.logs.schema import LINES_SCHEMA, NO_MESSAGE, conform, decode_spec, transform_sql

#: error_class of a line without a message
MISSING_MESSAGE = "MissingMessage"
HTTP_TRANSFORM_SQL = transform_sql(id_sql="_line_id", received_sql="_received_at")


@dataclass(frozen=True)
class BadLine:
    """Line ``index`` of the input failed: a stable error class and a one-line message."""

    index: int
    error_class: str
    message: str


@dataclass(frozen=True)
class Converted:
    rows: pa.Table  # logs.lines rows; ``index`` of each row's line in :attr:`indices`
    indices: list[int]
    bad: list[BadLine]


class LineConverter:
    """Decodes and transforms batches of lines; not thread-safe (one per flusher)."""

    def __init__(self) -> None:
        self._decoder: Decoder = build_decoder(decode_spec())
        self._con = duckdb.connect()
        self._con.execute("SET TimeZone = 'UTC'")

    def close(self) -> None:
        self._con.close()

    def convert(self, lines: Sequence[bytes], ids: Sequence[str], received_at: datetime) -> Converted:
        res = self._decoder.decode(list(lines))
        bad = [BadLine(f.index, f.error_class, f.message) for f in res.failures]
        batch = pa.Table.from_batches([res.batch])
        batch = batch.append_column("_line_id", pa.array([ids[i] for i in res.indices], pa.string()))
        batch = batch.append_column(
            "_received_at", pa.array([received_at] * batch.num_rows, LINES_SCHEMA.field("ts").type)
        )
        batch = batch.append_column("_index", pa.array(res.indices, pa.int64()))
        rows, failed = self._transform(batch)
        for idx, cls, msg in failed:
            bad.append(BadLine(idx, cls, msg))
        indices = rows.column("_index").to_pylist() if rows.num_rows else []
        rows = (
            rows.append_column(
                "_ingested_at", pa.array([received_at] * rows.num_rows, LINES_SCHEMA.field("ts").type)
            )
            if "_ingested_at" not in rows.column_names
            else rows
        )
        out = conform(rows)
        out = out.set_column(out.schema.get_field_index("day"), "day", out.column("ts").cast(pa.date32()))
        return Converted(out, indices, sorted(bad, key=lambda b: b.index))

    def _transform(self, batch: pa.Table) -> tuple[pa.Table, list[tuple[int, str, str]]]:
        """Run the SQL; a failing batch is bisected so only the failing lines are dead letters."""
        if batch.num_rows == 0:
            return batch, []
        self._con.register("batch", batch)
        try:
            return self._con.sql(HTTP_TRANSFORM_SQL).to_arrow_table(), []
        except duckdb.Error as exc:
            if batch.num_rows == 1:
                text = one_line(exc).removeprefix("Invalid Input Error: ")
                cls = MISSING_MESSAGE if text == NO_MESSAGE else type(exc).__name__
                return batch.schema.empty_table(), [(int(batch.column("_index")[0].as_py()), cls, text)]
        finally:
            self._con.unregister("batch")
        mid = batch.num_rows // 2
        left, lf = self._transform(batch.slice(0, mid))
        right, rf = self._transform(batch.slice(mid))
        parts = [t for t in (left, right) if t.num_rows] or [left]
        return pa.concat_tables(parts, promote_options="permissive"), lf + rf

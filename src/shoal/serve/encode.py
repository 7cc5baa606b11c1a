"""Result streams: Arrow record batches encoded as JSON, CSV or Arrow IPC, one batch at a time.

JSON documents are ``{"columns": [{"name", "type"}], "rows": [[...], ...], "row_count": n,
"error": null}``; values follow :mod:`shoal.jsonsafe`. An error after the first bytes were
sent (a timeout, a result past the row limit) still ends the document: ``"error"`` holds the
message, so a client never takes a cut result for a whole one. CSV and Arrow streams are cut short
instead (the HTTP chunked body ends without its terminator), which clients report as an error.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Generator, Iterator
from enum import StrEnum

import pyarrow as pa

from shoal.errors import ShoalError
from shoal.jsonsafe import to_jsonable


class Format(StrEnum):
    json = "json"
    csv = "csv"
    arrow = "arrow"


MEDIA_TYPES = {
    Format.json: "application/json",
    Format.csv: "text/csv; charset=utf-8",
    Format.arrow: "application/vnd.apache.arrow.stream",
}


def column_types(schema: pa.Schema) -> list[dict[str, str]]:
    return [{"name": f.name, "type": str(f.type)} for f in schema]


def _plain(kind: pa.DataType) -> bool:
    """Whether Python's values of ``kind`` are already their JSON encoding (no to_jsonable needed)."""
    return bool(
        pa.types.is_integer(kind)
        or pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_null(kind)
    )


def _finite(value: object) -> object:
    return value if not isinstance(value, float) or math.isfinite(value) else to_jsonable(value)


def _json_values(column: pa.Array) -> list[object]:
    values: list[object] = column.to_pylist()
    if _plain(column.type):
        return values
    if pa.types.is_floating(column.type):
        return [_finite(v) for v in values]
    return [to_jsonable(v) for v in values]


def _json_rows(batch: pa.RecordBatch) -> str:
    """The batch's rows as JSON arrays, comma-separated: one ``json.dumps`` per batch, values
    converted per column (only types whose Python value is not already JSON are mapped)."""
    if batch.num_columns == 0:
        return ",".join("[]" for _ in range(batch.num_rows))
    rows = list(zip(*(_json_values(c) for c in batch.columns), strict=True))
    return json.dumps(rows, allow_nan=False, ensure_ascii=False, separators=(",", ":"))[1:-1]


def encode_json(
    schema: pa.Schema, batches: Iterator[pa.RecordBatch], count: Callable[[], int]
) -> Generator[bytes, None, None]:
    yield ('{"columns":' + json.dumps(column_types(schema)) + ',"rows":[').encode()
    first = True
    error: str | None = None
    try:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            body = _json_rows(batch)
            yield (body if first else "," + body).encode()
            first = False
    except ShoalError as exc:
        error = str(exc)
    yield ('],"row_count":' + str(count()) + ',"error":' + json.dumps(error) + "}\n").encode()


def _csv_cell(value: object) -> object:
    if value is None:
        return ""
    out = to_jsonable(value)
    if isinstance(out, dict | list):
        return json.dumps(out, allow_nan=False, ensure_ascii=False)
    return out


def encode_csv(schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> Generator[bytes, None, None]:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(schema.names)
    yield buf.getvalue().encode()
    for batch in batches:
        buf.seek(0)
        buf.truncate()
        columns = [c.to_pylist() for c in batch.columns]
        for i in range(batch.num_rows):
            writer.writerow([_csv_cell(col[i]) for col in columns])
        yield buf.getvalue().encode()


class _Chunks(io.RawIOBase):
    """A write-only file collecting what the Arrow IPC writer emits, handed out per batch."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, b: object) -> int:
        data = bytes(b)  # type: ignore[call-overload]
        self.parts.append(data)
        return len(data)

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


def encode_arrow(schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> Generator[bytes, None, None]:
    sink = _Chunks()
    with pa.ipc.new_stream(sink, schema) as writer:
        yield sink.take()
        for batch in batches:
            writer.write_batch(batch)
            yield sink.take()
    yield sink.take()

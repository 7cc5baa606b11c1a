"""JSON object bytes → Arrow RecordBatch with typed columns; unmapped keys kept in ``_extra``."""

from __future__ import annotations

import base64
import binascii
import decimal
import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa

from shoal.decode import confluent_framing
from shoal.decode.confluent_framing import FramingMode
from shoal.decode.result import DecodeFailure, Decoder, DecodeResult, gc_paused, one_line
from shoal.decode.spec import EXTRA_COLUMN, JsonColumn, parse_decimal

_INT_RE = re.compile(r"^[+-]?\d+$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MISSING = object()


class TypeMismatch(ValueError):
    """A JSON value does not fit its column's type."""


_KIND_NAMES: dict[type, str] = {dict: "object", list: "array"}


def _kind(v: Any) -> str:
    return "null" if v is None else _KIND_NAMES.get(type(v), type(v).__name__)


def _int_converter(bits: int) -> Callable[[Any], Any]:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1

    def conv(v: Any) -> int:
        if isinstance(v, bool):
            raise TypeMismatch(f"expected int{bits}, got bool")
        if isinstance(v, int):
            out = v
        elif (isinstance(v, float) and v.is_integer()) or (isinstance(v, str) and _INT_RE.match(v.strip())):
            out = int(v)
        else:
            raise TypeMismatch(f"expected int{bits}, got {_kind(v)} {str(v)[:40]!r}")
        if not lo <= out <= hi:
            raise TypeMismatch(f"{out} is out of range for int{bits}")
        return out

    return conv


def _float(v: Any) -> float:
    if isinstance(v, bool):
        raise TypeMismatch("expected a number, got bool")
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            pass
    raise TypeMismatch(f"expected a number, got {_kind(v)} {str(v)[:40]!r}")


def _string(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bool | int | float):
        return json.dumps(v)
    raise TypeMismatch(f"expected a string, got {_kind(v)} (use type json for nested values)")


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    raise TypeMismatch(f"expected a bool, got {_kind(v)} {str(v)[:40]!r}")


def _timestamp(v: Any) -> int:
    """→ microseconds since the epoch (UTC). Strings are ISO 8601 (naive means UTC); numbers are epoch
    seconds, or milliseconds/microseconds when too large to be seconds (beyond year 5138 / 5138 ms)."""
    if isinstance(v, str):
        try:
            dt = datetime.fromisoformat(v.strip())
        except ValueError:
            raise TypeMismatch(f"expected an ISO 8601 timestamp, got {v[:40]!r}") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        delta = dt - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if isinstance(v, int | float) and not isinstance(v, bool):
        magnitude = abs(v)
        if magnitude < 1e11:
            return round(v * 1_000_000)
        if magnitude < 1e14:
            return round(v * 1_000)
        return round(v)
    raise TypeMismatch(f"expected a timestamp, got {_kind(v)}")


def _date(v: Any) -> date:
    if isinstance(v, str):
        text = v.strip()
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
        try:
            return datetime.fromisoformat(text).date()
        except ValueError:
            pass
    raise TypeMismatch(f"expected an ISO date, got {_kind(v)} {str(v)[:40]!r}")


def _decimal_converter(precision: int, scale: int) -> Callable[[Any], Any]:
    quantum = decimal.Decimal(1).scaleb(-scale)
    ctx = decimal.Context(prec=precision, traps=[decimal.Inexact, decimal.InvalidOperation])

    def conv(v: Any) -> decimal.Decimal:
        if isinstance(v, bool) or not isinstance(v, int | float | str):
            raise TypeMismatch(f"expected a decimal, got {_kind(v)}")
        try:
            d = decimal.Decimal(str(v).strip())
            if not d.is_finite():
                raise decimal.InvalidOperation
            return d.quantize(quantum, context=ctx)
        except (decimal.InvalidOperation, decimal.Inexact):
            raise TypeMismatch(f"{str(v)[:40]!r} does not fit decimal({precision},{scale})") from None

    return conv


def _json(v: Any) -> str:
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def _binary(v: Any) -> bytes:
    if isinstance(v, str):
        try:
            return base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError):
            pass
    raise TypeMismatch(f"expected base64 text, got {_kind(v)} {str(v)[:40]!r}")


def column_type(type_name: str) -> tuple[pa.DataType, Callable[[Any], Any]]:
    """Arrow type and value converter for a JSON column type name (see :class:`JsonColumn`)."""
    dec = parse_decimal(type_name)
    if dec is not None:
        return pa.decimal128(*dec), _decimal_converter(*dec)
    table: dict[str, tuple[pa.DataType, Callable[[Any], Any]]] = {
        "string": (pa.string(), _string),
        "int32": (pa.int32(), _int_converter(32)),
        "int64": (pa.int64(), _int_converter(64)),
        "float32": (pa.float32(), _float),
        "float64": (pa.float64(), _float),
        "bool": (pa.bool_(), _bool),
        "timestamp": (pa.timestamp("us", tz="UTC"), _timestamp),
        "date": (pa.date32(), _date),
        "json": (pa.string(), _json),
        "binary": (pa.binary(), _binary),
    }
    return table[type_name]


def infer_type(values: list[Any]) -> str | None:
    """Column type for the non-null JSON values of one key (None when every value is null)."""
    kinds = {_kind(v) for v in values if v is not None}
    if not kinds:
        return None
    if kinds == {"bool"}:
        return "bool"
    if kinds == {"int"}:
        return "int64"
    if kinds <= {"int", "float"}:
        return "float64"
    if kinds == {"str"}:
        return "string"
    return "json"


class JsonDecoder(Decoder):
    """Decodes JSON objects. Each column reads a (dotted) key path and converts to its type; a value
    that does not fit fails the record (TypeMismatch). Keys no column reads are kept as a JSON object
    string in ``_extra`` (null when there are none).

    With ``infer`` the columns are discovered from the data: each new top-level key becomes a column
    typed from the values of the batch it first appears in (int64, float64, bool, string, or json for
    objects, arrays and mixed kinds); ``arrow_schema`` grows accordingly. Later values that do not fit
    the inferred type fail their record rather than silently change the column type.
    """

    def __init__(
        self,
        columns: Sequence[JsonColumn] | None,
        *,
        infer: bool = False,
        extra_column: bool = True,
        confluent_wire: FramingMode = "auto",
    ) -> None:
        self._columns: list[JsonColumn] = list(columns or ())
        self._infer = infer
        self._extra = extra_column
        self._framing: FramingMode = confluent_wire
        self._compile()

    def _compile(self) -> None:
        typed = [(c, *column_type(c.type)) for c in self._columns]
        self._plan = [(c.key_path, conv) for c, _, conv in typed]
        fields = [pa.field(c.name, t) for c, t, _ in typed]
        if self._extra:
            fields.append(pa.field(EXTRA_COLUMN, pa.string()))
        self._schema = pa.schema(fields)

    @property
    def arrow_schema(self) -> pa.Schema:
        return self._schema

    @property
    def columns(self) -> list[JsonColumn]:
        return list(self._columns)

    def decode(self, values: Sequence[bytes | None]) -> DecodeResult:
        with gc_paused():
            return self._decode(values)

    def _decode(self, values: Sequence[bytes | None]) -> DecodeResult:
        failures: list[DecodeFailure] = []
        docs: list[dict[str, Any]] = []
        positions: list[int] = []
        for i, v in enumerate(values):
            if v is None:
                failures.append(DecodeFailure(i, "NullValue", "record value is null (a tombstone?)"))
                continue
            try:
                payload = confluent_framing.strip(v, self._framing, protobuf=False)
            except confluent_framing.FramingError as exc:
                failures.append(DecodeFailure(i, "WireFormatError", one_line(exc)))
                continue
            try:
                # decode explicitly: json.loads(bytes) would guess UTF-16/32 from the first bytes
                doc = json.loads(payload.decode("utf-8"))
            except UnicodeDecodeError as exc:
                failures.append(DecodeFailure(i, "InvalidUtf8", one_line(exc)))
                continue
            except ValueError as exc:
                failures.append(DecodeFailure(i, "JsonSyntaxError", one_line(exc)))
                continue
            if not isinstance(doc, dict):
                failures.append(DecodeFailure(i, "NotAnObject", f"expected a JSON object, got {_kind(doc)}"))
                continue
            docs.append(doc)
            positions.append(i)
        if self._infer:
            self._learn(docs)

        n_cols = len(self._plan)
        cols: list[list[Any]] = [[] for _ in range(n_cols)]
        extras: list[str | None] = []
        kept: list[int] = []
        for doc, pos in zip(docs, positions, strict=True):
            row: list[Any] = []
            try:
                for path, conv in self._plan:
                    v = _take(doc, path)
                    row.append(None if v is None or v is _MISSING else conv(v))
            except TypeMismatch as exc:
                name = self._columns[len(row)].name
                failures.append(DecodeFailure(pos, "TypeMismatch", one_line(f"column {name}: {exc}")))
                continue
            for c, v in zip(cols, row, strict=True):
                c.append(v)
            if self._extra:
                extras.append(_json(doc) if doc else None)
            kept.append(pos)

        arrays = [pa.array(c, type=f.type) for c, f in zip(cols, self._schema, strict=False)]
        if self._extra:
            arrays.append(pa.array(extras, type=pa.string()))
        batch = pa.RecordBatch.from_arrays(arrays, schema=self._schema)
        failures.sort(key=lambda f: f.index)
        return DecodeResult(batch, kept, failures, 0)

    def _learn(self, docs: list[dict[str, Any]]) -> None:
        known = {c.key_path[0] for c in self._columns}
        seen: dict[str, list[Any]] = {}
        for doc in docs:
            for k, v in doc.items():
                if k not in known and (k != EXTRA_COLUMN or not self._extra):
                    seen.setdefault(k, []).append(v)
        added = False
        for key, vals in seen.items():
            inferred = infer_type(vals)
            if inferred is not None and "." not in key:
                self._columns.append(JsonColumn(name=key, type=inferred))
                added = True
        if added:
            self._compile()


def _take(doc: dict[str, Any], path: tuple[str, ...]) -> Any:
    """Remove and return the value at ``path`` (so what remains of ``doc`` is the ``_extra``)."""
    if len(path) == 1:
        return doc.pop(path[0], _MISSING)
    parent: Any = doc
    for key in path[:-1]:
        parent = parent.get(key) if isinstance(parent, dict) else None
        if parent is None:
            return _MISSING
    if not isinstance(parent, dict):
        return _MISSING
    value = parent.pop(path[-1], _MISSING)
    # prune now-empty parents so _extra does not fill up with {} shells
    node: Any = doc
    chain_: list[tuple[dict[str, Any], str]] = []
    for key in path[:-1]:
        chain_.append((node, key))
        node = node[key]
    for holder, key in reversed(chain_):
        if holder[key] == {}:
            del holder[key]
        else:
            break
    return value

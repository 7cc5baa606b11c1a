"""The decode spec: how a pipeline turns message bytes into Arrow rows (frozen pydantic model)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from shoal.decode.confluent_framing import FramingMode

_DECIMAL = re.compile(r"^decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)$")
JSON_SCALAR_TYPES = frozenset(
    {"string", "int32", "int64", "float32", "float64", "bool", "timestamp", "date", "json", "binary"}
)
EXTRA_COLUMN = "_extra"


def parse_decimal(type_name: str) -> tuple[int, int] | None:
    """``decimal(p,s)`` → (p, s); None for any other type name."""
    m = _DECIMAL.match(type_name)
    return (int(m.group(1)), int(m.group(2))) if m else None


class JsonColumn(BaseModel):
    """One typed column of a JSON decode: ``name`` is the Arrow column, ``path`` the dotted JSON key
    path it reads (defaults to ``name``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    type: str = "string"
    path: str | None = None

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        value = value.strip().lower()
        if value in JSON_SCALAR_TYPES:
            return value
        dec = parse_decimal(value)
        if dec is None:
            raise ValueError(
                f"unknown column type {value!r}; use one of {', '.join(sorted(JSON_SCALAR_TYPES))} "
                "or decimal(p,s)"
            )
        precision, scale = dec
        if not 1 <= precision <= 38 or scale > precision:
            raise ValueError(f"decimal({precision},{scale}) needs 1 <= p <= 38 and s <= p")
        return f"decimal({precision},{scale})"

    @property
    def key_path(self) -> tuple[str, ...]:
        return tuple((self.path or self.name).split("."))


class DecodeSpec(BaseModel):
    """How to decode record values.

    protobuf: ``message`` (full name) from exactly one of ``descriptor_set`` (a FileDescriptorSet file,
    ``protoc --descriptor_set_out=... --include_imports``) or ``proto_file`` (compiled at load time;
    ``include_paths`` add import roots). ``enums``: column holds the value name or number.
    ``strict_unknown_fields``: records carrying fields the descriptor does not know fail (instead of
    landing with those fields counted in ``unknown_field_rows``).

    json: explicit ``columns`` or ``infer: true``; keys not mapped to a column are kept as a JSON object
    string in ``_extra`` (unless ``extra_column`` is false).

    ``confluent_wire``: strip the Confluent Schema Registry framing (magic byte, schema id and, for
    protobuf, the message-index array); ``auto`` strips it when present.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["protobuf", "json"]
    confluent_wire: FramingMode = "auto"
    # protobuf
    message: str | None = None
    descriptor_set: Path | None = None
    proto_file: Path | None = None
    include_paths: tuple[Path, ...] = ()
    enums: Literal["name", "number"] = "name"
    strict_unknown_fields: bool = False
    # Delta Lake has no unsigned or duration types: uint32 → int64, uint64 → decimal(20,0),
    # Duration → int64 microseconds. On by default since every decoded batch lands in Delta;
    # off gives the plain Arrow mapping (duration[us], uint*) for other consumers.
    delta_compatible_types: bool = True
    # json
    columns: tuple[JsonColumn, ...] | None = None
    infer: bool = False
    extra_column: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> DecodeSpec:
        if self.format == "protobuf":
            if not self.message:
                raise ValueError("protobuf decoding needs 'message' (the full message name)")
            if (self.descriptor_set is None) == (self.proto_file is None):
                raise ValueError("protobuf decoding needs exactly one of 'descriptor_set' or 'proto_file'")
            if self.columns is not None or self.infer:
                raise ValueError("'columns' and 'infer' apply to json decoding only")
        else:
            if self.message or self.descriptor_set or self.proto_file:
                raise ValueError("'message', 'descriptor_set' and 'proto_file' apply to protobuf only")
            if (self.columns is None) == (not self.infer):
                raise ValueError("json decoding needs exactly one of 'columns' or 'infer: true'")
            names = [c.name for c in self.columns or ()]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"duplicate json column names: {', '.join(dupes)}")
            if self.extra_column and EXTRA_COLUMN in names:
                raise ValueError(f"column name {EXTRA_COLUMN!r} is reserved for unmapped keys")
        return self

    def resolve_paths(self, base_dir: Path | str) -> DecodeSpec:
        """A copy whose relative file paths are taken relative to ``base_dir`` (e.g. the project dir)."""
        base = Path(base_dir)

        def fix(p: Path | None) -> Path | None:
            return None if p is None else (p if p.is_absolute() else base / p)

        return self.model_copy(
            update={
                "descriptor_set": fix(self.descriptor_set),
                "proto_file": fix(self.proto_file),
                "include_paths": tuple(p if p.is_absolute() else base / p for p in self.include_paths),
            }
        )

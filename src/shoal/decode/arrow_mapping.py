"""Protobuf descriptor → Arrow schema, and column builders that turn parsed messages into Arrow arrays.

The mapping (see the contracts brief): scalars → matching Arrow scalars; proto3 implicit-presence scalars
hold their default, fields with presence (proto3 ``optional``, proto2) are null when unset; enums → value
name (or int32 number); Timestamp → timestamp[us, UTC]; Duration → duration[us]; wrappers → nullable
scalar; nested messages → struct (null when unset); repeated → list; map → map; each oneof member is its
own column plus ``<oneof>_case``; google.protobuf.Struct/Value/ListValue and recursive message types →
JSON text; messages without fields (google.protobuf.Empty) → bool "was set".

Builders work column-at-a-time over a list of messages (no per-row dicts): every field has a plan that
fetches its values with ``operator.attrgetter`` over the whole list and hands them to a value node that
makes one Arrow array. Problems found while building (invalid UTF-8 in proto2 strings, out-of-range
timestamps, unknown fields) are reported to a :class:`BuildContext` by top-level row.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from itertools import chain
from operator import attrgetter, methodcaller
from typing import Any

import numpy as np
import pyarrow as pa
from google.protobuf import descriptor_pb2, json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.unknown_fields import UnknownFieldSet

from shoal.decode.errors import DecodeSpecError

Rows = np.ndarray | None  # element index → top-level row; None means "element i is row i"

_FD = FieldDescriptor
_SCALAR_TYPES: dict[int, pa.DataType] = {
    _FD.TYPE_INT32: pa.int32(),
    _FD.TYPE_SINT32: pa.int32(),
    _FD.TYPE_SFIXED32: pa.int32(),
    _FD.TYPE_INT64: pa.int64(),
    _FD.TYPE_SINT64: pa.int64(),
    _FD.TYPE_SFIXED64: pa.int64(),
    _FD.TYPE_UINT32: pa.uint32(),
    _FD.TYPE_FIXED32: pa.uint32(),
    _FD.TYPE_UINT64: pa.uint64(),
    _FD.TYPE_FIXED64: pa.uint64(),
    _FD.TYPE_FLOAT: pa.float32(),
    _FD.TYPE_DOUBLE: pa.float64(),
    _FD.TYPE_BOOL: pa.bool_(),
    _FD.TYPE_STRING: pa.string(),
    _FD.TYPE_BYTES: pa.binary(),
}
_WRAPPERS: dict[str, pa.DataType] = {
    "google.protobuf.DoubleValue": pa.float64(),
    "google.protobuf.FloatValue": pa.float32(),
    "google.protobuf.Int64Value": pa.int64(),
    "google.protobuf.UInt64Value": pa.uint64(),
    "google.protobuf.Int32Value": pa.int32(),
    "google.protobuf.UInt32Value": pa.uint32(),
    "google.protobuf.BoolValue": pa.bool_(),
    "google.protobuf.StringValue": pa.string(),
    "google.protobuf.BytesValue": pa.binary(),
}
_JSON_TYPES = frozenset({"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"})
# Valid ranges from timestamp.proto / duration.proto; beyond them micros could overflow int64.
_MAX_TIMESTAMP_SECONDS = 253_402_300_799
_MAX_DURATION_SECONDS = 315_576_000_000
_TIMESTAMP_UTC = pa.timestamp("us", tz="UTC")


class BuildContext:
    """Collects per-row problems found while building columns."""

    __slots__ = ("bad", "check_unknown", "unknown")

    def __init__(self, check_unknown: bool = True) -> None:
        self.bad: dict[int, tuple[str, str]] = {}
        self.unknown: set[int] = set()
        self.check_unknown = check_unknown

    def fail(self, row: int, error_class: str, message: str) -> None:
        self.bad.setdefault(row, (error_class, message))

    def note_unknown(self, row: int, msg: Message) -> None:
        """``msg`` carries unknown fields. A field number the descriptor *does* know arriving with a
        different wire type is not schema drift but a type clash (or garbage bytes): fail the row."""
        desc = msg.DESCRIPTOR
        for uf in UnknownFieldSet(msg):
            known = desc.fields_by_number.get(uf.field_number)
            if known is not None:
                self.fail(
                    row,
                    "WireTypeMismatch",
                    f"field {uf.field_number} ({known.name}) of {desc.full_name} arrived with wire type "
                    f"{uf.wire_type}, which does not match its declared type",
                )
                return
        self.unknown.add(row)


def _row(rows: Rows, i: int) -> int:
    return i if rows is None else int(rows[i])


def _pa_mask(mask: list[bool] | None) -> pa.Array | None:
    if mask is None or not any(mask):
        return None
    return pa.array(mask, type=pa.bool_())


# --------------------------------------------------------------------------------------- value nodes


class Node(ABC):
    """Turns a list of Python values of one proto type into an Arrow array.

    Scalar nodes get values with ``None`` where null. Message nodes (``is_message``) get message
    objects everywhere (a default instance where null) plus ``mask`` (True = null).
    """

    arrow_type: pa.DataType
    is_message = False

    @abstractmethod
    def build(
        self, values: list[Any], mask: list[bool] | None, rows: Rows, ctx: BuildContext
    ) -> pa.Array: ...


class ScalarNode(Node):
    def __init__(self, arrow_type: pa.DataType) -> None:
        self.arrow_type = arrow_type

    def build(self, values: list[Any], mask: list[bool] | None, rows: Rows, ctx: BuildContext) -> pa.Array:
        return pa.array(values, type=self.arrow_type)


class StringNode(ScalarNode):
    """proto3 strings are UTF-8-checked by the parser; proto2 ones come back as bytes when invalid."""

    def __init__(self) -> None:
        super().__init__(pa.string())

    def build(self, values: list[Any], mask: list[bool] | None, rows: Rows, ctx: BuildContext) -> pa.Array:
        try:
            return pa.array(values, type=pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            fixed = list(values)
            for i, v in enumerate(fixed):
                if isinstance(v, bytes):
                    try:
                        fixed[i] = v.decode("utf-8")
                    except UnicodeDecodeError:
                        ctx.fail(_row(rows, i), "InvalidUtf8", "a string field holds invalid UTF-8")
                        fixed[i] = None
            return pa.array(fixed, type=pa.string())


class _EnumNames(dict[Any, Any]):
    def __missing__(self, key: Any) -> Any:
        return str(key)  # open enums may carry numbers this descriptor has no name for


class EnumNode(Node):
    def __init__(self, field: FieldDescriptor, as_number: bool) -> None:
        self.as_number = as_number
        self.arrow_type = pa.int32() if as_number else pa.string()
        names = _EnumNames({v.number: v.name for v in field.enum_type.values})
        names[None] = None
        self._lookup = names.__getitem__

    def build(self, values: list[Any], mask: list[bool] | None, rows: Rows, ctx: BuildContext) -> pa.Array:
        if self.as_number:
            return pa.array(values, type=pa.int32())
        return pa.array(list(map(self._lookup, values)), type=pa.string())


class _SecondsNanosNode(Node):
    is_message = True
    _limit: int
    _min_nanos: int
    _what: str

    def build(self, values: list[Any], mask: list[bool] | None, rows: Rows, ctx: BuildContext) -> pa.Array:
        n = len(values)
        secs = np.fromiter(map(attrgetter("seconds"), values), dtype=np.int64, count=n)
        nanos = np.fromiter(map(attrgetter("nanos"), values), dtype=np.int64, count=n)
        np_mask = np.asarray(mask, dtype=bool) if mask is not None else np.zeros(n, dtype=bool)
        out_of_range = (np.abs(secs) > self._limit) | (nanos < self._min_nanos) | (nanos > 999_999_999)
        if out_of_range.any():
            for i in np.flatnonzero(out_of_range & ~np_mask):
                ctx.fail(
                    _row(rows, int(i)),
                    f"Invalid{self._what}",
                    f"{self._what} out of range: seconds={int(secs[i])} nanos={int(nanos[i])}",
                )
            secs = np.where(out_of_range, 0, secs)
            nanos = np.where(out_of_range, 0, nanos)
        # truncate sub-microsecond digits toward zero (durations may be negative)
        micros = secs * 1_000_000 + np.sign(nanos) * (np.abs(nanos) // 1000)
        return pa.array(micros, type=self.arrow_type, mask=np_mask if np_mask.any() else None)


class TimestampNode(_SecondsNanosNode):
    arrow_type = _TIMESTAMP_UTC
    _limit = _MAX_TIMESTAMP_SECONDS
    _min_nanos = 0
    _what = "Timestamp"


class DurationNode(_SecondsNanosNode):
    arrow_type = pa.duration("us")
    _limit = _MAX_DURATION_SECONDS
    _min_nanos = -999_999_999
    _what = "Duration"


class WrapperNode(Node):
    is_message = True

    def __init__(self, inner: Node) -> None:
        self.inner = inner
        self.arrow_type = inner.arrow_type

    def build(self, values: list[Any], mask: list[bool] | None, rows: Rows, ctx: BuildContext) -> pa.Array:
        raw = list(map(attrgetter("value"), values))
        if mask is not None:
            raw = [None if m else v for v, m in zip(raw, mask, strict=True)]
        return self.inner.build(raw, None, rows, ctx)


class JsonNode(Node):
    """Struct/Value/ListValue and recursive types: canonical proto3 JSON text."""

    is_message = True
    arrow_type = pa.string()

    def build(self, values: list[Any], mask: list[bool] | None, rows: Rows, ctx: BuildContext) -> pa.Array:
        out: list[str | None] = []
        for i, v in enumerate(values):
            if mask is not None and mask[i]:
                out.append(None)
                continue
            try:
                d = json_format.MessageToDict(v, preserving_proto_field_name=True)
            except (TypeError, ValueError) as exc:  # e.g. Value with NaN, unresolvable Any
                ctx.fail(_row(rows, i), "JsonConversionError", str(exc).splitlines()[0])
                out.append(None)
                continue
            out.append(json.dumps(d, separators=(",", ":"), ensure_ascii=False))
        return pa.array(out, type=pa.string())


class PresenceNode(Node):
    """A message type without fields (google.protobuf.Empty): Parquet has no empty structs, so bool."""

    is_message = True
    arrow_type = pa.bool_()

    def build(self, values: list[Any], mask: list[bool] | None, rows: Rows, ctx: BuildContext) -> pa.Array:
        if mask is None:
            return pa.array([True] * len(values), type=pa.bool_())
        return pa.array([None if m else True for m in mask], type=pa.bool_())


class MessageNode(Node):
    is_message = True

    def __init__(self, desc: Descriptor, plans: list[FieldPlan], check_unknown: bool) -> None:
        self.desc = desc
        self.plans = plans
        self.fields = [f for p in plans for f in p.fields]
        self.arrow_type = pa.struct(self.fields)
        self.check_unknown = check_unknown

    def columns(self, values: list[Any], rows: Rows, ctx: BuildContext) -> list[pa.Array]:
        if self.check_unknown and ctx.check_unknown:
            counts = list(map(len, map(UnknownFieldSet, values)))
            if any(counts):
                for i, c in enumerate(counts):
                    if c:
                        ctx.note_unknown(_row(rows, i), values[i])
        arrays: list[pa.Array] = []
        for plan in self.plans:
            arrays.extend(plan.build(values, rows, ctx))
        return arrays

    def build(self, values: list[Any], mask: list[bool] | None, rows: Rows, ctx: BuildContext) -> pa.Array:
        if mask is not None and any(mask):
            present = [i for i, m in enumerate(mask) if not m]
            return self.build_sparse([values[i] for i in present], present, len(values), rows, ctx)
        children = self.columns(values, rows, ctx)
        return pa.StructArray.from_arrays(children, fields=self.fields)

    def build_sparse(
        self, subs: list[Any], present: list[int] | np.ndarray, n: int, rows: Rows, ctx: BuildContext
    ) -> pa.Array:
        """Struct column of length ``n`` whose rows ``present`` hold ``subs`` and the rest are null.

        Children are built over the present messages only, then spread out with one ``take`` (null
        indices give null rows) — much cheaper than reading fields of n placeholder messages.
        """
        if not len(present):
            return pa.nulls(n, type=self.arrow_type)
        where = np.asarray(present, dtype=np.int64)
        sub_rows = where if rows is None else rows[where]
        compact = pa.StructArray.from_arrays(self.columns(subs, sub_rows, ctx), fields=self.fields)
        if len(present) == n:
            return compact
        return _spread(compact, where, n)


def _spread(compact: pa.Array, where: np.ndarray, n: int) -> pa.Array:
    """Array of length ``n`` holding ``compact``'s values at rows ``where`` (ascending), null elsewhere."""
    idx = np.zeros(n, dtype=np.int64)
    idx[where] = np.arange(len(where))
    null = np.ones(n, dtype=bool)
    null[where] = False
    return compact.take(pa.array(idx, mask=null))


# --------------------------------------------------------------------------------------- field plans


class FieldPlan(ABC):
    """Produces the column(s) of one field (or of a whole oneof) from a list of parent messages."""

    fields: list[pa.Field]

    @abstractmethod
    def build(self, msgs: list[Any], rows: Rows, ctx: BuildContext) -> list[pa.Array]: ...


class SingularPlan(FieldPlan):
    def __init__(self, field: FieldDescriptor, node: Node) -> None:
        self.field = field
        self.name = field.name
        self.node = node
        self.get = attrgetter(field.name)
        self.has = methodcaller("HasField", field.name)
        self.presence = field.has_presence
        self.fields = [pa.field(field.name, node.arrow_type)]

    def build(self, msgs: list[Any], rows: Rows, ctx: BuildContext) -> list[pa.Array]:
        node = self.node
        if isinstance(node, MessageNode):
            has = list(map(self.has, msgs))
            if all(has):
                return [node.build(list(map(self.get, msgs)), None, rows, ctx)]
            get = self.get
            present = [i for i, h in enumerate(has) if h]
            return [node.build_sparse([get(msgs[i]) for i in present], present, len(msgs), rows, ctx)]
        values = list(map(self.get, msgs))
        if node.is_message:
            mask = [not h for h in map(self.has, msgs)]
            return [node.build(values, mask, rows, ctx)]
        if self.presence:
            values = [v if h else None for v, h in zip(values, map(self.has, msgs), strict=True)]
        return [node.build(values, None, rows, ctx)]


def _flatten(containers: list[Any], rows: Rows) -> tuple[pa.Array, np.ndarray]:
    """List offsets for ``containers`` and, for each flattened element, its top-level row."""
    n = len(containers)
    lens = np.fromiter(map(len, containers), dtype=np.int64, count=n)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lens, out=offsets[1:])
    base = np.arange(n) if rows is None else rows
    return pa.array(offsets, type=pa.int32()), np.repeat(base, lens)


class RepeatedPlan(FieldPlan):
    def __init__(self, field: FieldDescriptor, node: Node) -> None:
        self.field = field
        self.node = node
        self.get = attrgetter(field.name)
        self.fields = [pa.field(field.name, pa.list_(node.arrow_type))]

    def build(self, msgs: list[Any], rows: Rows, ctx: BuildContext) -> list[pa.Array]:
        containers = list(map(self.get, msgs))
        offsets, flat_rows = _flatten(containers, rows)
        flat = list(chain.from_iterable(containers))
        values = self.node.build(flat, None, flat_rows, ctx)
        return [pa.ListArray.from_arrays(offsets, values)]


class MapPlan(FieldPlan):
    def __init__(self, field: FieldDescriptor, key: Node, value: Node) -> None:
        self.key = key
        self.value = value
        self.get = attrgetter(field.name)
        self.fields = [pa.field(field.name, pa.map_(key.arrow_type, value.arrow_type))]

    def build(self, msgs: list[Any], rows: Rows, ctx: BuildContext) -> list[pa.Array]:
        containers = list(map(self.get, msgs))
        offsets, flat_rows = _flatten(containers, rows)
        items = list(chain.from_iterable(c.items() for c in containers))
        keys = self.key.build([k for k, _ in items], None, flat_rows, ctx)
        vals = self.value.build([v for _, v in items], None, flat_rows, ctx)
        return [pa.MapArray.from_arrays(offsets, keys, vals)]


class OneofPlan(FieldPlan):
    """Each member → its own column (null unless it is the set member) + ``<oneof>_case``.

    ``WhichOneof`` runs once per row; rows are then grouped by case so each member's values are read
    from only the rows that hold it and spread out with one ``take`` (the rest null).
    """

    def __init__(self, name: str, members: list[tuple[FieldDescriptor, Node]]) -> None:
        self.which = methodcaller("WhichOneof", name)
        self.member_fields = [f for f, _ in members]
        self.members = [(f.name, attrgetter(f.name), node) for f, node in members]
        self.codes: dict[str | None, int] = {None: 0}
        self.codes.update({f.name: k for k, (f, _) in enumerate(members, start=1)})
        self.fields = [pa.field(f.name, node.arrow_type) for f, node in members]
        self.fields.append(pa.field(f"{name}_case", pa.string()))

    def build(self, msgs: list[Any], rows: Rows, ctx: BuildContext) -> list[pa.Array]:
        n = len(msgs)
        cases = list(map(self.which, msgs))
        codes = np.fromiter(map(self.codes.__getitem__, cases), dtype=np.int16, count=n)
        order = np.argsort(codes, kind="stable")  # rows grouped by case, ascending within a case
        bounds = np.searchsorted(codes[order], np.arange(len(self.codes) + 1))
        arrays: list[pa.Array] = []
        for k, (_, get, node) in enumerate(self.members, start=1):
            where = order[bounds[k] : bounds[k + 1]]
            if not len(where):
                arrays.append(pa.nulls(n, type=node.arrow_type))
                continue
            subs = list(map(get, map(msgs.__getitem__, where.tolist())))
            if isinstance(node, MessageNode):
                arrays.append(node.build_sparse(subs, where, n, rows, ctx))
                continue
            sub_rows = where if rows is None else rows[where]
            compact = node.build(subs, None, sub_rows, ctx)
            arrays.append(compact if len(where) == n else _spread(compact, where, n))
        arrays.append(pa.array(cases, type=pa.string()))
        return arrays


# --------------------------------------------------------------------------------------- planning


class _Planner:
    def __init__(self, enums_as_numbers: bool) -> None:
        self.enums_as_numbers = enums_as_numbers

    def value_node(self, field: FieldDescriptor, stack: tuple[str, ...]) -> Node:
        if field.type == _FD.TYPE_ENUM:
            return EnumNode(field, self.enums_as_numbers)
        if field.type in (_FD.TYPE_MESSAGE, _FD.TYPE_GROUP):
            return self.message_node(field.message_type, stack)
        if field.type == _FD.TYPE_STRING:
            return StringNode()
        return ScalarNode(_SCALAR_TYPES[field.type])

    def message_node(self, desc: Descriptor, stack: tuple[str, ...]) -> Node:
        name = desc.full_name
        if name == "google.protobuf.Timestamp":
            return TimestampNode()
        if name == "google.protobuf.Duration":
            return DurationNode()
        if name in _WRAPPERS:
            inner = StringNode() if name == "google.protobuf.StringValue" else ScalarNode(_WRAPPERS[name])
            return WrapperNode(inner)
        if name in _JSON_TYPES or name in stack:
            return JsonNode()
        if not desc.fields:
            return PresenceNode()
        return MessageNode(desc, self.plans(desc, (*stack, name)), check_unknown=True)

    def plans(self, desc: Descriptor, stack: tuple[str, ...]) -> list[FieldPlan]:
        synthetic = _synthetic_oneofs(desc)
        plans: list[FieldPlan] = []
        oneofs_done: set[str] = set()
        for field in desc.fields:
            oneof = field.containing_oneof
            if oneof is not None and oneof.name not in synthetic:
                if oneof.name in oneofs_done:
                    continue
                oneofs_done.add(oneof.name)
                members = [(f, self.value_node(f, stack)) for f in oneof.fields]
                plans.append(OneofPlan(oneof.name, members))
            elif _is_map(field):
                entry = field.message_type
                key = self.value_node(entry.fields_by_name["key"], stack)
                value = self.value_node(entry.fields_by_name["value"], stack)
                plans.append(MapPlan(field, key, value))
            elif field.is_repeated:
                plans.append(RepeatedPlan(field, self.value_node(field, stack)))
            else:
                plans.append(SingularPlan(field, self.value_node(field, stack)))
        names = [f.name for p in plans for f in p.fields]
        clash = sorted({n for n in names if names.count(n) > 1})
        if clash:
            raise DecodeSpecError(
                f"{desc.full_name}: column name(s) {', '.join(clash)} would be produced twice "
                "(a field is named like a oneof's '<name>_case' column)"
            )
        return plans


def _is_map(field: FieldDescriptor) -> bool:
    mt = field.message_type
    return bool(field.is_repeated and mt is not None and mt.GetOptions().map_entry)


def _synthetic_oneofs(desc: Descriptor) -> set[str]:
    """Names of the oneofs protoc synthesises for proto3 ``optional`` fields (not real oneofs)."""
    if not desc.oneofs:
        return set()
    proto = descriptor_pb2.DescriptorProto()
    desc.CopyToProto(proto)
    return {proto.oneof_decl[f.oneof_index].name for f in proto.field if f.proto3_optional}


def root_node(desc: Descriptor, *, enums_as_numbers: bool = False) -> MessageNode:
    """The builder for a top-level message: its fields are the batch's columns."""
    planner = _Planner(enums_as_numbers)
    return MessageNode(desc, planner.plans(desc, (desc.full_name,)), check_unknown=True)


def arrow_schema_for(desc: Descriptor, *, enums_as_numbers: bool = False) -> pa.Schema:
    """The Arrow schema the decoder produces for message ``desc``."""
    return pa.schema(root_node(desc, enums_as_numbers=enums_as_numbers).fields)


def delta_compatible(t: pa.DataType) -> pa.DataType:
    """``t`` with the types Delta Lake cannot store replaced losslessly: uint32 → int64,
    uint64 → decimal(20,0), duration → int64 microseconds (recursing into struct/list/map)."""
    if pa.types.is_uint8(t):
        return pa.int16()
    if pa.types.is_uint16(t):
        return pa.int32()
    if pa.types.is_uint32(t):
        return pa.int64()
    if pa.types.is_uint64(t):
        return pa.decimal128(20, 0)
    if pa.types.is_duration(t):
        return pa.int64()
    if isinstance(t, pa.StructType):
        return pa.struct(
            [t.field(i).with_type(delta_compatible(t.field(i).type)) for i in range(t.num_fields)]
        )
    if isinstance(t, pa.MapType):
        return pa.map_(delta_compatible(t.key_type), delta_compatible(t.item_type))
    if isinstance(t, pa.ListType):
        return pa.list_(t.value_field.with_type(delta_compatible(t.value_type)))
    return t


def has_required_fields(desc: Descriptor) -> bool:
    """True if ``desc`` or any message it contains has proto2 ``required`` fields."""
    seen: set[str] = set()

    def walk(d: Descriptor) -> bool:
        if d.full_name in seen:
            return False
        seen.add(d.full_name)
        for f in d.fields:
            if f.is_required:
                return True
            if f.message_type is not None and walk(f.message_type):
                return True
        return False

    return walk(desc)

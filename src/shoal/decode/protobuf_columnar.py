"""Protobuf wire bytes → Arrow columns directly, without a Python message object per record.

upb parses quickly, but reading every field back through the Python message API costs ~25 ns per
field per record, and that (not parsing) dominated decoding. This path tokenises all records of a
batch at once with numpy — one step per field position: every record's next tag, then its value — and
builds each column from the token arrays (strings are cut out of the batch buffer by Arrow's ``take``).

It is strictly conservative: a record is accepted only if it is decoded here exactly as upb parsing
plus :mod:`shoal.decode.arrow_mapping` would decode it. Anything else — an unknown or repeated singular
field, a wire type that does not match, malformed or truncated bytes, invalid UTF-8, an out-of-range
timestamp, several oneof members, a closed-enum value the schema does not list — flags the record, and
the caller decodes flagged records with the message path, so values, failure classes and unknown-field
counts stay exactly those of that path. Every record's values depend on its own bytes only, so flagged
records are simply filtered out of the columns. Schemas with shapes handled only there (maps,
JSON-mapped types, groups, proto2 required fields, field numbers above 2047) are not planned here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from google.protobuf.descriptor import FieldDescriptor
from numpy.lib.stride_tricks import as_strided

from shoal.decode.arrow_mapping import (
    DurationNode,
    EnumNode,
    FieldPlan,
    MessageNode,
    Node,
    OneofPlan,
    PresenceNode,
    RepeatedPlan,
    ScalarNode,
    SingularPlan,
    StringNode,
    TimestampNode,
    WrapperNode,
    _spread,
)

logger = logging.getLogger(__name__)
_FD = FieldDescriptor
_U64 = np.uint64
_PAD = 16  # zero bytes after the batch buffer: varint reads may look up to 10 bytes past a position

# wire types
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5

_VARINT_TYPES = {
    _FD.TYPE_INT32,
    _FD.TYPE_INT64,
    _FD.TYPE_UINT32,
    _FD.TYPE_UINT64,
    _FD.TYPE_SINT32,
    _FD.TYPE_SINT64,
    _FD.TYPE_BOOL,
    _FD.TYPE_ENUM,
}
_FIXED: dict[int, tuple[int, str]] = {  # type → (wire type, little-endian numpy dtype)
    _FD.TYPE_FIXED32: (_I32, "<u4"),
    _FD.TYPE_SFIXED32: (_I32, "<i4"),
    _FD.TYPE_FLOAT: (_I32, "<f4"),
    _FD.TYPE_FIXED64: (_I64, "<u8"),
    _FD.TYPE_SFIXED64: (_I64, "<i8"),
    _FD.TYPE_DOUBLE: (_I64, "<f8"),
}
_MAX_DEPTH = 64  # upb's recursion limit is 100; schemas deeper than this stay on the message path


class Unsupported(Exception):
    """The schema has a shape this path does not decode (the message path is used instead)."""


class _Batch:
    """The batch buffer and the per-record verdict shared by every column builder."""

    __slots__ = ("bad", "buf", "data", "w16", "w64")

    def __init__(self, payloads: list[bytes]) -> None:
        joined = b"".join(payloads) + bytes(_PAD)
        self.buf = pa.py_buffer(joined)
        self.data = np.frombuffer(joined, dtype=np.uint8)
        # w16[p] / w64[p]: the 2 / 8 bytes at p as one little-endian integer (one gather per read)
        n = len(self.data)
        self.w16 = as_strided(self.data, shape=(n - 1, 2), strides=(1, 1)).view("<u2")[:, 0]
        self.w64 = as_strided(self.data, shape=(n - 7, 8), strides=(1, 1)).view("<u8")[:, 0]
        self.bad = np.zeros(len(payloads), dtype=bool)

    def flag(self, rows: np.ndarray) -> None:
        self.bad[rows] = True


# --------------------------------------------------------------------------------------- tokenising

_HI = _U64(0x8080808080808080)
_LO7 = _U64(0x7F7F7F7F7F7F7F7F)
# (keep, shift, mask of the shifted part): squeeze the 7-bit groups of 8 bytes together, pairwise
_SQUEEZE = [
    (_U64(0x007F007F007F007F), _U64(1), _U64(0x3F803F803F803F80)),
    (_U64(0x00003FFF00003FFF), _U64(2), _U64(0x0FFFC0000FFFC000)),
    (_U64(0x000000000FFFFFFF), _U64(4), _U64(0x00FFFFFFF0000000)),
]


def _varint(batch: _Batch, p: np.ndarray, max_len: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Varints starting at positions ``p``: (values as uint64, lengths; 0 where malformed)."""
    b = batch.data[p]
    val = b.astype(_U64)
    length = np.ones(len(p), dtype=np.int64)
    multi = np.flatnonzero(b >= 0x80)
    if not multi.size:
        return val, length
    w = batch.w64[p[multi]]
    stop = ~w & _HI  # high bits of the bytes that end a varint
    low = stop & (~stop + _U64(1))  # the first of them (0: none in these 8 bytes)
    keep = (low << _U64(1)) - _U64(1)  # bits of the bytes up to and including it
    x = w & keep & _LO7
    for lo, shift, hi in _SQUEEZE:
        x = (x & lo) | ((x >> shift) & hi)
    val[multi] = x
    lens = (np.bitwise_count(keep) >> 3).astype(np.int64)
    long = np.flatnonzero(low == 0)
    if long.size:  # 9 or 10 bytes (negative int64s): the last one or two bytes
        lp = p[multi[long]]
        b8 = batch.data[lp + 8].astype(_U64)
        b9 = batch.data[lp + 9].astype(_U64)
        ten = (b8 & _U64(0x80)) != 0
        x = x[long] | ((b8 & _U64(0x7F)) << _U64(56)) | np.where(ten, b9 << _U64(63), _U64(0))
        val[multi[long]] = x
        # a 10th byte above 1 (bits beyond 64) or continuing: leave such oddities to upb
        lens[long] = np.where(ten, np.where(b9 > 1, 0, 10), 9)
    lens[lens > max_len] = 0
    length[multi] = lens
    return val, length


@dataclass(slots=True)
class _Tokens:
    """One field's occurrences in a set of message instances, in scan order: the instance, the varint
    value (VARINT) or byte offset of the value (other wire types), and the length (LEN)."""

    inst: np.ndarray
    val: np.ndarray
    ln: np.ndarray


_EMPTY_TOKENS = _Tokens(np.zeros(0, np.int64), np.zeros(0, _U64), np.zeros(0, np.int64))


class _Layout:
    """A message type's field numbers as a lookup table over the first two bytes of a tag: the slot
    of the field (``nslots`` when the number is unknown, the wire type is not one the slot accepts or
    the tag is longer than two bytes), the wire type and the tag's length."""

    __slots__ = ("nslots", "tag_len", "tag_slot", "wire")

    def __init__(self, slot_of: dict[int, int], accepts: list[int]) -> None:
        self.nslots = len(accepts)
        if max(slot_of, default=0) >= 2048:
            raise Unsupported("field numbers above 2047 (tags longer than two bytes)")
        self.wire = accepts
        u = np.arange(65_536, dtype=np.int64)
        b0, b1 = u & 0xFF, u >> 8
        one = b0 < 0x80
        tag = np.where(one, b0, (b0 & 0x7F) | (b1 << 7))
        self.tag_len = np.where(one, 1, 2).astype(np.int64)
        number, wt = tag >> 3, tag & 7
        self.tag_slot = np.full(65_536, self.nslots, dtype=np.int16)
        for fn, s in slot_of.items():
            self.tag_slot[(number == fn) & (wt == accepts[s]) & (one | (b1 < 0x80))] = s


def _scan(
    batch: _Batch, start: np.ndarray, end: np.ndarray, rows: np.ndarray, layout: _Layout
) -> list[_Tokens]:
    """Tokenise message instances ``[start[i], end[i])`` (top-level record ``rows[i]``). A field
    number goes to its slot if its wire type is one the slot accepts; any other token flags the
    record. Returns the tokens of each slot."""
    nslots, tag_slot, tag_len, wires = layout.nslots, layout.tag_slot, layout.tag_len, layout.wire
    bounds_of = np.arange(nslots + 1)
    chunks: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in range(nslots)]
    live = np.flatnonzero(start < end)  # instances still being read, their position and end
    p_live = start[live].astype(np.int64)
    e_live = end[live]
    while live.size:
        u = batch.w16[p_live]
        slot = tag_slot[u]
        p = p_live + tag_len[u]
        good = slot < nslots
        nxt = p.copy()
        sel = np.flatnonzero(good)
        s_sel = slot[sel]
        order = np.argsort(s_sel, kind="stable")
        bounds = np.searchsorted(s_sel[order], bounds_of).tolist()
        for s in range(nslots):
            if bounds[s] == bounds[s + 1]:
                continue
            i = sel[order[bounds[s] : bounds[s + 1]]]
            at = p[i]
            wire = wires[s]
            if wire == _VARINT:
                val, vlen = _varint(batch, at)
                ln = vlen  # unused for varints; any array of the right length will do
                ok = vlen > 0
                nxt[i] = after = at + vlen
            elif wire == _LEN:
                size, vlen = _varint(batch, at, max_len=5)
                ok = (vlen > 0) & (size < _U64(2**31 - 1))
                body = at + vlen
                ln = np.where(ok, size, 0).astype(np.int64)
                val = body.astype(_U64)
                nxt[i] = after = body + ln
            else:
                val = at.astype(_U64)
                ln = at
                nxt[i] = after = at + (4 if wire == _I32 else 8)
                ok = np.ones(len(i), dtype=bool)
            ok &= after <= e_live[i]
            if not ok.all():
                good[i[~ok]] = False
                i, val, ln = i[ok], val[ok], ln[ok]
            chunks[s].append((live[i], val, ln))
        if not good.all():
            batch.flag(rows[live[~good]])
        more = np.flatnonzero(good & (nxt < e_live))
        live, p_live, e_live = live[more], nxt[more], e_live[more]
    out: list[_Tokens] = []
    for parts in chunks:
        if not parts:
            out.append(_EMPTY_TOKENS)
        elif len(parts) == 1:
            out.append(_Tokens(*parts[0]))
        else:
            out.append(_Tokens(*(np.concatenate(c) for c in zip(*parts, strict=True))))
    return out


@dataclass(slots=True)
class _Elements:
    """Values of one field, one per element, in instance order: varint value or byte offset, length,
    and the top-level record of each."""

    val: np.ndarray
    ln: np.ndarray
    rows: np.ndarray


# --------------------------------------------------------------------------------------- values


def _binary(batch: _Batch, off: np.ndarray, ln: np.ndarray) -> pa.Array:
    """large_binary array of the byte ranges ``[off, off + ln)`` (ascending, non-overlapping).

    A zero-copy array over the batch buffer alternates wanted ranges with the gaps between them;
    ``take`` of every other element then copies out just the wanted bytes, in C."""
    c = len(off)
    if c == 0:
        return pa.array([], type=pa.large_binary())
    bounds = np.empty(2 * c + 1, dtype=np.int64)
    bounds[0 : 2 * c : 2] = off
    bounds[1 : 2 * c : 2] = off + ln
    bounds[2 * c] = bounds[2 * c - 1]
    if (np.diff(bounds) < 0).any() or bounds[-1] > len(batch.data) - _PAD:
        raise AssertionError("byte ranges out of order")  # cannot happen for scanned tokens
    wide = pa.Array.from_buffers(pa.large_binary(), 2 * c, [None, pa.py_buffer(bounds), batch.buf])
    return wide.take(pa.array(np.arange(0, 2 * c, 2, dtype=np.int64)))


def _strings(batch: _Batch, off: np.ndarray, ln: np.ndarray, rows: np.ndarray, t: pa.DataType) -> pa.Array:
    """A string or binary column of the byte ranges (``rows``: each one's record, to flag)."""
    raw = _binary(batch, off, ln)
    if t == pa.binary():
        return raw.cast(t)
    try:  # validates UTF-8
        return raw.cast(t)
    except pa.ArrowInvalid:  # invalid UTF-8: the message path classifies those records
        bad = [i for i, v in enumerate(raw.to_pylist()) if not _utf8(v)]
        if not bad:
            raise  # not a UTF-8 problem (e.g. over 2 GiB of text): let the message path do the batch
        batch.flag(rows[bad])
        dropped = set(bad)  # null just those: the other records' values stay usable
        return pa.array([None if i in dropped else v.decode() for i, v in enumerate(raw.to_pylist())], type=t)


def _utf8(v: bytes) -> bool:
    try:
        v.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _int_from_varint(ftype: int, v: np.ndarray) -> np.ndarray:
    if ftype in (_FD.TYPE_INT32, _FD.TYPE_ENUM):
        return v.astype(np.uint32).view(np.int32)
    if ftype == _FD.TYPE_INT64:
        return v.view(np.int64)
    if ftype == _FD.TYPE_UINT32:
        return v.astype(np.uint32)
    if ftype == _FD.TYPE_UINT64:
        return v
    if ftype == _FD.TYPE_SINT32:
        u = v.astype(np.uint32)
        return (u >> np.uint32(1)).view(np.int32) ^ -(u & np.uint32(1)).view(np.int32)
    if ftype == _FD.TYPE_SINT64:
        return (v >> _U64(1)).view(np.int64) ^ -(v & _U64(1)).view(np.int64)
    if ftype == _FD.TYPE_BOOL:
        flags: np.ndarray = v != 0
        return flags
    raise AssertionError(ftype)


class _Leaf:
    """Values of a non-message field (scalar, enum, string, bytes)."""

    def __init__(self, field: FieldDescriptor, node: Node) -> None:
        self.type = field.type
        self.arrow_type = node.arrow_type
        self.closed_values: np.ndarray | None = None
        self.names: dict[int, Any] | None = None
        if (
            not field.has_presence
            and not field.is_repeated
            and field.default_value not in (0, False, "", b"")
        ):
            raise Unsupported(f"{field.full_name}: implicit presence with a non-zero default")
        if field.type == _FD.TYPE_ENUM:
            assert isinstance(node, EnumNode)
            if field.enum_type.is_closed and not field.has_presence and not field.is_repeated:
                raise Unsupported(f"{field.full_name}: closed enum without presence")
            if field.enum_type.is_closed:
                self.closed_values = np.array(sorted(v.number for v in field.enum_type.values))
            if not node.as_number:
                self.names = {v.number: v.name for v in field.enum_type.values}
        if field.type in _VARINT_TYPES:
            self.wire = _VARINT
        elif field.type in _FIXED:
            self.wire = _FIXED[field.type][0]
        elif field.type in (_FD.TYPE_STRING, _FD.TYPE_BYTES):
            self.wire = _LEN
        else:
            raise Unsupported(f"field type {field.type}")

    def numbers(self, batch: _Batch, val: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Numpy values of varint / fixed fields (``val``: varints, or byte offsets of fixed values)."""
        if self.type in _FIXED:
            wire, dtype = _FIXED[self.type]
            width = 4 if wire == _I32 else 8
            idx = val.astype(np.int64)[:, None] + np.arange(width)
            return np.ascontiguousarray(batch.data[idx]).view(dtype).reshape(len(val))
        out = _int_from_varint(self.type, val)
        if self.closed_values is not None:
            unknown = ~np.isin(out, self.closed_values)
            if unknown.any():  # upb keeps such values as unknown fields
                batch.flag(rows[unknown])
        return out

    def to_arrow(self, batch: _Batch, vals: np.ndarray, ln: np.ndarray, rows: np.ndarray) -> pa.Array:
        if self.type in (_FD.TYPE_STRING, _FD.TYPE_BYTES):
            return _strings(batch, vals.astype(np.int64), ln, rows, self.arrow_type)
        return self.from_numbers(self.numbers(batch, vals, rows))

    def from_numbers(self, nums: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
        if self.names is None:
            return pa.array(nums, type=self.arrow_type, mask=mask)
        return _enum_names(self.names, nums, mask)


def _enum_names(names: dict[int, Any], nums: np.ndarray, mask: np.ndarray | None) -> pa.Array:
    """Names of enum numbers (numbers the schema does not name → their decimal text)."""
    if len(nums) == 0:
        return pa.array([], type=pa.string())
    lo, hi = int(nums.min()), int(nums.max())
    if hi - lo < 65_536:
        table = pa.array([names.get(k, str(k)) for k in range(lo, hi + 1)], type=pa.string())
        idx = (nums.astype(np.int64) - lo).astype(np.int32)
    else:
        uniq, inv = np.unique(nums, return_inverse=True)
        table = pa.array([names.get(int(k), str(int(k))) for k in uniq], type=pa.string())
        idx = inv.astype(np.int32)
    return table.take(pa.array(idx, mask=mask))


# --------------------------------------------------------------------------------------- messages


class _Message:
    """The columns of one message type from a set of its instances (byte ranges)."""

    def __init__(self, node: MessageNode, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise Unsupported("nesting too deep")
        self.fields = node.fields
        self.slot_of: dict[int, int] = {}
        self.accepts: list[int] = []
        self.plans: list[_Plan] = [self._plan(p, depth) for p in node.plans]
        self.layout = _Layout(self.slot_of, self.accepts)

    def _slot(self, field: FieldDescriptor, wire: int) -> int:
        self.slot_of[field.number] = len(self.accepts)
        self.accepts.append(wire)
        return self.slot_of[field.number]

    def _plan(self, plan: FieldPlan, depth: int) -> _Plan:
        if isinstance(plan, SingularPlan):
            value = _value(plan.field, plan.node, depth)
            return _SingularCol(plan.field, value, self._slot(plan.field, value.wire))
        if isinstance(plan, RepeatedPlan):
            value = _value(plan.field, plan.node, depth)
            wire = value.wire
            if plan.field.type in _VARINT_TYPES or plan.field.type in _FIXED:
                # accept only the encoding the schema asks for; the other one goes to upb
                wire = _LEN if plan.field.is_packed else value.wire
            return _RepeatedCol(plan.field, value, self._slot(plan.field, wire))
        if isinstance(plan, OneofPlan):
            members = []
            for f, (_, _, node) in zip(plan.member_fields, plan.members, strict=True):
                value = _value(f, node, depth)
                members.append((value, self._slot(f, value.wire)))
            return _OneofCol(members, [f.name for f in plan.member_fields])
        raise Unsupported(type(plan).__name__)

    def columns(self, batch: _Batch, start: np.ndarray, end: np.ndarray, rows: np.ndarray) -> list[pa.Array]:
        tokens = _scan(batch, start, end, rows, self.layout)
        arrays: list[pa.Array] = []
        for plan in self.plans:
            arrays.extend(plan.build(batch, tokens, start, rows))
        return arrays

    def struct(self, batch: _Batch, el: _Elements) -> pa.Array:
        off = el.val.astype(np.int64)
        return pa.StructArray.from_arrays(self.columns(batch, off, off + el.ln, el.rows), fields=self.fields)


class _Value:
    """Builds a compact (null-free) Arrow array from one field's elements."""

    wire: int
    arrow_type: pa.DataType

    def build(self, batch: _Batch, el: _Elements) -> pa.Array:
        raise NotImplementedError


class _LeafValue(_Value):
    def __init__(self, leaf: _Leaf) -> None:
        self.leaf = leaf
        self.wire = leaf.wire
        self.arrow_type = leaf.arrow_type

    def build(self, batch: _Batch, el: _Elements) -> pa.Array:
        return self.leaf.to_arrow(batch, el.val, el.ln, el.rows)


class _StructValue(_Value):
    wire = _LEN

    def __init__(self, node: MessageNode, depth: int) -> None:
        self.msg = _Message(node, depth + 1)
        self.arrow_type = node.arrow_type

    def build(self, batch: _Batch, el: _Elements) -> pa.Array:
        return self.msg.struct(batch, el)


class _InnerFields(_Value):
    """Well-known messages read field by field (Timestamp, Duration, wrappers, Empty)."""

    wire = _LEN

    def __init__(self, node: Node, leaves: list[_Leaf]) -> None:
        self.node = node
        self.arrow_type = node.arrow_type
        self.leaves = leaves
        self.layout = _Layout({k + 1: k for k in range(len(leaves))}, [leaf.wire for leaf in leaves])

    def build(self, batch: _Batch, el: _Elements) -> pa.Array:
        off = el.val.astype(np.int64)
        tokens = _scan(batch, off, off + el.ln, el.rows, self.layout)
        n = len(off)
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        for leaf, tok in zip(self.leaves, tokens, strict=True):
            _flag_repeats(batch, tok.inst, n, el.rows)
            val = np.zeros(n, dtype=_U64)  # proto3 implicit presence: absent = 0 / ""
            ln = np.zeros(n, dtype=np.int64)
            if leaf.type in (_FD.TYPE_STRING, _FD.TYPE_BYTES):
                val = off.astype(_U64)  # empty range at the instance start keeps offsets ascending
            val[tok.inst] = tok.val
            ln[tok.inst] = tok.ln
            parts.append((val, ln))
        node = self.node
        if isinstance(node, PresenceNode):
            return pa.array(np.ones(n, dtype=bool), type=pa.bool_())
        if isinstance(node, WrapperNode):
            (val, ln), leaf = parts[0], self.leaves[0]
            if leaf.type in _FIXED:  # absent value is 0, not the bytes at the instance start
                tok = tokens[0]
                got = leaf.numbers(batch, tok.val, el.rows[tok.inst])
                nums = np.zeros(n, dtype=got.dtype)
                nums[tok.inst] = got
                return leaf.from_numbers(nums)
            return leaf.to_arrow(batch, val, ln, el.rows)
        assert isinstance(node, TimestampNode | DurationNode)
        secs = _int_from_varint(_FD.TYPE_INT64, parts[0][0])
        nanos = _int_from_varint(_FD.TYPE_INT32, parts[1][0]).astype(np.int64)
        bad = (np.abs(secs) > node._limit) | (nanos < node._min_nanos) | (nanos > 999_999_999)
        if bad.any():  # the message path reports these
            batch.flag(el.rows[bad])
            secs = np.where(bad, 0, secs)
            nanos = np.where(bad, 0, nanos)
        micros = secs * 1_000_000 + np.sign(nanos) * (np.abs(nanos) // 1000)
        return pa.array(micros, type=node.arrow_type)


def _value(field: FieldDescriptor, node: Node, depth: int) -> _Value:
    if field.type == _FD.TYPE_GROUP:  # start/end-group wire types: not tokenised here
        raise Unsupported(field.full_name)
    if isinstance(node, MessageNode):
        return _StructValue(node, depth)
    if isinstance(node, TimestampNode | DurationNode):
        desc = field.message_type
        leaves = [_Leaf(desc.fields_by_number[k], ScalarNode(pa.int64())) for k in (1, 2)]
        return _InnerFields(node, leaves)
    if isinstance(node, WrapperNode):
        inner = field.message_type.fields_by_number[1]
        return _InnerFields(node, [_Leaf(inner, node.inner)])
    if isinstance(node, PresenceNode):
        return _InnerFields(node, [])
    if isinstance(node, ScalarNode | StringNode | EnumNode):
        if field.type in (_FD.TYPE_MESSAGE, _FD.TYPE_GROUP):
            raise Unsupported(field.full_name)
        return _LeafValue(_Leaf(field, node))
    raise Unsupported(type(node).__name__)  # JSON-mapped types


def _flag_repeats(batch: _Batch, inst: np.ndarray, n: int, rows: np.ndarray) -> None:
    """A singular field seen twice in one instance (upb: last wins, messages merge): upb decides."""
    if len(inst) > 1:
        counts = np.bincount(inst, minlength=n)
        if counts.max() > 1:
            batch.flag(rows[counts > 1])


# --------------------------------------------------------------------------------------- field plans


class _Plan:
    def build(
        self, batch: _Batch, tokens: list[_Tokens], start: np.ndarray, rows: np.ndarray
    ) -> list[pa.Array]:
        raise NotImplementedError


class _SingularCol(_Plan):
    """Mirrors arrow_mapping.SingularPlan."""

    def __init__(self, field: FieldDescriptor, value: _Value, slot: int) -> None:
        self.value = value
        self.slot = slot
        self.presence = field.has_presence

    def build(
        self, batch: _Batch, tokens: list[_Tokens], start: np.ndarray, rows: np.ndarray
    ) -> list[pa.Array]:
        tok = tokens[self.slot]
        n = len(start)
        _flag_repeats(batch, tok.inst, n, rows)
        value = self.value
        if not isinstance(value, _LeafValue):  # messages: null when absent
            present = np.zeros(n, dtype=bool)
            present[tok.inst] = True
            where = np.flatnonzero(present)
            val = np.zeros(n, dtype=_U64)
            ln = np.zeros(n, dtype=np.int64)
            val[tok.inst] = tok.val
            ln[tok.inst] = tok.ln
            el = _Elements(val[where], ln[where], rows[where])
            if isinstance(value, _StructValue):
                if not len(where):
                    return [pa.nulls(n, type=value.arrow_type)]
                compact = value.build(batch, el)
                return [compact if len(where) == n else _spread(compact, where, n)]
            # Timestamp & co: like the message path, built over all rows with a null mask
            full = np.zeros(n, dtype=np.int64)
            full[where] = np.arange(len(where))
            compact = value.build(batch, el)
            if len(where) == n:
                return [compact]
            if not len(where):
                return [pa.nulls(n, type=value.arrow_type)]
            return [compact.take(pa.array(full, mask=~present))]
        leaf = value.leaf
        if leaf.type in (_FD.TYPE_STRING, _FD.TYPE_BYTES):
            off = start.astype(np.int64)  # absent: empty range at the instance start
            ln = np.zeros(n, dtype=np.int64)
            off[tok.inst] = tok.val.astype(np.int64)
            ln[tok.inst] = tok.ln
            arr = _strings(batch, off, ln, rows, leaf.arrow_type)
            if self.presence:
                valid = np.zeros(n, dtype=bool)
                valid[tok.inst] = True  # (a flagged record may hold the field twice)
                if not valid.all():
                    arr = _with_validity(arr, valid)
            return [arr]
        got = leaf.numbers(batch, tok.val, rows[tok.inst])
        nums = np.zeros(n, dtype=got.dtype)  # absent: the type's zero (proto3 default)
        nums[tok.inst] = got
        mask = None
        if self.presence:
            mask = np.ones(n, dtype=bool)
            mask[tok.inst] = False
            if not mask.any():
                mask = None
        return [leaf.from_numbers(nums, mask)]


def _with_validity(arr: pa.Array, valid: np.ndarray) -> pa.Array:
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    buffers = arr.buffers()
    return pa.Array.from_buffers(arr.type, len(arr), [bitmap, *buffers[1:]], offset=arr.offset)


class _OneofCol(_Plan):
    """Mirrors arrow_mapping.OneofPlan: each member over the rows holding it, spread; then the case."""

    def __init__(self, members: list[tuple[_Value, int]], names: list[str]) -> None:
        self.members = members
        self.case_names = pa.array([None, *names], type=pa.string())

    def build(
        self, batch: _Batch, tokens: list[_Tokens], start: np.ndarray, rows: np.ndarray
    ) -> list[pa.Array]:
        n = len(start)
        code = np.zeros(n, dtype=np.int16)
        seen = np.zeros(n, dtype=np.int16)
        for k, (_, slot) in enumerate(self.members, start=1):
            inst = tokens[slot].inst
            code[inst] = k
            seen[inst] += 1  # a member repeated within a row counts once here but is flagged below
            _flag_repeats(batch, inst, n, rows)
        many = seen > 1
        if many.any():  # several members set: upb keeps the last; leave it to the message path
            batch.flag(rows[many])
        arrays: list[pa.Array] = []
        for k, (value, slot) in enumerate(self.members, start=1):
            tok = tokens[slot]
            where = np.flatnonzero(code == k)
            if not len(where):
                arrays.append(pa.nulls(n, type=value.arrow_type))
                continue
            val = np.zeros(n, dtype=_U64)
            ln = np.zeros(n, dtype=np.int64)
            val[tok.inst] = tok.val
            ln[tok.inst] = tok.ln
            el = _Elements(val[where], ln[where], rows[where])
            compact = value.build(batch, el)
            arrays.append(compact if len(where) == n else _spread(compact, where, n))
        arrays.append(self.case_column(code))
        return arrays

    def case_column(self, code: np.ndarray) -> pa.Array:
        return self.case_names.take(pa.array(code.astype(np.int32)))


class _RepeatedCol(_Plan):
    """Mirrors arrow_mapping.RepeatedPlan (list offsets + flattened values)."""

    def __init__(self, field: FieldDescriptor, value: _Value, slot: int) -> None:
        self.value = value
        self.slot = slot
        self.packed = field.is_packed and (field.type in _VARINT_TYPES or field.type in _FIXED)

    def build(
        self, batch: _Batch, tokens: list[_Tokens], start: np.ndarray, rows: np.ndarray
    ) -> list[pa.Array]:
        tok = tokens[self.slot]
        n = len(start)
        order = np.argsort(tok.inst, kind="stable")  # by instance, occurrences in wire order
        inst = tok.inst[order]
        val, ln = tok.val[order], tok.ln[order]
        if self.packed:
            inst, val, ln = self._unpack(batch, inst, val, ln, rows)
        counts = np.bincount(inst, minlength=n)
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(counts, out=offsets[1:])
        values = self.value.build(batch, _Elements(val, ln, rows[inst]))
        return [pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), values)]

    def _unpack(
        self, batch: _Batch, inst: np.ndarray, off: np.ndarray, ln: np.ndarray, rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Elements of packed runs: (instance, varint value or byte offset, zero lengths)."""
        assert isinstance(self.value, _LeafValue)
        leaf = self.value.leaf
        total = int(ln.sum())
        first = np.zeros(len(ln) + 1, dtype=np.int64)
        np.cumsum(ln, out=first[1:])
        byte_pos = np.repeat(off.astype(np.int64) - first[:-1], ln) + np.arange(total)
        byte_run = np.repeat(np.arange(len(ln)), ln)
        if leaf.type in _FIXED:
            width = 4 if _FIXED[leaf.type][0] == _I32 else 8
            odd = ln % width != 0
            if odd.any():
                batch.flag(rows[inst[odd]])
            aligned = (byte_pos - np.repeat(off.astype(np.int64), ln)) % width == 0
            starts = byte_pos[aligned]
            return inst[byte_run[aligned]], starts.astype(_U64), np.zeros(len(starts), dtype=np.int64)
        if total == 0:
            return inst[:0], np.zeros(0, dtype=_U64), np.zeros(0, dtype=np.int64)
        b = batch.data[byte_pos]
        last = b < 0x80  # each varint ends at a byte without the continuation bit
        run_end = first[1:] - 1
        unterminated = (ln > 0) & ~last[np.maximum(run_end, 0)]
        if unterminated.any():
            batch.flag(rows[inst[unterminated]])
            last[run_end[unterminated]] = True  # so the next run's first varint starts on its own
        ends = np.flatnonzero(last)
        starts = np.concatenate(([0], ends[:-1] + 1)) if len(ends) else ends
        vid: np.ndarray = np.cumsum(last) - last  # varint index of each byte
        k = np.arange(total) - starts[np.minimum(vid, max(len(starts) - 1, 0))] if len(starts) else vid
        too_long = (k >= 10) | ((k == 9) & (b > 1))
        if too_long.any():
            batch.flag(rows[inst[byte_run[too_long]]])
            k = np.minimum(k, 9)
        vals = np.zeros(len(ends), dtype=_U64)
        if len(ends):
            parts = (b & 0x7F).astype(_U64) << (7 * k).astype(_U64)
            vals = np.bitwise_or.reduceat(parts[: ends[-1] + 1], starts)
        return inst[byte_run[ends]], vals, np.zeros(len(ends), dtype=np.int64)


# --------------------------------------------------------------------------------------- entry point


class WireColumns:
    """Columns of the root message straight from wire bytes (see the module docstring)."""

    def __init__(self, root: MessageNode) -> None:
        self.root = _Message(root, 0)

    def columns(self, payloads: list[bytes]) -> tuple[list[pa.Array] | None, np.ndarray]:
        """The root's columns for ``payloads`` and the mask of records left to upb (their rows in the
        columns hold placeholders; every other row is final). None if the batch failed here whole."""
        batch = _Batch(payloads)
        lens = np.fromiter(map(len, payloads), dtype=np.int64, count=len(payloads))
        end = np.cumsum(lens)
        start = end - lens
        rows = np.arange(len(payloads))
        try:
            arrays = self.root.columns(batch, start, end, rows)
        except Exception:  # a bug here must not lose records: the message path is the reference
            logger.exception("wire-bytes decode failed; decoding the batch through upb instead")
            batch.bad[:] = True
            return None, batch.bad
        return arrays, batch.bad


def plan_wire_columns(root: MessageNode) -> WireColumns | None:
    """A :class:`WireColumns` for ``root``, or None if its schema has shapes only upb handles."""
    try:
        return WireColumns(root)
    except Unsupported:
        return None

"""Confluent Schema Registry wire format.

V0 framing: magic byte 0, 4-byte big-endian schema id; V1: magic byte 1, 16-byte schema GUID. For
protobuf the header continues with the message-index array: a zigzag varint count followed by that many
zigzag varints, where the common ``[0]`` (first message in the file) is the single byte 0.

Neither a protobuf message (field number 0 is illegal, so a first byte < 8 is never a valid tag) nor a
JSON document can start with byte 0 or 1, which makes ``auto`` detection unambiguous.
"""

from __future__ import annotations

from typing import Literal

FramingMode = Literal["auto", "always", "never"]

_MAX_INDEXES = 100_000


class FramingError(ValueError):
    """The value announces Confluent framing but the header is malformed (or framing is missing)."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise FramingError("Confluent header truncated inside the message-index array")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
        if shift > 63:
            raise FramingError("Confluent message-index varint is too long")


def header_length(value: bytes, *, protobuf: bool) -> int:
    """Length of the Confluent header at the start of ``value`` (which must start with magic 0 or 1)."""
    magic = value[0]
    pos = 5 if magic == 0 else 17
    if len(value) < pos:
        raise FramingError(f"Confluent header truncated: {len(value)} bytes, need {pos}")
    if not protobuf:
        return pos
    count, pos = _varint(value, pos)
    if count < 0 or count > _MAX_INDEXES:
        raise FramingError(f"Confluent message-index array has invalid length {count}")
    for _ in range(count):
        _, pos = _varint(value, pos)
    return pos


def strip(value: bytes, mode: FramingMode, *, protobuf: bool) -> bytes:
    """The payload of ``value`` with any Confluent framing removed according to ``mode``."""
    if mode == "never":
        return value
    framed = bool(value) and value[0] <= 1
    if not framed:
        if mode == "always":
            raise FramingError("value lacks the Confluent wire-format header (magic byte 0 or 1)")
        return value
    if protobuf and len(value) >= 6 and value[0] == 0 and value[5] == 0:
        return value[6:]  # the overwhelmingly common case: schema id + message index [0]
    return value[header_length(value, protobuf=protobuf) :]


def frame(payload: bytes, schema_id: int, message_indexes: tuple[int, ...] | None = (0,)) -> bytes:
    """Prefix ``payload`` with a V0 Confluent header (``message_indexes=None`` for non-protobuf)."""

    def zz(n: int) -> bytes:
        n = (n << 1) ^ (n >> 63)
        out = bytearray()
        while n > 0x7F:
            out.append((n & 0x7F) | 0x80)
            n >>= 7
        out.append(n)
        return bytes(out)

    head = b"\x00" + schema_id.to_bytes(4, "big")
    if message_indexes is None:
        return head + payload
    if tuple(message_indexes) == (0,):
        return head + b"\x00" + payload
    return head + zz(len(message_indexes)) + b"".join(zz(i) for i in message_indexes) + payload

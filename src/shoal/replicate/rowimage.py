"""Row images of MySQL/MariaDB rows events, decoded by our own readers for the common column types.

python-mysql-replication keeps the protocol, the connection and the table maps; decoding the rows
is where its time goes (a method call, an attribute chain, a ``struct`` call and a bitmap test per
value, and a "why is it None" dict per row: ~30-60 µs a row). Here a table map's columns become a
list of readers once, and a row is one loop over them on the event's bytes.

Exactness is by construction and by test (``tests/integration/test_sync_rowimage.py`` compares
every type with the library on the real MariaDB's events): each reader returns what the library
returns for that column (the same Python type and value, the library's quirks included: a zero
date is None, a TIMESTAMP is a naive UTC datetime). A table with a column type that is not here
(TIME, YEAR, BIT, SET, JSON of MySQL, GEOMETRY, the pre-5.6 temporal formats), an event that is
not a full row image, or bytes these readers cannot account for exactly: the library decodes it.
"""

from __future__ import annotations

import codecs
import logging
import struct
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

log = logging.getLogger("shoal.replicate.mysql")

#: (the event's bytes, offset) -> (value, offset after it)
Reader = Callable[[bytes, int], tuple[Any, int]]

# binlog column types (pymysqlreplication.constants.FIELD_TYPE; MySQL's enum_field_types)
TINY, SHORT, LONG, FLOAT, DOUBLE, LONGLONG, INT24, DATE = 1, 2, 3, 4, 5, 8, 9, 10
VARCHAR, TIMESTAMP2, DATETIME2 = 15, 17, 18
NEWDECIMAL, ENUM, BLOB, STRING = 246, 247, 252, 254

# rows event types: (v1, v2) of write, update, delete; an update holds two images per row
WRITE_ROWS, UPDATE_ROWS, DELETE_ROWS = (23, 30), (24, 31), (25, 32)
_IMAGES = {**dict.fromkeys(WRITE_ROWS + DELETE_ROWS, 1), **dict.fromkeys(UPDATE_ROWS, 2)}

#: the OK byte and the event header before an event's body in the packet (the library reads them)
_HEADER = 20
_EPOCH = datetime(1970, 1, 1)
#: bytes of a decimal's leftover digits (MySQL's dig2bytes): 9 digits take 4 bytes
_DIG2BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)

_FIXED = {
    (TINY, False): "<b", (TINY, True): "<B",
    (SHORT, False): "<h", (SHORT, True): "<H",
    (LONG, False): "<i", (LONG, True): "<I",
    (LONGLONG, False): "<q", (LONGLONG, True): "<Q",
    (FLOAT, False): "<f", (FLOAT, True): "<f",
    (DOUBLE, False): "<d", (DOUBLE, True): "<d",
}  # fmt: skip


class Unsupported(Exception):
    """A column this module leaves to the library."""


def _fixed(fmt: str) -> Reader:
    s = struct.Struct(fmt)
    unpack, size = s.unpack_from, s.size

    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        return unpack(buf, pos)[0], pos + size

    return read


def _int24(signed: bool) -> Reader:
    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        return int.from_bytes(buf[pos : pos + 3], "little", signed=signed), pos + 3

    return read


def _encoding(charset: str | None) -> str | None:
    """The codec the library decodes a text column with; None: it keeps the bytes (binary)."""
    if charset is None:
        return "utf-8"  # the library's default when the table map names no charset
    from pymysqlreplication.row_event import RowsEvent

    name = RowsEvent.charset_to_encoding(charset)
    try:
        codecs.lookup(name)
    except LookupError:  # e.g. 'binary': the library returns the bytes
        return None
    return str(name)


def _string(length_bytes: int, encoding: str | None) -> Reader:
    """A value after its length (1-4 bytes, little-endian): text in ``encoding`` or bytes."""
    if encoding is None:

        def read_bytes(buf: bytes, pos: int) -> tuple[Any, int]:
            start = pos + length_bytes
            end = start + int.from_bytes(buf[pos:start], "little")
            # the library's decode of b"" never looks the codec up: an empty binary value is ""
            return (buf[start:end] if end != start else ""), end

        return read_bytes

    if length_bytes == 1:  # VARCHAR up to 255 bytes, TINYTEXT: the common case, one index

        def read_short_text(buf: bytes, pos: int) -> tuple[Any, int]:
            end = pos + 1 + buf[pos]
            return buf[pos + 1 : end].decode(encoding), end

        return read_short_text

    def read_text(buf: bytes, pos: int) -> tuple[Any, int]:
        start = pos + length_bytes
        end = start + int.from_bytes(buf[pos:start], "little")
        return buf[start:end].decode(encoding), end

    return read_text


def _decimal(precision: int, scale: int) -> Reader:
    """MySQL's binary DECIMAL: base-10⁹ groups of 4 bytes big-endian (leftover digits in fewer
    bytes), the integer part's then the fraction's; the top bit set means non-negative, and a
    negative value has every bit inverted. The groups make one integer of all the digits, which
    ``Decimal("<digits>E-<scale>")`` takes exactly (the library's ``Decimal("<int>.<frac>")``:
    the same sign, digits and exponent)."""
    intg0, intg0x = divmod(precision - scale, 9)
    frac0, frac0x = divmod(scale, 9)
    # (bytes, digits) of each group, most significant first
    groups = ([(_DIG2BYTES[intg0x], intg0x)] if intg0x else []) + [(4, 9)] * (intg0 + frac0)
    groups += [(_DIG2BYTES[frac0x], frac0x)] if frac0x else []
    size = sum(n for n, _ in groups)
    if size == 0:
        raise Unsupported("DECIMAL without digits")
    sign_bit = 1 << (size * 8 - 1)
    invert = (1 << (size * 8)) - 1
    # (shift, mask, weight) of each group in the integer of the value's bytes
    parts: list[tuple[int, int, int]] = []
    shift = 0
    digits_below = 0
    for n, digits in reversed(groups):
        parts.append((shift, (1 << (n * 8)) - 1, 10**digits_below))
        shift += n * 8
        digits_below += digits
    steps = tuple(parts)
    exponent = f"E-{scale}" if scale else ""

    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        end = pos + size
        v = int.from_bytes(buf[pos:end], "big")
        if v & sign_bit:
            v ^= sign_bit
            sign = ""
        else:
            v ^= sign_bit ^ invert
            sign = "-"
        n = 0
        for shift, mask, weight in steps:
            n += (v >> shift & mask) * weight
        return Decimal(f"{sign}{n}{exponent}"), end

    return read


def _fraction(fsp: int) -> tuple[int, Callable[[bytes, int], int]]:
    """The bytes of a temporal value's fraction of a second and how to read it as microseconds."""
    n = (fsp + 1) // 2
    scale = int(10 ** (6 - fsp))

    def micros(buf: bytes, pos: int) -> int:
        if not n:
            return 0
        v = int.from_bytes(buf[pos : pos + n], "big", signed=True)
        if fsp % 2:  # an odd precision is stored with one more digit, always 0
            v = int(v / 10)
        return v * scale

    return n, micros


def _datetime2(fsp: int) -> Reader:
    """DATETIME(fsp): 40 bits big-endian (sign, year*13+month, day, hour, minute, second), then the
    fraction; an impossible date (0000-00-00) is None, as the library has it."""
    n, micros = _fraction(fsp)
    size = 5 + n

    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        v = int.from_bytes(buf[pos : pos + 5], "big")
        year, month = divmod(v >> 22 & 0x1FFFF, 13)
        try:
            if n:
                return datetime(
                    year, month, v >> 17 & 31, v >> 12 & 31, v >> 6 & 63, v & 63, micros(buf, pos + 5)
                ), pos + size
            return datetime(year, month, v >> 17 & 31, v >> 12 & 31, v >> 6 & 63, v & 63), pos + size
        except ValueError:
            return None, pos + size

    return read


def _timestamp2(fsp: int) -> Reader:
    """TIMESTAMP(fsp): seconds since the epoch (4 bytes big-endian), then the fraction; a naive
    datetime in UTC, as the library has it."""
    n, micros = _fraction(fsp)

    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        seconds = int.from_bytes(buf[pos : pos + 4], "big", signed=True)
        return _EPOCH + timedelta(seconds=seconds, microseconds=micros(buf, pos + 4)), pos + 4 + n

    return read


def _date(buf: bytes, pos: int) -> tuple[Any, int]:
    """DATE: 3 bytes little-endian, year << 9 | month << 5 | day; a zero part is None (library)."""
    v = int.from_bytes(buf[pos : pos + 3], "little")
    year, month, day = v >> 9 & 0x7FFF, v >> 5 & 15, v & 31
    return (date(year, month, day) if year and month and day else None), pos + 3


def _enum(size: int, values: Sequence[str]) -> Reader:
    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        return values[int.from_bytes(buf[pos : pos + size], "little")], pos + size

    return read


def reader_of(column: Any) -> Reader:
    """The reader of one table-map column (a ``pymysqlreplication.column.Column``)."""
    t = column.type
    unsigned = bool(getattr(column, "unsigned", False))
    if (t, unsigned) in _FIXED:
        return _fixed(_FIXED[(t, unsigned)])
    if t == INT24:
        return _int24(not unsigned)
    if t == NEWDECIMAL:
        return _decimal(column.precision, column.decimals)
    if t in (VARCHAR, STRING):  # not VAR_STRING: the library has no reader for it either
        return _string(2 if column.max_length > 255 else 1, _encoding(column.character_set_name))
    if t == BLOB:
        return _string(column.length_size, _encoding(column.character_set_name))
    if t == DATETIME2:
        return _datetime2(column.fsp)
    if t == TIMESTAMP2:
        return _timestamp2(column.fsp)
    if t == DATE:
        return _date
    if t == ENUM and column.enum_values and column.size in (1, 2):
        return _enum(column.size, column.enum_values)
    raise Unsupported(f"column type {t}")


class RowDecoder:
    """The readers of one table map's columns, in order."""

    def __init__(self, columns: Sequence[Any]) -> None:
        names = [c.name for c in columns]
        if not all(isinstance(n, str) and n for n in names):
            raise Unsupported("a column without its name (binlog_row_metadata=FULL)")
        self.names: tuple[str, ...] = tuple(names)
        self.readers: tuple[Reader, ...] = tuple(reader_of(c) for c in columns)
        self.null_bytes = (len(columns) + 7) // 8

    def decode(self, data: bytes, images: int) -> list[dict[str, Any]]:
        """Every row image in ``data`` (the rows of one event; ``images`` per row), as the
        library's ``values`` dicts. Raises ValueError if the bytes do not end with the last row."""
        names, readers, null_bytes = self.names, self.readers, self.null_bytes
        out: list[dict[str, Any]] = []
        pos, end = 0, len(data)
        try:
            while pos < end:
                nulls = int.from_bytes(data[pos : pos + null_bytes], "little")
                pos += null_bytes
                values: list[Any] = []
                append = values.append
                for read in readers:
                    if nulls & 1:
                        append(None)
                    else:
                        value, pos = read(data, pos)
                        append(value)
                    nulls >>= 1
                out.append(dict(zip(names, values, strict=True)))
        except (struct.error, IndexError) as exc:  # a fixed-size value or a length past the end
            raise ValueError(f"row images ended inside a value: {exc}") from None
        # a slice past the end is short, not an error: the offsets then overshoot the end
        if pos != end or len(out) % images:
            raise ValueError(f"row images ended at byte {pos} of {end}")
        return out


def _signature(columns: Sequence[Any]) -> tuple[Any, ...]:
    """What a decoder depends on, per column: a table map with the same is decoded the same way."""
    return tuple(
        (
            c.name,
            c.type,
            getattr(c, "unsigned", False),
            getattr(c, "precision", None),
            getattr(c, "decimals", None),
            getattr(c, "max_length", None),
            getattr(c, "length_size", None),
            getattr(c, "fsp", None),
            getattr(c, "character_set_name", None),
            getattr(c, "size", None),
            tuple(c.enum_values) if getattr(c, "enum_values", None) else None,
        )
        for c in columns
    )


class RowImages:
    """Decoders by table map, for the rows events of one binlog stream."""

    def __init__(self) -> None:
        self._by_signature: dict[tuple[Any, ...], RowDecoder | None] = {}
        self._last: tuple[Any, RowDecoder | None] | None = None  # (a table map's column list, its decoder)

    def decoder(self, columns: Sequence[Any]) -> RowDecoder | None:
        """The decoder of a table map's columns; None if one of them is left to the library."""
        if self._last is not None and self._last[0] is columns:
            return self._last[1]
        signature = _signature(columns)
        if signature not in self._by_signature:
            try:
                self._by_signature[signature] = RowDecoder(columns)
            except Unsupported as exc:
                names = [c.name for c in columns]
                log.debug("rows of %s decoded by python-mysql-replication: %s", names, exc)
                self._by_signature[signature] = None
            if len(self._by_signature) > 1024:  # table maps of many shapes (DDL): keep the latest
                self._by_signature = {signature: self._by_signature[signature]}
        self._last = (columns, self._by_signature[signature])
        return self._last[1]

    def rows(self, event: Any) -> list[dict[str, Any]] | None:
        """The row images of a rows event, in order (an update's before then after image, per
        row); None: the library decodes this event (``event.rows``)."""
        images = _IMAGES.get(event.event_type)
        if images is None:  # e.g. MySQL's partial JSON updates
            return None
        columns = event.columns
        decoder = self.decoder(columns)
        if decoder is None or event.number_of_columns != len(columns) or not event.complete:
            return None
        full = (1 << len(columns)) - 1
        bitmaps = [event.columns_present_bitmap]
        if images == 2:
            bitmaps.append(event.columns_present_bitmap2)
        if any(int.from_bytes(b, "little") != full for b in bitmaps):  # not binlog_row_image=FULL
            return None
        # The rows are read from the packet's bytes without consuming them: nothing reads the event
        # after us, and if we cannot decode it the library reads it as if we had not been there
        # (its wrapper's ``unread`` appends to a buffer its DECIMAL reader also unreads into:
        # giving bytes back that way would shift them). The packet holds the OK byte, the 19-byte
        # event header (the library reads these 20 itself), the body (``event_size``; the wrapper
        # counts ``read_bytes`` from its start) and maybe a 4-byte checksum.
        packet = event.packet
        raw = packet.get_all_data()
        start, end = _HEADER + packet.read_bytes, _HEADER + event.event_size
        if len(raw) - end not in (0, 4):
            return None
        try:
            return decoder.decode(raw[start:end], images)
        except ValueError as exc:  # UnicodeDecodeError is one too
            log.debug("row images of %s.%s left to the library: %s", event.schema, event.table, exc)
            return None

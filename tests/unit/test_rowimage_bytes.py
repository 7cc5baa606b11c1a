"""The row-image decoder on hand-made bytes: NULL bitmaps wider than a byte, length prefixes,
MySQL's binary DECIMAL (negative, leftover digits), and refusals. The comparison with the library
on the real MariaDB's events is tests/integration/test_sync_rowimage.py."""

from __future__ import annotations

import struct
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from pymysqlreplication.column import Column

from shoal.replicate.rowimage import RowDecoder, RowImages, reader_of


def col(name: str, type_: int, **meta: Any) -> Any:
    return Column(name=name, type=type_, unsigned=meta.pop("unsigned", False), **meta)


def _decimal_bytes(text: str, precision: int, scale: int) -> bytes:
    """MySQL's decimal2bin, written from its description (not from the reader under test)."""
    dig2bytes = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4]
    negative = text.startswith("-")
    whole, _, frac = text.lstrip("-").partition(".")
    intg, frac = precision - scale, frac.ljust(scale, "0")
    whole = whole.rjust(intg, "0")
    out = b""
    lead = intg % 9
    if lead:
        out += int(whole[:lead]).to_bytes(dig2bytes[lead], "big")
    for k in range(lead, intg, 9):
        out += int(whole[k : k + 9]).to_bytes(4, "big")
    for k in range(0, scale - scale % 9, 9):
        out += int(frac[k : k + 9]).to_bytes(4, "big")
    if scale % 9:
        out += int(frac[scale - scale % 9 :]).to_bytes(dig2bytes[scale % 9], "big")
    raw = bytearray(out)
    raw[0] ^= 0x80
    if negative:
        raw = bytearray(b ^ 0xFF for b in raw)
    return bytes(raw)


@pytest.mark.parametrize(
    ("text", "precision", "scale"),
    [
        ("12345678901234.5678", 20, 4),
        ("-12345678901234.5678", 20, 4),
        ("0.01", 10, 2),
        ("-0.01", 10, 2),
        ("-0.0001", 4, 4),
        ("99999", 5, 0),
        ("-9", 1, 0),
        ("1234567890123456789012345678.0123456789", 38, 10),
        ("-123456789.123456789", 18, 9),
        ("12345678901234567890123456789012345.123456789012345678901234567890", 65, 30),
    ],
)
def test_binary_decimal(text: str, precision: int, scale: int) -> None:
    read = reader_of(col("d", 246, precision=precision, decimals=scale))
    data = b"\x07" + _decimal_bytes(text, precision, scale) + b"\x09"
    value, end = read(data, 1)
    assert end == len(data) - 1
    assert value.as_tuple() == Decimal(text).as_tuple()


def test_rows_with_nulls_past_the_first_byte_and_long_lengths() -> None:
    columns = [col(f"i{k}", 3) for k in range(9)] + [
        col("s", 15, max_length=1200, character_set_name="utf8"),
        col("b", 252, length_size=2, character_set_name="binary"),
        col("dd", 10),
        col("dt", 18, fsp=3),
    ]
    decoder = RowDecoder(columns)
    text = "🦈" * 100
    # row 1: i0 and i8 NULL (bit 8 is in the second byte); row 2: only s NULL
    nulls1 = (1 | 1 << 8).to_bytes(2, "little")
    values1 = b"".join(struct.pack("<i", k - 4) for k in range(1, 8))
    values1 += len(text.encode()).to_bytes(2, "little") + text.encode()
    values1 += (3).to_bytes(2, "little") + b"\x00\xff\x10"
    values1 += (2024 << 9 | 2 << 5 | 29).to_bytes(3, "little")
    packed = 1 << 39 | (2024 * 13 + 1) << 22 | 2 << 17 | 3 << 12 | 4 << 6 | 5
    values1 += packed.to_bytes(5, "big") + (1230).to_bytes(2, "big")
    nulls2 = (1 << 9).to_bytes(2, "little")
    values2 = b"".join(struct.pack("<i", k) for k in range(9)) + b"\x00\x00" + b"\x00\x00\x00"
    values2 += (1 << 39).to_bytes(5, "big") + b"\x00\x00"  # 0000-00-00: None, as the library has it
    rows = decoder.decode(nulls1 + values1 + nulls2 + values2, 1)
    assert rows[0] == {
        "i0": None, **{f"i{k}": k - 4 for k in range(1, 8)}, "i8": None, "s": text, "b": b"\x00\xff\x10",
        "dd": date(2024, 2, 29), "dt": datetime(2024, 1, 2, 3, 4, 5, 123000),
    }  # fmt: skip
    assert rows[1] == {**{f"i{k}": k for k in range(9)}, "s": None, "b": "", "dd": None, "dt": None}
    with pytest.raises(ValueError, match="ended inside a value"):
        decoder.decode(nulls1 + values1 + b"\x00", 1)  # a NULL bitmap saying i1 has 4 bytes
    with pytest.raises(ValueError, match="ended at byte"):
        decoder.decode(nulls1 + values1[:-1], 1)  # a slice comes short
    with pytest.raises(ValueError, match="ended at byte"):
        decoder.decode(nulls1 + values1, 2)  # an update's row without its after image


def test_columns_left_to_the_library() -> None:
    images = RowImages()
    assert images.decoder([col("id", 3), col("t", 19, fsp=0)]) is None  # TIME2
    assert images.decoder([col("id", 3), col("y", 13)]) is None  # YEAR
    assert images.decoder([col("id", 3), col("x", 253, max_length=10)]) is None  # VAR_STRING
    assert images.decoder([Column(name=None, type=3, unsigned=False)]) is None  # no column names
    assert images.decoder([col("id", 3), col("e", 247, size=1, enum_values=["", "a"])]) is not None

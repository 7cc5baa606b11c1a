"""pgoutput decoding, exact type mapping, binlog position encoding and the net effect of changes."""

from __future__ import annotations

import struct
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pyarrow as pa
import pytest

from shoal.lake import progress
from shoal.replicate.apply import reduce_changes
from shoal.replicate.cursor import decode_cursor, encode_cursor
from shoal.replicate.ddl import truncated_table
from shoal.replicate.errors import UnsupportedType
from shoal.replicate.model import Change, SourceTable
from shoal.replicate.pgoutput import UNCHANGED, Decoder
from shoal.replicate.postgres import int_to_lsn, lsn_to_int
from shoal.replicate.typemap import mysql_column, pg_column


def _s(text: str) -> bytes:
    return text.encode() + b"\0"


def _tuple(*values: str | None, unchanged: int | None = None) -> bytes:
    out = struct.pack(">h", len(values))
    for i, v in enumerate(values):
        if i == unchanged:
            out += b"u"
        elif v is None:
            out += b"n"
        else:
            data = v.encode()
            out += b"t" + struct.pack(">i", len(data)) + data
    return out


def _relation() -> bytes:
    cols = b"".join(
        struct.pack(">b", flags) + _s(name) + struct.pack(">ii", 23, -1)
        for flags, name in ((1, "id"), (0, "name"), (0, "doc"))
    )
    return b"R" + struct.pack(">i", 16384) + _s("public") + _s("users") + b"d" + struct.pack(">h", 3) + cols


def test_pgoutput_messages() -> None:
    d = Decoder()
    assert d.decode(b"B" + struct.pack(">qqi", 100, 0, 7)).kind == "begin"
    rel = d.decode(_relation()).relation
    assert rel is not None
    assert (rel.name, rel.columns, rel.key_columns) == ("users", ("id", "name", "doc"), ("id",))
    ins = d.decode(b"I" + struct.pack(">i", 16384) + b"N" + _tuple("1", "🦈 ann", None))
    assert (ins.kind, ins.new) == ("insert", {"id": "1", "name": "🦈 ann", "doc": None})
    upd = d.decode(
        b"U"
        + struct.pack(">i", 16384)
        + b"K"
        + _tuple("1", None, None)
        + b"N"
        + _tuple("2", "bo", None, unchanged=2)
    )
    assert upd.old == {"id": "1", "name": None, "doc": None}
    assert upd.new == {"id": "2", "name": "bo", "doc": UNCHANGED}
    dele = d.decode(b"D" + struct.pack(">i", 16384) + b"K" + _tuple("2", None, None))
    assert (dele.kind, dele.old) == ("delete", {"id": "2", "name": None, "doc": None})
    commit = d.decode(b"C" + struct.pack(">bqqq", 0, 90, 123456, 0))
    assert (commit.kind, commit.end_lsn) == ("commit", 123456)


def test_lsn_and_binlog_positions_round_trip_and_order() -> None:
    assert lsn_to_int("16/B374D848") == (0x16 << 32) | 0xB374D848
    assert int_to_lsn(lsn_to_int("16/B374D848")) == "16/B374D848"
    a, b = progress.encode_binlog(1, 4_000_000_000), progress.encode_binlog(2, 4)
    assert a < b  # a later file is later, whatever the offset
    assert progress.decode_binlog(b) == (2, 4)


def test_mysql_types_are_exact() -> None:
    big = mysql_column("id", "bigint", "bigint(20) unsigned", 20, 0)
    assert big.type == pa.decimal128(20, 0)
    assert pa.array([big.convert(18446744073709551615)], big.type).to_pylist() == [
        Decimal(18446744073709551615)
    ]  # type: ignore[misc]
    assert mysql_column("b", "tinyint", "tinyint(1)", 3, 0).type == pa.bool_()
    assert mysql_column("t", "tinyint", "tinyint(4)", 3, 0).type == pa.int8()
    assert mysql_column("d", "decimal", "decimal(38,10)", 38, 10).type == pa.decimal128(38, 10)
    assert mysql_column("d", "decimal", "decimal(65,10)", 65, 10).type == pa.string()
    ts = mysql_column("ts", "timestamp", "timestamp(6)", None, None)
    assert ts.type == pa.timestamp("us", tz="UTC")
    assert ts.convert(datetime(2024, 1, 1, 12)) == datetime(2024, 1, 1, 12, tzinfo=UTC)  # type: ignore[misc]
    assert mysql_column("dt", "datetime", "datetime", None, None).type == pa.timestamp("us")
    j = mysql_column("j", "json", "json", None, None)
    assert j.convert({"a": [1, 2]}) == '{"a": [1, 2]}'  # type: ignore[misc]
    tm = mysql_column("tm", "time", "time", None, None)
    assert tm.convert(timedelta(hours=25, seconds=1)) == time(1, 0, 1)  # type: ignore[misc]
    with pytest.raises(UnsupportedType, match=r"column 'g': MySQL type geometry"):
        mysql_column("g", "geometry", "geometry", None, None)


def test_postgres_types_take_text_and_driver_values() -> None:
    tz = pg_column("tz", "timestamp with time zone", "timestamptz", None, None)
    assert tz.convert("2024-01-02 03:04:05.5+00") == datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=UTC)  # type: ignore[misc]
    assert pg_column("b", "boolean", "bool", None, None).convert("t") is True  # type: ignore[misc]
    assert pg_column("x", "bytea", "bytea", None, None).convert("\\x00ff") == b"\x00\xff"  # type: ignore[misc]
    assert pg_column("d", "date", "date", None, None).convert("2024-02-29") == date(2024, 2, 29)  # type: ignore[misc]
    assert pg_column("n", "numeric", "numeric", None, None).type == pa.string()
    assert pg_column("n", "numeric", "numeric", 12, 2).type == pa.decimal128(12, 2)
    assert pg_column("e", "USER-DEFINED", "plan", None, None).type == pa.string()


def test_changes_reduce_to_their_net_effect() -> None:
    table = SourceTable(
        "t", (mysql_column("id", "int", "int", 10, 0), mysql_column("v", "int", "int", 10, 0)), ("id",)
    )
    changes = [
        Change("t", "upsert", {"id": 1, "v": 1}),
        Change("t", "upsert", {"id": 1, "v": 2}),
        Change("t", "upsert", {"id": 3, "v": 3}),
        Change("t", "upsert", {"id": 4, "v": 3}, old_key={"id": 3}),  # key change 3 -> 4
        Change("t", "delete", {"id": 5, "v": 0}),
        Change("t", "upsert", {"id": 5, "v": 9}),  # re-inserted after the delete
        Change("t", "delete", {"id": 1, "v": 2}),
    ]
    net = reduce_changes(table, changes)
    assert not net.fresh
    assert sorted(r["id"] for r in net.upserts) == [4, 5]
    assert sorted(d["id"] for d in net.deletes) == [1, 3]


def test_new_keys_are_appended_once_the_replica_has_converged() -> None:
    table = SourceTable(
        "t", (mysql_column("id", "int", "int", 10, 0), mysql_column("v", "int", "int", 10, 0)), ("id",)
    )
    changes = [
        Change("t", "upsert", {"id": 1, "v": 1}, insert=True),
        Change("t", "upsert", {"id": 1, "v": 2}),  # inserted, then updated: appended as updated
        Change("t", "upsert", {"id": 2, "v": 1}, insert=True),
        Change("t", "delete", {"id": 2, "v": 1}),  # inserted, then deleted: never written
        Change("t", "delete", {"id": 3, "v": 0}),
        Change("t", "upsert", {"id": 3, "v": 9}, insert=True),  # deleted first: it was there, merge
        Change("t", "upsert", {"id": 4, "v": 4}),  # an update of an old row: merge
    ]
    net = reduce_changes(table, changes, converged=True)
    assert net.fresh == [{"id": 1, "v": 2}]
    assert sorted(r["id"] for r in net.upserts) == [3, 4]
    assert net.deletes == []
    # still replaying the snapshot's overlap: an insert may be a row the snapshot copied
    before = reduce_changes(table, changes, converged=False)
    assert not before.fresh
    assert sorted(r["id"] for r in before.upserts) == [1, 3, 4]
    assert sorted(d["id"] for d in before.deletes) == [2]


def test_cursor_values_round_trip() -> None:
    ts = mysql_column("u", "datetime", "datetime(6)", None, None)
    value = datetime(2024, 6, 1, 12, 30, 0, 123456)
    assert decode_cursor(ts, encode_cursor(value)) == value
    assert encode_cursor(datetime(2024, 6, 1, 14, 30, tzinfo=UTC)) == encode_cursor(
        datetime(2024, 6, 1, 14, 30)
    )
    assert encode_cursor(42) == 42
    with pytest.raises(TypeError):
        encode_cursor(True)


def test_truncate_statements_are_recognised() -> None:
    assert truncated_table("TRUNCATE TABLE items", "crm") == ("crm", "items")
    assert truncated_table("truncate `odd``name`;", "crm") == ("crm", "odd`name")
    assert truncated_table("/* app */ TRUNCATE TABLE `other`.`items`", "crm") == ("other", "items")
    assert truncated_table("TRUNCATE other . items", "crm") == ("other", "items")
    assert truncated_table("DELETE FROM items", "crm") is None
    assert truncated_table("TRUNCATE TABLE items; DROP TABLE x", "crm") is None
    assert truncated_table("ALTER TABLE items TRUNCATE PARTITION p0", "crm") is None

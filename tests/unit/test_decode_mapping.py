"""Protobuf → Arrow column mapping, case by case (tests/unit/protos/alltypes.proto, legacy.proto)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from shoal.decode import Decoder, DecodeSpec, build_decoder, compile_proto, message_class

PROTOS = Path(__file__).parent / "protos"
UTC_US = pa.timestamp("us", tz="UTC")


@pytest.fixture(scope="module")
def alltypes_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("desc") / "alltypes.pb"
    path.write_bytes(compile_proto(PROTOS / "alltypes.proto"))
    return path


@pytest.fixture(scope="module")
def cls(alltypes_set: Path) -> Any:
    return message_class("shoal.test.AllTypes", descriptor_set=alltypes_set)


def _decoder(alltypes_set: Path, **kw: Any) -> Decoder:
    kw.setdefault("delta_compatible_types", False)  # the plain Arrow mapping, tested type by type
    return build_decoder(
        DecodeSpec(format="protobuf", message="shoal.test.AllTypes", descriptor_set=alltypes_set, **kw)
    )


def _full(cls: Any) -> Any:
    m = cls(
        f_int32=-5,
        f_int64=-(2**40),
        f_uint32=2**32 - 1,
        f_uint64=2**64 - 1,
        f_sint32=-7,
        f_sint64=-(2**50),
        f_fixed32=42,
        f_fixed64=2**63,
        f_sfixed32=-42,
        f_sfixed64=-(2**62),
        f_float=1.5,
        f_double=2.25,
        f_bool=True,
        f_string="héllo",
        f_bytes=b"\x00\xff",
        color=2,
        opt_int64=0,
        opt_string="",
        opt_color=0,
        r_int64=[1, 2, 3],
        r_string=["a", "b"],
        r_color=[1, 2, 7],
        p_number=99,
    )
    m.ts.seconds, m.ts.nanos = 1_700_000_000, 123_456_789
    m.dur.seconds, m.dur.nanos = 90, 500_000
    m.w_string.value = ""
    m.w_int64.value = 17
    m.w_bool.value = False
    m.w_double.value = 0.5
    m.w_bytes.value = b"xy"
    m.w_uint32.value = 3
    m.inner.label, m.inner.count, m.inner.color = "in", 3, 1
    m.inner.at.seconds = 10
    m.outer.inner.label = "deep"
    m.outer.inners.add(label="o1")
    m.r_inner.add(label="r1", count=1)
    m.r_inner.add(label="r2")
    m.r_ts.add(seconds=1)
    m.r_ts.add(seconds=2, nanos=3000)
    m.m_str_int["a"] = 1
    m.m_int_inner[5].label = "five"
    m.m_str_color["x"] = 1
    m.attrs.update({"k": "v", "n": 1.0})
    m.tree.name = "root"
    m.tree.children.add(name="kid")
    m.marker.SetInParent()
    m.any.type_url, m.any.value = "type.googleapis.com/x.Y", b"\x08\x01"
    return m


def test_schema_types(alltypes_set: Path) -> None:
    schema = _decoder(alltypes_set).arrow_schema
    expected = {
        "f_int32": pa.int32(),
        "f_int64": pa.int64(),
        "f_uint32": pa.uint32(),
        "f_uint64": pa.uint64(),
        "f_sint32": pa.int32(),
        "f_sint64": pa.int64(),
        "f_fixed32": pa.uint32(),
        "f_fixed64": pa.uint64(),
        "f_sfixed32": pa.int32(),
        "f_sfixed64": pa.int64(),
        "f_float": pa.float32(),
        "f_double": pa.float64(),
        "f_bool": pa.bool_(),
        "f_string": pa.string(),
        "f_bytes": pa.binary(),
        "color": pa.string(),
        "opt_int64": pa.int64(),
        "opt_color": pa.string(),
        "ts": UTC_US,
        "dur": pa.duration("us"),
        "w_string": pa.string(),
        "w_int64": pa.int64(),
        "w_bool": pa.bool_(),
        "w_bytes": pa.binary(),
        "w_uint32": pa.uint32(),
        "r_int64": pa.list_(pa.int64()),
        "r_color": pa.list_(pa.string()),
        "r_ts": pa.list_(UTC_US),
        "m_str_int": pa.map_(pa.string(), pa.int64()),
        "m_str_color": pa.map_(pa.string(), pa.string()),
        "p_text": pa.string(),
        "p_number": pa.int64(),
        "p_ts": UTC_US,
        "payload_case": pa.string(),
        "attrs": pa.string(),
    }
    for name, typ in expected.items():
        assert schema.field(name).type == typ, name
    inner = schema.field("inner").type
    assert isinstance(inner, pa.StructType)
    assert [inner.field(i).name for i in range(inner.num_fields)] == ["label", "count", "at", "color"]
    assert inner.field("at").type == UTC_US
    assert schema.field("r_inner").type == pa.list_(inner)
    assert schema.field("m_int_inner").type == pa.map_(pa.int32(), inner)
    assert schema.field("p_inner").type == inner
    # the recursive type is expanded once; the recursion point becomes JSON text
    assert schema.field("tree").type == pa.struct(
        [("name", pa.string()), ("children", pa.list_(pa.string()))]
    )
    assert schema.field("marker").type == pa.bool_()
    assert schema.field("any").type == pa.struct([("type_url", pa.string()), ("value", pa.binary())])
    # synthetic oneofs of proto3 `optional` fields produce no _case column
    assert "_opt_int64_case" not in schema.names
    assert all(f.nullable for f in schema)
    # column order follows the descriptor; the oneof case column follows its members
    assert schema.names.index("payload_case") == schema.names.index("p_ts") + 1


def test_full_row_values(alltypes_set: Path, cls: Any) -> None:
    res = _decoder(alltypes_set).decode([_full(cls).SerializeToString()])
    assert not res.failures
    assert res.indices == [0]
    row = res.batch.to_pylist()[0]
    assert row["f_int32"] == -5
    assert row["f_int64"] == -(2**40)
    assert row["f_uint32"] == 2**32 - 1
    assert row["f_uint64"] == 2**64 - 1
    assert row["f_sint64"] == -(2**50)
    assert row["f_fixed64"] == 2**63
    assert row["f_sfixed64"] == -(2**62)
    assert row["f_float"] == 1.5
    assert row["f_string"] == "héllo"
    assert row["f_bytes"] == b"\x00\xff"
    assert row["color"] == "GREEN"
    # proto3 optional: set to the default value is still "set"
    assert (row["opt_int64"], row["opt_string"], row["opt_color"]) == (0, "", "COLOR_UNSPECIFIED")
    assert row["ts"] == datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)
    assert row["dur"] == timedelta(seconds=90, microseconds=500)
    assert row["w_string"] == ""
    assert row["w_int64"] == 17
    assert row["w_bool"] is False
    assert row["w_double"] == 0.5
    assert row["w_bytes"] == b"xy"
    assert row["w_uint32"] == 3
    assert row["inner"] == {
        "label": "in",
        "count": 3,
        "at": datetime(1970, 1, 1, 0, 0, 10, tzinfo=UTC),
        "color": "RED",
    }
    assert row["outer"]["inner"]["label"] == "deep"
    assert row["outer"]["inners"][0]["label"] == "o1"
    assert row["r_int64"] == [1, 2, 3]
    assert row["r_string"] == ["a", "b"]
    assert row["r_color"] == ["RED", "GREEN", "7"]  # unknown open-enum number kept as text
    assert [r["label"] for r in row["r_inner"]] == ["r1", "r2"]
    assert row["r_inner"][1]["at"] is None
    assert row["r_ts"] == [
        datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC),
        datetime(1970, 1, 1, 0, 0, 2, 3, tzinfo=UTC),
    ]
    assert row["m_str_int"] == [("a", 1)]
    assert row["m_int_inner"][0][0] == 5
    assert row["m_int_inner"][0][1]["label"] == "five"
    assert row["m_str_color"] == [("x", "RED")]
    assert (row["p_text"], row["p_number"], row["p_inner"], row["p_ts"]) == (None, 99, None, None)
    assert row["payload_case"] == "p_number"
    assert json.loads(row["attrs"]) == {"k": "v", "n": 1.0}
    assert row["tree"]["name"] == "root"
    assert [json.loads(c) for c in row["tree"]["children"]] == [{"name": "kid"}]
    assert row["marker"] is True
    assert row["any"] == {"type_url": "type.googleapis.com/x.Y", "value": b"\x08\x01"}


def test_empty_message_defaults_and_nulls(alltypes_set: Path, cls: Any) -> None:
    row = _decoder(alltypes_set).decode([b""]).batch.to_pylist()[0]
    # proto3 implicit-presence scalars: default value, never null
    assert (row["f_int32"], row["f_string"], row["f_bytes"], row["f_bool"]) == (0, "", b"", False)
    assert row["color"] == "COLOR_UNSPECIFIED"
    # presence fields: null when unset
    for name in ("opt_int64", "opt_string", "opt_color", "ts", "dur", "w_string", "w_int64", "inner"):
        assert row[name] is None, name
    for name in ("p_text", "p_number", "p_inner", "p_ts", "payload_case", "attrs", "tree", "marker", "any"):
        assert row[name] is None, name
    assert row["r_int64"] == []
    assert row["r_inner"] == []
    assert row["m_str_int"] == []


def test_oneof_each_member(alltypes_set: Path, cls: Any) -> None:
    a = cls(p_text="t")
    b = cls()
    b.p_inner.label = "x"
    c = cls()
    c.p_ts.seconds = 5
    d = cls(p_number=0)  # set to its default value: still the set member
    res = _decoder(alltypes_set).decode([m.SerializeToString() for m in (a, b, c, d, cls())])
    cols = res.batch.to_pydict()
    assert cols["payload_case"] == ["p_text", "p_inner", "p_ts", "p_number", None]
    assert cols["p_text"] == ["t", None, None, None, None]
    assert cols["p_number"] == [None, None, None, 0, None]
    assert [x and x["label"] for x in cols["p_inner"]] == [None, "x", None, None, None]
    assert cols["p_ts"] == [None, None, datetime(1970, 1, 1, 0, 0, 5, tzinfo=UTC), None, None]


def test_sparse_nested_structs_keep_row_alignment(alltypes_set: Path, cls: Any) -> None:
    msgs = []
    for i in range(7):
        m = cls(f_int32=i)
        if i % 3 == 0:
            m.inner.label = f"L{i}"
            m.inner.at.seconds = i
        msgs.append(m.SerializeToString())
    cols = _decoder(alltypes_set).decode(msgs).batch.to_pydict()
    labels = [x["label"] if x else None for x in cols["inner"]]
    assert labels == ["L0", None, None, "L3", None, None, "L6"]
    assert cols["inner"][3]["at"] == datetime(1970, 1, 1, 0, 0, 3, tzinfo=UTC)


def test_enums_as_numbers(alltypes_set: Path, cls: Any) -> None:
    dec = _decoder(alltypes_set, enums="number")
    assert dec.arrow_schema.field("color").type == pa.int32()
    assert dec.arrow_schema.field("r_color").type == pa.list_(pa.int32())
    row = dec.decode([cls(color=2, r_color=[1, 9]).SerializeToString()]).batch.to_pylist()[0]
    assert row["color"] == 2
    assert row["r_color"] == [1, 9]


def test_proto2_presence_and_required(tmp_path: Path) -> None:
    spec = DecodeSpec(format="protobuf", message="shoal.legacy.Legacy", proto_file=PROTOS / "legacy.proto")
    dec = build_decoder(spec)
    cls = message_class("shoal.legacy.Legacy", proto_file=PROTOS / "legacy.proto")
    good = cls(id="a", n=0).SerializeToString()
    unset = cls(id="b").SerializeToString()
    missing_required = cls(n=1).SerializePartialToString()
    res = dec.decode([good, unset, missing_required])
    assert res.indices == [0, 1]
    rows = res.batch.to_pylist()
    assert (rows[0]["n"], rows[0]["s"]) == (0, None)  # proto2 unset optional: null, not the [default]
    assert (rows[1]["n"], rows[1]["s"]) == (None, None)
    assert [(f.index, f.error_class) for f in res.failures] == [(2, "MissingRequiredField")]
    assert "id" in res.failures[0].message


def test_proto2_invalid_utf8_string_fails_only_that_row() -> None:
    spec = DecodeSpec(format="protobuf", message="shoal.legacy.Legacy", proto_file=PROTOS / "legacy.proto")
    dec = build_decoder(spec)
    cls = message_class("shoal.legacy.Legacy", proto_file=PROTOS / "legacy.proto")
    bad = b"\x0a\x02\xff\xfe"  # field 1 (id) = invalid UTF-8; proto2 parsers accept it
    res = dec.decode([cls(id="ok").SerializeToString(), bad])
    assert res.batch.column("id").to_pylist() == ["ok"]
    assert [(f.index, f.error_class) for f in res.failures] == [(1, "InvalidUtf8")]


def test_timestamp_out_of_range_fails_row(alltypes_set: Path, cls: Any) -> None:
    m = cls()
    m.ts.seconds = 10**15  # beyond year 9999: would overflow microseconds
    res = _decoder(alltypes_set).decode([m.SerializeToString(), cls(f_int32=1).SerializeToString()])
    assert res.indices == [1]
    assert res.failures[0].error_class == "InvalidTimestamp"


def test_negative_duration_and_bad_nanos(alltypes_set: Path, cls: Any) -> None:
    neg = cls()
    neg.dur.seconds, neg.dur.nanos = -1, -500_900
    bad = cls()
    bad.ts.nanos = -5
    res = _decoder(alltypes_set).decode([neg.SerializeToString(), bad.SerializeToString()])
    assert res.batch.column("dur").to_pylist() == [-timedelta(seconds=1, microseconds=500)]
    assert [(f.index, f.error_class) for f in res.failures] == [(1, "InvalidTimestamp")]


def test_delta_compatible_types(alltypes_set: Path, cls: Any, tmp_path: Path) -> None:
    from deltalake import DeltaTable, write_deltalake

    dec = _decoder(alltypes_set, delta_compatible_types=True)
    schema = dec.arrow_schema
    assert schema.field("f_uint32").type == pa.int64()
    assert schema.field("f_uint64").type == pa.decimal128(20, 0)
    assert schema.field("dur").type == pa.int64()
    assert schema.field("w_uint32").type == pa.int64()
    res = dec.decode([_full(cls).SerializeToString()])
    assert res.batch.schema == schema
    row = res.batch.to_pylist()[0]
    assert row["f_uint64"] == 2**64 - 1
    assert row["dur"] == 90_000_500
    # every column of the widest test message can be committed to a Delta table
    write_deltalake(tmp_path / "t", pa.Table.from_batches([res.batch]))
    assert DeltaTable(tmp_path / "t").to_pyarrow_table().column("f_uint32").to_pylist() == [2**32 - 1]


def test_empty_batch(alltypes_set: Path) -> None:
    dec = _decoder(alltypes_set)
    res = dec.decode([])
    assert res.batch.num_rows == 0
    assert res.batch.schema == dec.arrow_schema

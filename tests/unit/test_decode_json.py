"""JSON decoding: typed columns, type mismatches, _extra, inference, framing."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa

from shoal.decode import DecodeSpec, JsonDecoder, build_decoder
from shoal.decode.confluent_framing import frame

COLUMNS = [
    {"name": "id", "type": "int64"},
    {"name": "name", "type": "string"},
    {"name": "score", "type": "float64"},
    {"name": "active", "type": "bool"},
    {"name": "at", "type": "timestamp"},
    {"name": "day", "type": "date"},
    {"name": "price", "type": "decimal(10,2)"},
    {"name": "meta", "type": "json"},
    {"name": "city", "type": "string", "path": "address.city"},
]


def _dec(**kw: object) -> JsonDecoder:
    dec = build_decoder(DecodeSpec.model_validate({"format": "json", "columns": COLUMNS, **kw}))
    assert isinstance(dec, JsonDecoder)
    return dec


def _enc(obj: object) -> bytes:
    return json.dumps(obj).encode()


def test_typed_columns_and_schema() -> None:
    dec = _dec()
    assert dec.arrow_schema == pa.schema(
        [
            ("id", pa.int64()),
            ("name", pa.string()),
            ("score", pa.float64()),
            ("active", pa.bool_()),
            ("at", pa.timestamp("us", tz="UTC")),
            ("day", pa.date32()),
            ("price", pa.decimal128(10, 2)),
            ("meta", pa.string()),
            ("city", pa.string()),
            ("_extra", pa.string()),
        ]
    )
    doc = {
        "id": "42",
        "name": "ada",
        "score": 3,
        "active": True,
        "at": "2026-01-02T03:04:05.123456+01:00",
        "day": "2026-01-02",
        "price": "19.90",
        "meta": {"a": [1, 2]},
        "address": {"city": "Oslo", "zip": "0150"},
        "unmapped": 1,
    }
    res = dec.decode([_enc(doc), _enc({"id": 1})])
    assert not res.failures
    rows = res.batch.to_pylist()
    r = rows[0]
    assert r["id"] == 42
    assert r["name"] == "ada"
    assert r["score"] == 3.0
    assert r["active"] is True
    assert r["at"] == datetime(2026, 1, 2, 2, 4, 5, 123456, tzinfo=UTC)
    assert r["day"] == date(2026, 1, 2)
    assert r["price"] == Decimal("19.90")
    assert json.loads(r["meta"]) == {"a": [1, 2]}
    assert r["city"] == "Oslo"
    # nothing silently vanishes: unmapped keys (and siblings of a mapped nested key) land in _extra
    assert json.loads(r["_extra"]) == {"address": {"zip": "0150"}, "unmapped": 1}
    assert rows[1]["name"] is None
    assert rows[1]["_extra"] is None


def test_timestamps_from_epoch_numbers_and_naive_strings() -> None:
    dec = _dec()
    values = [
        _enc({"at": 1_700_000_000}),
        _enc({"at": 1_700_000_000_123}),
        _enc({"at": "2026-01-02 03:04:05"}),
    ]
    got = dec.decode(values).batch.column("at").to_pylist()
    assert got == [
        datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
        datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    ]


def test_failures() -> None:
    dec = _dec()
    values: list[bytes | None] = [
        _enc({"id": 1}),
        None,
        b'{"id": 2',
        _enc({"id": "abc"}),
        _enc([1, 2]),
        _enc({"active": 1}),
        _enc({"price": "1.234"}),  # more decimals than the scale: not silently rounded
        _enc({"id": 2**63}),
        b"\xff\xfe",
        _enc({"name": {"nested": True}}),
        _enc({"id": 3}),
    ]
    res = dec.decode(values)
    assert res.indices == [0, 10]
    assert res.batch.column("id").to_pylist() == [1, 3]
    assert [(f.index, f.error_class) for f in res.failures] == [
        (1, "NullValue"),
        (2, "JsonSyntaxError"),
        (3, "TypeMismatch"),
        (4, "NotAnObject"),
        (5, "TypeMismatch"),
        (6, "TypeMismatch"),
        (7, "TypeMismatch"),
        (8, "InvalidUtf8"),
        (9, "TypeMismatch"),
    ]
    assert "column id" in res.failures[2].message
    assert all("\n" not in f.message for f in res.failures)


def test_without_extra_column() -> None:
    dec = _dec(extra_column=False)
    assert "_extra" not in dec.arrow_schema.names
    assert dec.decode([_enc({"id": 1, "x": 2})]).batch.num_rows == 1


def test_infer_grows_schema() -> None:
    dec = build_decoder(DecodeSpec(format="json", infer=True))
    assert dec.arrow_schema.names == ["_extra"]
    first = dec.decode([_enc({"a": 1, "b": "x", "c": 1}), _enc({"a": 2, "c": 2.5, "d": None, "e": [1]})])
    schema = dec.arrow_schema
    assert schema.field("a").type == pa.int64()
    assert schema.field("b").type == pa.string()
    assert schema.field("c").type == pa.float64()
    assert schema.field("e").type == pa.string()  # arrays/objects → json text
    assert "d" not in schema.names  # only nulls so far: kept in _extra
    assert first.batch.column("c").to_pylist() == [1.0, 2.5]
    assert json.loads(first.batch.column("_extra").to_pylist()[1]) == {"d": None}
    second = dec.decode([_enc({"a": 3, "f": True}), _enc({"a": "oops"})])
    assert dec.arrow_schema.field("f").type == pa.bool_()
    assert second.batch.schema == dec.arrow_schema
    assert [f.error_class for f in second.failures] == ["TypeMismatch"]


def test_confluent_framed_json() -> None:
    dec = _dec()
    res = dec.decode([frame(_enc({"id": 5}), 99, None), _enc({"id": 6})])
    assert res.batch.column("id").to_pylist() == [5, 6]
    strict = _dec(confluent_wire="always").decode([_enc({"id": 6})])
    assert [f.error_class for f in strict.failures] == ["WireFormatError"]

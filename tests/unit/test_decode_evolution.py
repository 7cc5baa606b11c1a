"""Schema evolution: events_v2.proto adds fields to events_v1.proto's Event."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from shoal.decode import DecodeSpec, build_decoder, message_class

PROTOS = Path(__file__).parent / "protos"
V1, V2 = PROTOS / "events_v1.proto", PROTOS / "events_v2.proto"


def _spec(proto: Path, **kw: object) -> DecodeSpec:
    return DecodeSpec.model_validate(
        {"format": "protobuf", "message": "shoal.evo.Event", "proto_file": proto, **kw}
    )


def test_added_field_is_a_new_nullable_column() -> None:
    s1 = build_decoder(_spec(V1)).arrow_schema
    s2 = build_decoder(_spec(V2)).arrow_schema
    assert s2.names[: len(s1.names)] == s1.names
    added = [f for f in s2 if f.name not in s1.names]
    assert [f.name for f in added] == ["region", "detail"]
    assert all(f.nullable for f in added)
    assert s2.field("detail").type == pa.struct([("note", pa.string())])
    # the old schema merges into the new one without a type conflict
    assert pa.unify_schemas([s1, s2]) == s2


def test_v1_bytes_decode_under_v2() -> None:
    v1 = message_class("shoal.evo.Event", proto_file=V1)
    msg = v1(id="a", amount=3)
    msg.at.seconds = 100
    res = build_decoder(_spec(V2)).decode([msg.SerializeToString()])
    assert not res.failures
    assert res.unknown_field_rows == 0
    row = res.batch.to_pylist()[0]
    assert (row["id"], row["amount"]) == ("a", 3)
    assert row["detail"] is None
    assert row["region"] == ""  # proto3 implicit presence: default value


def test_v2_bytes_under_v1_are_counted_not_lost_silently() -> None:
    v2 = message_class("shoal.evo.Event", proto_file=V2)
    new = v2(id="b", amount=4, region="eu")
    new.detail.note = "n"
    old_shape = v2(id="c", amount=5)
    values = [new.SerializeToString(), old_shape.SerializeToString()]

    res = build_decoder(_spec(V1)).decode(values)
    assert res.indices == [0, 1]
    assert res.unknown_field_rows == 1
    assert res.batch.column("id").to_pylist() == ["b", "c"]

    strict = build_decoder(_spec(V1, strict_unknown_fields=True)).decode(values)
    assert strict.indices == [1]
    assert [(f.index, f.error_class) for f in strict.failures] == [(0, "UnknownFields")]

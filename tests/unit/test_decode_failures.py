"""Bad records become DecodeFailure rows (never exceptions); Confluent wire-format framing."""

from __future__ import annotations

import random
import uuid
from pathlib import Path
from typing import Any

import pytest

from shoal.decode import Decoder, DecodeSpec, build_decoder, compile_proto, message_class
from shoal.decode.confluent_framing import FramingError, frame, strip

PROTOS = Path(__file__).parent / "protos"


@pytest.fixture(scope="module")
def ticket_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("desc") / "ticket.pb"
    path.write_bytes(compile_proto(PROTOS / "ticket.proto"))
    return path


@pytest.fixture(scope="module")
def cls(ticket_set: Path) -> Any:
    return message_class("shoal.bench.TicketEvent", descriptor_set=ticket_set)


def _decoder(ticket_set: Path, **kw: Any) -> Decoder:
    return build_decoder(
        DecodeSpec(format="protobuf", message="shoal.bench.TicketEvent", descriptor_set=ticket_set, **kw)
    )


def _good(cls: Any, i: int) -> bytes:
    m = cls(event_id=f"e{i}", ticket_id="T-1234567890", sequence=i)
    m.replied.author_id = "agent"
    return bytes(m.SerializeToString())


def test_mixed_batch_keeps_good_rows_in_order(ticket_set: Path, cls: Any) -> None:
    v1 = message_class("shoal.evo.Event", proto_file=PROTOS / "events_v1.proto")
    other_type = v1(id="x", amount=5).SerializeToString()  # field 3 is a varint, TicketEvent's is a string
    truncated = _good(cls, 9)[:-3]  # cut inside the last length-delimited field
    values: list[bytes | None] = [
        _good(cls, 0),
        None,
        b"\xff\xff\xff\xff\xff\xff",
        truncated,
        _good(cls, 4),
        other_type,
        b'{"event_id": "json on a protobuf topic"}',
        _good(cls, 7),
    ]
    res = _decoder(ticket_set).decode(values)
    assert res.indices == [0, 4, 7]
    assert res.batch.column("event_id").to_pylist() == ["e0", "e4", "e7"]
    assert res.batch.column("payload_case").to_pylist() == ["replied"] * 3
    got = {f.index: f.error_class for f in res.failures}
    assert got == {
        1: "NullValue",
        2: "ProtobufParseError",
        3: "ProtobufParseError",
        5: "WireTypeMismatch",
        6: "ProtobufParseError",
    }
    assert [f.index for f in res.failures] == sorted(got)
    for f in res.failures:
        assert f.message
        assert "\n" not in f.message
    assert "ticket_id" in next(f.message for f in res.failures if f.index == 5)


def test_random_bytes_never_become_rows(ticket_set: Path) -> None:
    rng = random.Random(20260101)
    values = [rng.randbytes(rng.randint(24, 120)) for _ in range(500)]
    res = _decoder(ticket_set).decode(values)
    assert res.batch.num_rows == 0
    assert len(res.failures) == 500


def test_only_unknown_fields_is_unrecognized(ticket_set: Path) -> None:
    # field 99, varint 1: parses, but nothing the descriptor knows is set
    res = _decoder(ticket_set).decode([b"\x98\x06\x01"])
    assert [f.error_class for f in res.failures] == ["UnrecognizedMessage"]


def test_unknown_fields_counted_or_strict(ticket_set: Path, cls: Any) -> None:
    extra = _good(cls, 1) + b"\x98\x06\x01"  # + unknown field 99
    nested = cls(event_id="n")
    nested.replied.author_id = "a"
    # append unknown field 9 inside the `replied` submessage (field 22, length-delimited)
    inner = nested.replied.SerializeToString() + b"\x48\x01"
    nested_extra = cls(event_id="n").SerializeToString() + b"\xb2\x01" + bytes([len(inner)]) + inner
    values = [_good(cls, 0), extra, nested_extra]

    lenient = _decoder(ticket_set).decode(values)
    assert lenient.indices == [0, 1, 2]
    assert lenient.unknown_field_rows == 2
    assert lenient.batch.column("replied").to_pylist()[2] == {
        "author_id": "a",
        "public": False,
        "body_length": 0,
    }

    strict = _decoder(ticket_set, strict_unknown_fields=True).decode(values)
    assert strict.indices == [0]
    assert strict.unknown_field_rows == 0
    assert [(f.index, f.error_class) for f in strict.failures] == [(1, "UnknownFields"), (2, "UnknownFields")]
    assert "99" in strict.failures[0].message


# Headers as Confluent's serializers write them: magic 0, big-endian schema id, then the message-index
# array as zigzag varints (count, indexes), with [0] abbreviated to a single 0 byte.
@pytest.mark.parametrize(
    ("indexes", "index_bytes"),
    [([0], b"\x00"), ([1], b"\x02\x02"), ([2, 0, 5], b"\x06\x04\x00\x0a"), ([70], b"\x02\x8c\x01")],
)
def test_confluent_framing_auto(ticket_set: Path, cls: Any, indexes: list[int], index_bytes: bytes) -> None:
    header = b"\x00" + (1234).to_bytes(4, "big") + index_bytes
    framed = header + _good(cls, 1)
    res = _decoder(ticket_set).decode([framed, _good(cls, 2)])  # auto: mixed framed/unframed
    assert not res.failures
    assert res.batch.column("event_id").to_pylist() == ["e1", "e2"]
    assert frame(_good(cls, 1), 1234, tuple(indexes)) == framed


def test_confluent_framing_modes(ticket_set: Path, cls: Any) -> None:
    framed = frame(_good(cls, 1), 7)
    plain = _good(cls, 2)

    always = _decoder(ticket_set, confluent_wire="always").decode([framed, plain])
    assert always.indices == [0]
    assert [(f.index, f.error_class) for f in always.failures] == [(1, "WireFormatError")]

    never = _decoder(ticket_set, confluent_wire="never").decode([framed, plain])
    assert never.indices == [1]
    assert never.failures[0].index == 0

    truncated_header = b"\x00\x00\x00"
    res = _decoder(ticket_set).decode([truncated_header, b"\x00\x00\x00\x00\x07\x06"])
    assert [f.error_class for f in res.failures] == ["WireFormatError", "WireFormatError"]


def test_confluent_v1_guid_framing(ticket_set: Path, cls: Any) -> None:
    guid = uuid.UUID("6f1c0a52-3f43-4b7f-a4ad-0d1cbe3b6c21").bytes
    res = _decoder(ticket_set).decode([b"\x01" + guid + b"\x00" + _good(cls, 3)])
    assert res.batch.column("event_id").to_pylist() == ["e3"]


def test_wire_strip_unit() -> None:
    assert strip(b"\x0a\x01x", "auto", protobuf=True) == b"\x0a\x01x"
    assert strip(b"\x00\x00\x00\x00\x01{}", "auto", protobuf=False) == b"{}"
    assert strip(b"\x00\x00\x00\x00\x01\x04\x02\x06\x0a", "auto", protobuf=True) == b"\x0a"
    with pytest.raises(FramingError):
        strip(b"{}", "always", protobuf=False)
    with pytest.raises(FramingError):
        strip(b"\x00\x00\x00\x00\x01\x04\x02", "auto", protobuf=True)

"""The wire-bytes decode path (shoal.decode.protobuf_columnar) against the message path it stands in for.

Every test decodes the same values twice — with the vectorised wire path (the default) and with
``wire_columns=False`` (upb messages → arrow_mapping, the reference) — and requires identical batches,
indices, failures and unknown-field counts, on clean records and on mutated ones (flipped bytes,
truncation, concatenation, unknown fields, wrong wire types, invalid UTF-8, bad timestamps).
"""

from __future__ import annotations

import math
import random
import struct
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoal.decode import DecodeSpec, build_decoder, compile_proto, message_class, message_descriptor
from shoal.decode.protobuf import ProtobufDecoder
from shoal.usecases.support import MESSAGE, PROTO_FILE

PROTO3 = """
syntax = "proto3";
package shoal.wiretest;
import "google/protobuf/timestamp.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/wrappers.proto";
import "google/protobuf/empty.proto";

enum Color { COLOR_UNSPECIFIED = 0; RED = 1; GREEN = 2; }

message Leaf {
  string label = 1;
  int64 count = 2;
  google.protobuf.Timestamp at = 3;
  Color color = 4;
  repeated string tags = 5;
}

message Mid {
  Leaf leaf = 1;
  repeated Leaf leaves = 2;
  optional sint32 opt = 3;
  bytes blob = 4;
}

message Wide {
  int32 f_int32 = 1;
  int64 f_int64 = 2;
  uint32 f_uint32 = 3;
  uint64 f_uint64 = 4;
  sint32 f_sint32 = 5;
  sint64 f_sint64 = 6;
  fixed32 f_fixed32 = 7;
  fixed64 f_fixed64 = 8;
  sfixed32 f_sfixed32 = 9;
  sfixed64 f_sfixed64 = 10;
  float f_float = 11;
  double f_double = 12;
  bool f_bool = 13;
  string f_string = 14;
  bytes f_bytes = 15;
  Color color = 16;
  optional int64 opt_int64 = 17;
  optional string opt_string = 18;
  optional Color opt_color = 19;
  optional double opt_double = 20;
  google.protobuf.Timestamp ts = 21;
  google.protobuf.Duration dur = 22;
  google.protobuf.StringValue w_string = 23;
  google.protobuf.Int64Value w_int64 = 24;
  google.protobuf.BoolValue w_bool = 25;
  google.protobuf.DoubleValue w_double = 26;
  google.protobuf.BytesValue w_bytes = 27;
  google.protobuf.UInt32Value w_uint32 = 28;
  google.protobuf.FloatValue w_float = 29;
  google.protobuf.Empty marker = 30;
  Leaf leaf = 31;
  Mid mid = 32;
  repeated int64 r_int64 = 33;
  repeated sint32 r_sint32 = 34;
  repeated fixed32 r_fixed32 = 35;
  repeated double r_double = 36;
  repeated bool r_bool = 37;
  repeated Color r_color = 38;
  repeated string r_string = 39;
  repeated bytes r_bytes = 40;
  repeated Leaf r_leaf = 41;
  repeated google.protobuf.Timestamp r_ts = 42;
  optional bytes opt_bytes = 43;
  repeated uint64 r_uint64_unpacked = 44 [packed = false];
  oneof payload {
    string p_text = 50;
    int64 p_number = 51;
    Leaf p_leaf = 52;
    google.protobuf.Timestamp p_ts = 53;
    double p_double = 54;
    Mid p_mid = 55;
    google.protobuf.Empty p_empty = 56;
  }
}
"""

PROTO2 = """
syntax = "proto2";
package shoal.wiretest2;

enum Kind { A = 1; B = 2; }

message P2Inner {
  optional string s = 1;
  optional Kind k = 2;
}

message P2 {
  optional int32 a = 1 [default = 5];
  optional string s = 2;
  optional Kind kind = 3;
  repeated int32 r = 4;
  repeated int32 rp = 5 [packed = true];
  optional P2Inner inner = 6;
  repeated Kind kinds = 7;
  optional bytes b = 8;
  optional sfixed64 x = 9;
  optional float f = 10;
  oneof choice {
    string c_s = 11;
    Kind c_k = 12;
  }
}
"""

_FD = FieldDescriptor
_TEXT = ["", "a", "héllo", "日本語", "🙂x", "tab\tnl\n", "z" * 20]
_INT_EDGES = {
    _FD.TYPE_INT32: (-(2**31), 2**31 - 1),
    _FD.TYPE_SINT32: (-(2**31), 2**31 - 1),
    _FD.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    _FD.TYPE_INT64: (-(2**63), 2**63 - 1),
    _FD.TYPE_SINT64: (-(2**63), 2**63 - 1),
    _FD.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    _FD.TYPE_UINT32: (0, 2**32 - 1),
    _FD.TYPE_FIXED32: (0, 2**32 - 1),
    _FD.TYPE_UINT64: (0, 2**64 - 1),
    _FD.TYPE_FIXED64: (0, 2**64 - 1),
}


def _scalar(rng: random.Random, f: FieldDescriptor) -> Any:
    t = f.type
    if t in _INT_EDGES:
        lo, hi = _INT_EDGES[t]
        return rng.choice([0, 1, lo, hi, rng.randint(lo, hi), rng.randint(-300, 300) if lo < 0 else 300])
    if t == _FD.TYPE_BOOL:
        return rng.random() < 0.5
    if t == _FD.TYPE_FLOAT:
        return rng.choice([0.0, -0.0, 1.5, -2.25, float("inf"), 3.0e38])
    if t == _FD.TYPE_DOUBLE:
        return rng.choice([0.0, -0.0, 1.5, -1e300, float("-inf"), rng.uniform(-1e6, 1e6)])
    if t == _FD.TYPE_STRING:
        return rng.choice(_TEXT)
    if t == _FD.TYPE_BYTES:
        return rng.randbytes(rng.randint(0, 14))
    if t == _FD.TYPE_ENUM:
        return rng.choice([v.number for v in f.enum_type.values])
    raise AssertionError(t)


def _fill(rng: random.Random, msg: Message, depth: int = 0) -> None:
    """Set a random subset of ``msg``'s fields to random (valid) values."""
    desc: Descriptor = msg.DESCRIPTOR
    if desc.full_name == "google.protobuf.Timestamp":
        msg.seconds = rng.choice([0, -1, 1_767_225_600, rng.randint(-62_135_596_800, 253_402_300_799)])
        msg.nanos = rng.choice([0, 999_999_999, rng.randint(0, 999_999_999)])
        return
    if desc.full_name == "google.protobuf.Duration":
        secs = rng.randint(-315_576_000_000, 315_576_000_000)
        msg.seconds = secs
        nanos = rng.randint(0, 999_999_999)
        msg.nanos = -nanos if secs < 0 else nanos
        return
    oneofs_done: set[str] = set()
    for f in desc.fields:
        oneof = f.containing_oneof
        if oneof is not None and len(oneof.fields) > 1:
            if oneof.name in oneofs_done:
                continue
            oneofs_done.add(oneof.name)
            if rng.random() < 0.2:
                continue
            f = rng.choice(oneof.fields)  # noqa: PLW2901
        elif rng.random() < 0.3:
            continue
        if f.is_repeated:
            for _ in range(rng.randint(0, 3)):
                container = getattr(msg, f.name)
                if f.type == _FD.TYPE_MESSAGE:
                    if depth < 3:
                        _fill(rng, container.add(), depth + 1)
                else:
                    container.append(_scalar(rng, f))
        elif f.type == _FD.TYPE_MESSAGE:
            if depth < 3:
                sub = getattr(msg, f.name)
                sub.SetInParent()
                _fill(rng, sub, depth + 1)
        else:
            setattr(msg, f.name, _scalar(rng, f))


def _mutate(rng: random.Random, value: bytes, others: list[bytes]) -> bytes | None:
    """A damaged or odd version of ``value`` (sometimes still valid protobuf)."""
    kind = rng.randrange(11)
    if kind == 0 and value:  # flip a byte
        i = rng.randrange(len(value))
        return value[:i] + bytes([value[i] ^ (1 << rng.randrange(8))]) + value[i + 1 :]
    if kind == 1 and value:  # truncate
        return value[: rng.randrange(len(value))]
    if kind == 2:  # concatenation = merge: repeated singular fields, merged sub-messages
        return value + rng.choice(others)
    if kind == 3:  # unknown field (number 999, varint)
        return value + b"\xb8\x3e\x07"
    if kind == 4:  # a known field number with the wrong wire type (field 1 as fixed32)
        return value + b"\x0d\x01\x02\x03\x04"
    if kind == 5:  # random garbage
        return rng.randbytes(rng.randint(0, 30))
    if kind == 6:  # invalid UTF-8 in field 2 (a string in P2; int64 in Wide: a wire type clash)
        return value + b"\x12\x02\xc3\x28"
    if kind == 7:  # invalid UTF-8 in Wide.f_string / Leaf.label inside p_leaf
        return value + rng.choice([b"\x72\x01\xff", b"\xa2\x03\x03\x0a\x01\xff"])
    if kind == 8:  # out-of-range timestamp (Wide.ts.seconds = 2**40)
        return value + b"\xaa\x01\x06\x08\x80\x80\x80\x80\x80\x20"
    if kind == 9:
        return None if rng.random() < 0.5 else b""
    return value + b"\x20" + bytes([rng.randrange(1, 128)])  # field 4 as varint (enum in P2Inner…)


@pytest.fixture(scope="module")
def schemas(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Descriptor, type[Message]]]:
    d = tmp_path_factory.mktemp("wiretest")
    out = {}
    for name, text, message in (
        ("p3", PROTO3, "shoal.wiretest.Wide"),
        ("p2", PROTO2, "shoal.wiretest2.P2"),
    ):
        proto = d / f"{name}.proto"
        proto.write_text(text)
        path = d / f"{name}.pb"
        path.write_bytes(compile_proto(proto))
        out[name] = (
            message_descriptor(message, descriptor_set=path),
            message_class(message, descriptor_set=path),
        )
    return out


def _assert_same(desc: Descriptor, values: list[bytes | None], **kw: Any) -> ProtobufDecoder:
    fast = ProtobufDecoder(desc, **kw)
    assert fast._wire_columns is not None, "the schema should be planned on the wire path"
    fast.wire_min_records = 1  # the wire path even for these small batches
    ref = ProtobufDecoder(desc, wire_columns=False, **kw)
    a, b = fast.decode(values), ref.decode(values)
    assert a.batch.schema == b.batch.schema
    assert a.indices == b.indices
    assert a.failures == b.failures
    assert a.unknown_field_rows == b.unknown_field_rows
    if not a.batch.equals(b.batch):  # NaN is unequal to itself there: compare rows, NaN-tolerant
        assert _nan_safe(a.batch.to_pylist()) == _nan_safe(b.batch.to_pylist())
        assert "NaN" in repr(_nan_safe(a.batch.to_pylist()))
    return fast


def _nan_safe(x: Any) -> Any:
    """``x`` with float NaNs (a flipped byte can make one) replaced by a comparable marker."""
    if isinstance(x, float) and math.isnan(x):
        return "NaN"
    if isinstance(x, list | tuple):
        return [_nan_safe(v) for v in x]
    if isinstance(x, dict):
        return {k: _nan_safe(v) for k, v in x.items()}
    return x


def _records(rng: random.Random, cls: type[Message], n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        m = cls()
        _fill(rng, m)
        out.append(m.SerializeToString())
    return out


@pytest.mark.parametrize("name", ["p3", "p2"])
def test_clean_records_decode_on_the_wire_path(schemas: dict[str, Any], name: str) -> None:
    desc, cls = schemas[name]
    values = _records(random.Random(7), cls, 400)
    fast = _assert_same(desc, values)  # type: ignore[arg-type]
    assert fast._wire_columns is not None
    columns, flagged = fast._wire_columns.columns(values)
    assert columns is not None  # no record needed upb
    assert not flagged.any()


@settings(
    max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**32),
    name=st.sampled_from(["p3", "p2"]),
    mutate=st.floats(0, 1),
    options=st.sampled_from(
        [
            {},
            {"delta_compatible_types": True},
            {"enums_as_numbers": True},
            {"strict_unknown_fields": True},
            {"confluent_wire": "never"},
        ]
    ),
)
def test_same_as_message_path(
    schemas: dict[str, Any], seed: int, name: str, mutate: float, options: dict[str, Any]
) -> None:
    desc, cls = schemas[name]
    rng = random.Random(seed)
    clean = _records(rng, cls, rng.randint(1, 40))
    values = [_mutate(rng, v, clean) if rng.random() < mutate else v for v in clean]
    _assert_same(desc, values, **options)


def test_packed_and_unpacked_repeated(schemas: dict[str, Any]) -> None:
    desc, cls = schemas["p2"]
    m = cls(r=[1, -1, 300], rp=[2**31 - 1, -(2**31), 0], kinds=[1, 2])
    packed_r = b"\x22\x0d\x01" + b"\xff" * 9 + b"\x01\xac\x02"  # field 4 packed, declared unpacked
    unpacked_rp = b"\x28\x07\x28\x08"  # field 5 unpacked (declared packed): upb accepts both
    empty_run = b"\x2a\x00"
    unterminated = b"\x2a\x01\x80"  # a packed run ending inside a varint, then good records
    values = [m.SerializeToString(), packed_r, unpacked_rp, empty_run, m.SerializeToString() + unpacked_rp]
    _assert_same(desc, values)
    _assert_same(desc, [unterminated, m.SerializeToString(), unterminated, m.SerializeToString()])
    _assert_same(desc, [empty_run, empty_run])


# --------------------------------------------------------------------------------------- support events


@pytest.fixture(scope="module")
def support() -> tuple[Descriptor, type[Message]]:
    dec = build_decoder(DecodeSpec(format="protobuf", message=MESSAGE, proto_file=PROTO_FILE))
    assert isinstance(dec, ProtobufDecoder)
    return dec.descriptor, dec.message_class


def _event(cls: type[Message], i: int, payload: str | None) -> Any:
    m = cls(event_id=f"e{i}", ticket_id=f"t{i % 3}", event_type=i % 10, team="billing", channel=2)
    m.occurred_at.seconds = 1_767_225_600 + i
    if payload == "ticket_created":
        m.ticket_created.subject = f"subject {i}"
        m.ticket_created.tags.extend(["a", "b"][: i % 3])
    elif payload == "satisfaction_rated":
        m.satisfaction_rated.rating = 1 + i % 5
        m.satisfaction_rated.comment = "ok ✓" if i % 2 else ""
    elif payload == "resolved":
        m.resolved.SetInParent()
    return m


@pytest.mark.parametrize(
    "payloads",
    [
        [None, None, None],  # no row has the oneof: every member column all-null
        ["resolved", "resolved"],  # one member everywhere, holding only defaults
        ["ticket_created", None, "satisfaction_rated", "resolved", "ticket_created", None],
    ],
)
def test_support_oneof_cases(support: tuple[Descriptor, Any], payloads: list[str | None]) -> None:
    desc, cls = support
    values = [_event(cls, i, p).SerializeToString() for i, p in enumerate(payloads)]
    _assert_same(desc, values, delta_compatible_types=True)


def test_support_bad_utf8_inside_oneof_payload(support: tuple[Descriptor, Any]) -> None:
    desc, cls = support
    good = _event(cls, 1, "satisfaction_rated").SerializeToString()
    # satisfaction_rated (field 28) holding comment (field 2) = b"\xff": proto3 strings must be UTF-8
    bad = _event(cls, 2, None).SerializeToString() + b"\xe2\x01\x03\x12\x01\xff"
    fast = _assert_same(desc, [good, bad, good], delta_compatible_types=True)
    res = fast.decode([good, bad, good])  # through the wire path (_assert_same set it up so)
    assert [f.index for f in res.failures] == [1]
    assert res.failures[0].error_class == "ProtobufParseError"
    assert res.indices == [0, 2]


def test_support_simulated_events(support: tuple[Descriptor, Any]) -> None:
    from datetime import UTC, datetime
    from itertools import islice

    from shoal.usecases.support.simulator import SupportSimulator

    desc, _ = support
    sim = SupportSimulator(3, datetime(2026, 1, 5, tzinfo=UTC), days=5, tickets_per_day=200)
    values: list[bytes | None] = [v for _, v in islice(sim.encoded(), 3000)]
    _assert_same(desc, values, delta_compatible_types=True)
    values[10] = values[10][:-3]  # type: ignore[index]
    values[20] = None
    values[30] = struct.pack(">bI", 0, 7) + values[30]  # type: ignore[operator]
    _assert_same(desc, values, delta_compatible_types=True)


def test_schema_with_maps_stays_on_the_message_path() -> None:
    path = Path(__file__).parent / "protos" / "alltypes.proto"
    dec = build_decoder(DecodeSpec(format="protobuf", message="shoal.test.AllTypes", proto_file=path))
    assert isinstance(dec, ProtobufDecoder)
    assert dec._wire_columns is None


def _encode_varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def test_varint_reader_matches_the_wire_format() -> None:
    import numpy as np

    from shoal.decode.protobuf_columnar import _Batch, _varint

    rng = random.Random(3)
    values = [0, 1, 127, 128, 300, 2**31 - 1, 2**32 - 1, 2**56 - 1, 2**56, 2**63 - 1, 2**63, 2**64 - 1]
    values += [rng.getrandbits(rng.randint(1, 64)) for _ in range(300)]
    encoded = [_encode_varint(v) for v in values]
    odd = [
        b"\x80" * 10 + b"\x01",  # 11 bytes
        b"\xff" * 9 + b"\x02",  # a 10th byte above 1: bits beyond 64
        b"\x80\x80\x80\x80\x80\x80\x80\x80\x00",  # overlong but valid: 0 in 9 bytes
    ]
    batch = _Batch(encoded + odd)
    starts = np.cumsum([0] + [len(e) for e in encoded + odd])[:-1]
    val, length = _varint(batch, starts)
    assert val[: len(values)].tolist() == values
    assert length[: len(values)].tolist() == [len(e) for e in encoded]
    assert length[len(values) :].tolist() == [0, 0, 9]
    assert val[-1] == 0
    _, short = _varint(batch, starts, max_len=5)
    assert short[: len(values)].tolist() == [len(e) if len(e) <= 5 else 0 for e in encoded]


def test_mostly_flagged_batches_pause_the_wire_path(support: tuple[Descriptor, Any]) -> None:
    desc, cls = support
    # every record carries an unknown field (a producer on a newer schema): all flagged
    values: list[bytes | None] = [
        _event(cls, i, "resolved").SerializeToString() + b"\xb8\x3e\x07" for i in range(50)
    ]
    fast = _assert_same(desc, values)
    assert fast._wire_skip == 20  # after the one decode in _assert_same
    res = fast.decode(values)  # through upb, same answer
    assert fast._wire_skip == 19
    assert res.unknown_field_rows == 50
    assert len(res.indices) == 50


def test_flagged_records_are_filtered_out_of_one_wire_pass(support: tuple[Descriptor, Any]) -> None:
    desc, cls = support
    values: list[bytes | None] = [_event(cls, i, "ticket_created").SerializeToString() for i in range(30)]
    values[3] = _event(cls, 3, "ticket_created").SerializeToString()[:-2]  # truncated
    values[17] = _event(cls, 17, None).SerializeToString() + b"\xb8\x3e\x07"  # unknown field: upb, counted
    fast = _assert_same(desc, values)
    res = fast.decode(values)
    assert [f.index for f in res.failures] == [3]
    assert res.unknown_field_rows == 1
    assert res.indices == [i for i in range(30) if i != 3]


@pytest.mark.parametrize(
    "body",
    [
        "optional group G = 1 { optional int32 x = 2; }",  # start/end-group wire types
        "optional int32 far = 5000;",  # a tag longer than two bytes
        "required int32 must = 1;",  # proto2 required: checked on messages
    ],
)
def test_schemas_the_wire_path_leaves_to_upb(tmp_path: Path, body: str) -> None:
    proto = tmp_path / "odd.proto"
    proto.write_text(f'syntax = "proto2";\npackage shoal.odd;\nmessage Odd {{ {body} }}\n')
    dec = build_decoder(DecodeSpec(format="protobuf", message="shoal.odd.Odd", proto_file=proto))
    assert isinstance(dec, ProtobufDecoder)
    assert dec._wire_columns is None


def test_message_path_oneof_groups_rows_by_case(support: tuple[Descriptor, Any]) -> None:
    """The message path on its own (the reference above): members only on their rows, nulls elsewhere."""
    desc, cls = support
    payloads = ["ticket_created", None, "satisfaction_rated", "resolved", "ticket_created", None]
    values: list[bytes | None] = [_event(cls, i, p).SerializeToString() for i, p in enumerate(payloads)]
    ref = ProtobufDecoder(desc, wire_columns=False)
    rows = ref.decode(values).batch.to_pylist()
    assert [r["payload_case"] for r in rows] == payloads
    assert rows[0]["ticket_created"] == {"subject": "subject 0", "description_length": 0, "tags": []}
    assert rows[4]["ticket_created"] == {"subject": "subject 4", "description_length": 0, "tags": ["a"]}
    assert rows[2]["satisfaction_rated"] == {"rating": 3, "comment": ""}
    assert rows[3]["resolved"] == {"resolution_code": "RESOLUTION_CODE_UNSPECIFIED"}
    for r, p in zip(rows, payloads, strict=True):
        for member in ("ticket_created", "satisfaction_rated", "resolved", "escalated", "reopened"):
            if member != p:
                assert r[member] is None
    nobody = ref.decode([_event(cls, i, None).SerializeToString() for i in range(3)]).batch
    assert nobody.column("ticket_created").null_count == 3
    assert nobody.column("payload_case").null_count == 3

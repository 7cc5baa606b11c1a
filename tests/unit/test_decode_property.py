"""Property test: generated field values survive protobuf → Arrow unchanged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoal.decode import Decoder, DecodeSpec, build_decoder, compile_proto, message_class

PROTOS = Path(__file__).parent / "protos"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

i32 = st.integers(-(2**31), 2**31 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
f64 = st.floats(allow_nan=False)
text = st.text(max_size=20)
inner_st = st.fixed_dictionaries({"label": text, "count": i64, "color": st.sampled_from([0, 1, 2])})
ts_st = st.tuples(
    st.integers(-62_135_596_800, 253_402_300_799), st.integers(0, 999_999).map(lambda u: u * 1000)
)

record = st.fixed_dictionaries(
    {
        "f_int32": i32,
        "f_int64": i64,
        "f_uint32": u32,
        "f_uint64": u64,
        "f_sint64": i64,
        "f_double": f64,
        "f_bool": st.booleans(),
        "f_string": text,
        "f_bytes": st.binary(max_size=20),
        "color": st.sampled_from([0, 1, 2]),
        "opt_int64": st.none() | i64,
        "w_string": st.none() | text,
        "ts": st.none() | ts_st,
        "inner": st.none() | inner_st,
        "r_int64": st.lists(i64, max_size=4),
        "r_inner": st.lists(inner_st, max_size=3),
        "m_str_int": st.dictionaries(text, i64, max_size=3),
        "payload": st.one_of(
            st.none(),
            st.tuples(st.just("p_text"), text),
            st.tuples(st.just("p_number"), i64),
            st.tuples(st.just("p_inner"), inner_st),
        ),
    }
)
COLORS = ["COLOR_UNSPECIFIED", "RED", "GREEN"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Decoder]:
    path = tmp_path_factory.mktemp("desc") / "alltypes.pb"
    path.write_bytes(compile_proto(PROTOS / "alltypes.proto"))
    cls = message_class("shoal.test.AllTypes", descriptor_set=path)
    dec = build_decoder(DecodeSpec(format="protobuf", message="shoal.test.AllTypes", descriptor_set=path))
    return cls, dec


def _to_msg(cls: Any, r: dict[str, Any]) -> Any:
    scalars = [k for k in r if k.startswith("f_") or k == "color"]
    m = cls(**{k: r[k] for k in scalars}, r_int64=r["r_int64"])
    if r["opt_int64"] is not None:
        m.opt_int64 = r["opt_int64"]
    if r["w_string"] is not None:
        m.w_string.value = r["w_string"]
    if r["ts"] is not None:
        m.ts.seconds, m.ts.nanos = r["ts"]
    if r["inner"] is not None:
        m.inner.MergeFrom(m.inner.__class__(**r["inner"]))
    for x in r["r_inner"]:
        m.r_inner.add(**x)
    for k, v in r["m_str_int"].items():
        m.m_str_int[k] = v
    if r["payload"] is not None:
        name, value = r["payload"]
        if name == "p_inner":
            m.p_inner.MergeFrom(m.p_inner.__class__(**value))
        else:
            setattr(m, name, value)
    return m


def _inner_row(x: dict[str, Any]) -> dict[str, Any]:
    return {"label": x["label"], "count": x["count"], "at": None, "color": COLORS[x["color"]]}


@settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records=st.lists(record, min_size=1, max_size=6))
def test_round_trip(setup: tuple[Any, Decoder], records: list[dict[str, Any]]) -> None:
    cls, dec = setup
    res = dec.decode([_to_msg(cls, r).SerializeToString() for r in records])
    assert not res.failures
    assert res.unknown_field_rows == 0
    rows = res.batch.to_pylist()
    assert len(rows) == len(records)
    for r, row in zip(records, rows, strict=True):
        for k in ("f_int32", "f_int64", "f_uint32", "f_uint64", "f_sint64", "f_double", "f_bool"):
            assert row[k] == r[k], k
        assert row["f_string"] == r["f_string"]
        assert row["f_bytes"] == r["f_bytes"]
        assert row["color"] == COLORS[r["color"]]
        assert row["opt_int64"] == r["opt_int64"]
        assert row["w_string"] == r["w_string"]
        if r["ts"] is None:
            assert row["ts"] is None
        else:
            secs, nanos = r["ts"]
            assert row["ts"] == EPOCH + timedelta(seconds=secs, microseconds=nanos // 1000)
        assert row["inner"] == (None if r["inner"] is None else _inner_row(r["inner"]))
        assert row["r_int64"] == r["r_int64"]
        assert row["r_inner"] == [_inner_row(x) for x in r["r_inner"]]
        assert dict(row["m_str_int"]) == r["m_str_int"]
        case = None if r["payload"] is None else r["payload"][0]
        assert row["payload_case"] == case
        for member in ("p_text", "p_number", "p_inner"):
            if member != case:
                assert row[member] is None
        if case == "p_inner":
            assert row["p_inner"] == _inner_row(r["payload"][1])
        elif case is not None:
            assert row[case] == r["payload"][1]

from __future__ import annotations

import math
import struct
from typing import Any

import cramjam
import pytest

from shoal.sources.prometheus import (
    RemoteWriteDecodeError,
    decode_write_request,
    series_id,
    write_request_class,
)

STALE = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]


def build(series: list[tuple[dict[str, str], list[tuple[int, float]]]]) -> bytes:
    req: Any = write_request_class()()
    for labels, samples in series:
        ts = req.timeseries.add()
        for k, v in sorted(labels.items()):
            ts.labels.add(name=k, value=v)
        for t, v in samples:
            ts.samples.add(timestamp=t, value=v)
    return bytes(cramjam.snappy.compress_raw(req.SerializeToString()))


def test_decode_snappy_write_request() -> None:
    body = build(
        [
            ({"__name__": "up", "job": "node"}, [(1000, 1.0), (2000, 0.0)]),
            ({"__name__": "temp", "room": "a"}, [(1000, math.nan), (2000, STALE), (3000, 21.5)]),
        ]
    )
    batch = decode_write_request(body)
    up, temp = series_id("up", {"job": "node"}), series_id("temp", {"room": "a"})
    assert batch.series == {up: ("up", {"job": "node"}), temp: ("temp", {"room": "a"})}
    assert batch.series_ids == [up, up, temp, temp]
    assert batch.ts_ms == [1000, 2000, 1000, 3000]  # staleness marker dropped, plain NaN kept
    assert math.isnan(batch.values[2])
    assert batch.values[3] == 21.5


def test_dedupe_within_batch_keeps_last() -> None:
    body = build([({"__name__": "x"}, [(1000, 1.0), (1000, 2.0), (2000, 3.0)])])
    table = decode_write_request(body).samples_table()
    assert table.num_rows == 2
    assert dict(zip(table["ts"].cast("int64").to_pylist(), table["value"].to_pylist(), strict=True)) == {
        1000: 2.0,
        2000: 3.0,
    }
    assert table["day"][0].as_py().isoformat() == "1970-01-01"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not snappy at all \xff\xff", "snappy"),
        (bytes(cramjam.snappy.compress_raw(b"\xff\xff\xff garbage")), "WriteRequest"),
    ],
)
def test_undecodable_bodies(body: bytes, reason: str) -> None:
    with pytest.raises(RemoteWriteDecodeError, match=reason) as info:
        decode_write_request(body)
    assert "\n" not in str(info.value)


def test_series_without_name_rejected() -> None:
    with pytest.raises(RemoteWriteDecodeError, match="__name__"):
        decode_write_request(build([({"job": "x"}, [(1, 1.0)])]))

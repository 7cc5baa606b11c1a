"""The flush policy (rows OR bytes OR latency) and the per-partition offset bookkeeping."""

from __future__ import annotations

import pyarrow as pa

from shoal.ingest.buffer import DeadRecord, FlushBuffer, keep_mask
from shoal.ingest.spec import FlushPolicy


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def rows(topic: str, part: int, offsets: range, pad: int = 10) -> pa.RecordBatch:
    n = len(offsets)
    return pa.record_batch(
        {
            "v": pa.array(["x" * pad] * n),
            "_kafka_topic": pa.array([topic] * n),
            "_kafka_partition": pa.array([part] * n, pa.int32()),
            "_kafka_offset": pa.array(list(offsets), pa.int64()),
        }
    )


def dead(offset: int) -> DeadRecord:
    return DeadRecord("t", 0, offset, None, b"k", b"v" * 50, (), "DecodeError", "bad")


def test_rows_limit() -> None:
    buf = FlushBuffer(FlushPolicy(max_rows=100, max_bytes=10**9, max_latency_s=60), clock=Clock())
    buf.add(rows("t", 0, range(0, 60)), {("t", 0): (0, 60)}, records=60)
    assert buf.due() is None
    buf.add(rows("t", 0, range(60, 99)), {("t", 0): (60, 99)}, [dead(99)], records=40)
    assert buf.due() == "rows"  # dead letters count too


def test_bytes_limit() -> None:
    buf = FlushBuffer(FlushPolicy(max_rows=10**6, max_bytes=5000, max_latency_s=60), clock=Clock())
    buf.add(rows("t", 0, range(10), pad=100), {("t", 0): (0, 10)}, records=10)
    assert buf.due() is None
    buf.add(rows("t", 0, range(10, 60), pad=100), {("t", 0): (10, 60)}, records=50)
    assert buf.due() == "bytes"


def test_latency_limit_counts_from_first_record() -> None:
    clock = Clock()
    buf = FlushBuffer(FlushPolicy(max_rows=10**6, max_bytes=10**9, max_latency_s=5), clock=clock)
    clock.now += 100  # an idle buffer never becomes due
    assert buf.due() is None
    assert buf.seconds_until_due() == 5
    buf.add(None, {("t", 0): (0, 3)}, [dead(0), dead(1), dead(2)], records=3)
    clock.now += 4.9
    assert buf.due() is None
    assert 0 < buf.seconds_until_due() <= 0.1 + 1e-9
    clock.now += 0.1
    assert buf.due() == "latency"


def test_take_reports_offset_ranges_and_resets() -> None:
    buf = FlushBuffer(FlushPolicy(), clock=Clock())
    buf.add(rows("t", 0, range(5, 10)), {("t", 0): (5, 10)}, records=5)
    buf.add(rows("t", 1, range(0, 3)), {("t", 1): (0, 3)}, records=3)
    buf.add(rows("t", 0, range(12, 14)), {("t", 0): (12, 14)}, records=2)  # a gap (e.g. a txn marker)
    unit = buf.take("rows")
    assert unit.rows == 10
    assert unit.records == 10
    assert unit.first_offsets == {("t", 0): 5, ("t", 1): 0}
    assert unit.next_offsets == {("t", 0): 14, ("t", 1): 3}
    assert buf.empty
    assert buf.rows == 0
    assert buf.due() is None


def test_drop_lost_partitions() -> None:
    buf = FlushBuffer(FlushPolicy(), clock=Clock())
    buf.add(
        pa.concat_batches([rows("t", 0, range(0, 4)), rows("t", 1, range(0, 6))]),
        {("t", 0): (0, 4), ("t", 1): (0, 6)},
        [DeadRecord("t", 1, 6, None, None, b"", (), "E", "m")],
        records=11,
    )
    assert buf.drop_partitions([("t", 1)]) == 6
    unit = buf.take("shutdown")
    assert unit.rows == 4
    assert not unit.dead
    assert unit.next_offsets == {("t", 0): 4}


def test_keep_mask_drops_rows_below_committed_offsets() -> None:
    batch = pa.concat_batches(
        [rows("t", 0, range(0, 5)), rows("t", 1, range(0, 5)), rows("u", 0, range(0, 5))]
    )
    kept = batch.filter(keep_mask(batch, {("t", 0): 3, ("u", 0): None}))
    assert list(
        zip(kept.column("_kafka_topic").to_pylist(), kept.column("_kafka_offset").to_pylist(), strict=True)
    ) == [
        ("t", 3),
        ("t", 4),
        *[("t", i) for i in range(5)],
    ]

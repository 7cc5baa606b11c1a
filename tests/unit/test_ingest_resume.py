"""Offset-resume and zombie filtering of LakeSink on a real local lake (no broker needed)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from shoal.decode import DecodeSpec
from shoal.ingest import PipelineSpec, PipelineStopped
from shoal.ingest.buffer import DeadRecord, FlushUnit
from shoal.ingest.dead_letter import dead_letter_table
from shoal.ingest.metrics import IngestMetrics
from shoal.ingest.sink import LakeSink, Positions
from shoal.lake import Lake, progress

SPEC = PipelineSpec(
    name="p",
    topics=("t",),
    brokers="127.0.0.1:1",
    decode=DecodeSpec(format="json", infer=True),
    table="ns.events",
)


INT64 = pa.int64()


def rows(part: int, offsets: range, value_type: pa.DataType = INT64) -> pa.Table:
    n = len(offsets)
    return pa.table(
        {
            "v": pa.array(list(offsets), pa.int64()).cast(value_type),
            "_kafka_topic": pa.array(["t"] * n),
            "_kafka_partition": pa.array([part] * n, pa.int32()),
            "_kafka_offset": pa.array(list(offsets), pa.int64()),
        }
    )


def unit(
    data: pa.Table | None, ranges: dict[int, tuple[int, int]], dead: tuple[DeadRecord, ...] = ()
) -> FlushUnit:
    return FlushUnit(
        data=data,
        dead=dead,
        first_offsets={("t", p): r[0] for p, r in ranges.items()},
        next_offsets={("t", p): r[1] for p, r in ranges.items()},
        records=0,
        reason="test",
    )


def dead(offset: int, part: int = 0) -> DeadRecord:
    return DeadRecord("t", part, offset, 0, None, b"\xff", (("h", b"1"),), "DecodeError", "bad bytes")


@pytest.fixture
def sink(tmp_path: Path) -> LakeSink:
    return LakeSink(Lake(str(tmp_path / "lake")), SPEC, IngestMetrics("p"), max_attempts=2)


def offsets(sink: LakeSink) -> list[int]:
    return sorted(sink.lake.table("ns.events").to_arrow(columns=["_kafka_offset"]).column(0).to_pylist())


def test_new_partitions_have_no_position(sink: LakeSink) -> None:
    assert sink.positions([("t", 0)]) == {("t", 0): Positions(None, None)}


def test_commit_records_next_offsets_in_both_tables(sink: LakeSink) -> None:
    res = sink.commit(unit(rows(0, range(0, 9)), {0: (0, 10), 1: (0, 4)}, (dead(9),)))
    assert (res.rows, res.dead, res.skipped) == (9, 1, 0)
    assert sink.positions([("t", 0), ("t", 1)]) == {("t", 0): Positions(10, 10), ("t", 1): Positions(4, None)}


def test_replay_after_crash_between_dead_letter_and_data_commit(sink: LakeSink) -> None:
    sink.commit(unit(rows(0, range(0, 10)), {0: (0, 10)}))
    # a crash after step 1 of the next flush: dead letters (offset 12, txn 20) are in, rows are not
    dlq = sink.lake.create_table(SPEC.dlq_table, dead_letter_table([dead(12)], "p").schema)
    dlq.append(
        dead_letter_table([dead(12)], "p"), app_transactions={progress.kafka_offset(SPEC.name, "t", 0): 20}
    )
    # the restarted worker starts at the data table's position and replays 10..19
    assert sink.positions([("t", 0)])[("t", 0)] == Positions(10, 20)
    replay = rows(0, range(10, 20))
    replay = replay.filter(pa.compute.not_equal(replay.column("_kafka_offset"), 12))
    res = sink.commit(unit(replay, {0: (10, 20)}, (dead(12),)))
    assert (res.rows, res.dead, res.skipped) == (9, 0, 1)  # the dead letter is not written twice
    assert offsets(sink) == [o for o in range(20) if o != 12]
    assert sink.lake.table(SPEC.dlq_table).count() == 1


def test_zombie_batches_are_filtered(sink: LakeSink) -> None:
    sink.commit(unit(rows(0, range(0, 100)), {0: (0, 100)}))
    # a zombie still holding 0..49: everything dropped, and the txn version does not go backwards
    res = sink.commit(unit(rows(0, range(0, 50)), {0: (0, 50)}))
    assert (res.rows, res.skipped) == (0, 50)
    assert sink.positions([("t", 0)])[("t", 0)].data == 100
    # an overlapping batch 50..149: only 100..149 land
    res = sink.commit(unit(rows(0, range(50, 150)), {0: (50, 150)}))
    assert (res.rows, res.skipped) == (50, 50)
    assert offsets(sink) == list(range(150))
    assert sink.positions([("t", 0)])[("t", 0)].data == 150


def test_offsets_advance_without_rows(sink: LakeSink) -> None:
    sink.commit(unit(rows(0, range(0, 5)), {0: (0, 5)}))
    sink.commit(unit(None, {0: (5, 30)}))  # e.g. every record filtered out by transform_sql
    assert sink.positions([("t", 0)])[("t", 0)].data == 30
    assert offsets(sink) == list(range(5))


def test_incompatible_type_stops_without_committing(sink: LakeSink) -> None:
    sink.commit(unit(rows(0, range(0, 5)), {0: (0, 5)}))
    version = sink.lake.table("ns.events").version
    with pytest.raises(PipelineStopped, match=r"'v' is int64 in the table but string .*nothing committed"):
        sink.commit(unit(rows(0, range(5, 9), pa.string()), {0: (5, 10)}, (dead(9),)))
    assert sink.lake.table("ns.events").version == version
    assert not sink.lake.exists(SPEC.dlq_table)  # checked before the dead-letter commit
    assert sink.positions([("t", 0)])[("t", 0)] == Positions(5, None)

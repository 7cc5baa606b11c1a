"""The ingest loop over a record source other than Kafka: an in-memory log of JSON records.

The loop only knows the RecordSource protocol: where each partition starts comes from the lake
table (on_assign), so a second run over the same log resumes and writes nothing twice.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from shoal.decode import DecodeSpec
from shoal.ingest import IngestWorker, PipelineSpec, PipelineStopped
from shoal.ingest.buffer import FlushUnit
from shoal.ingest.metrics import IngestMetrics
from shoal.ingest.sink import LakeSink
from shoal.ingest.source import EARLIEST, LATEST, Record, RecordSource, SourceEvents
from shoal.lake import Lake

SPEC = PipelineSpec(
    name="mem",
    topics=("log",),
    brokers="memory",
    decode=DecodeSpec(format="json", infer=True),
    table="ns.mem_events",
    flush={"max_rows": 4, "max_latency_s": 0.05},
)


@dataclass(frozen=True)
class MemRecord:
    _topic: str
    _partition: int
    _offset: int
    _value: bytes

    def topic(self) -> str | None:
        return self._topic

    def partition(self) -> int | None:
        return self._partition

    def offset(self) -> int | None:
        return self._offset

    def key(self) -> bytes | None:
        return None

    def value(self) -> bytes | None:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_000 + self._offset)

    def headers(self) -> Any:
        return None


@dataclass
class MemorySource:
    """Two partitions of a fixed log; assigns both on the first poll, then reports their ends (on
    every poll at the end; ``end_once``: once, in the poll that returns the last records, as
    librdkafka's EOF event may come in the same batch)."""

    log: dict[tuple[str, int], list[bytes]]
    events: SourceEvents
    committed: dict[tuple[str, int], int] = field(default_factory=dict)
    end_once: bool = False
    _next: dict[tuple[str, int], int] | None = None
    _ended: set[tuple[str, int]] = field(default_factory=set)

    @property
    def fatal_error(self) -> str | None:
        return None

    def poll(self, max_records: int, timeout: float) -> Sequence[Record]:
        if self._next is None:
            starts = self.events.on_assign(sorted(self.log))
            self._next = {}
            for tp, start in starts.items():
                assert start != LATEST
                self._next[tp] = 0 if start == EARLIEST else start
        out: list[Record] = []
        for tp, values in self.log.items():
            nxt = self._next[tp]
            take = values[nxt : nxt + max_records - len(out)]
            out.extend(MemRecord(tp[0], tp[1], nxt + i, v) for i, v in enumerate(take))
            self._next[tp] = nxt + len(take)
            if self._next[tp] == len(values) and not (self.end_once and tp in self._ended):
                self._ended.add(tp)
                self.events.on_end(tp)
        return out

    def commit(self, positions: Mapping[tuple[str, int], int]) -> None:
        self.committed.update(positions)

    def close(self) -> None:
        pass


def memory_factory(
    log: dict[tuple[str, int], list[bytes]], opened: list[MemorySource], *, end_once: bool = False
) -> Callable[..., RecordSource]:
    def factory(
        spec: PipelineSpec,
        extra: Mapping[str, Any],
        events: SourceEvents,
        on_stats: Callable[[str], None] | None,
        logger: logging.Logger,
    ) -> RecordSource:
        source = MemorySource(log, events, end_once=end_once)
        opened.append(source)
        return source

    return factory


def run(lake: Lake, log: dict[tuple[str, int], list[bytes]], opened: list[MemorySource]) -> Any:
    worker = IngestWorker(
        lake, SPEC, source=memory_factory(log, opened), drain_idle_s=0.05, drain_timeout_s=2
    )
    return worker.run(until_drained=True)


def test_a_non_kafka_source_ingests_exactly_once(tmp_path: Path) -> None:
    log = {
        ("log", 0): [json.dumps({"n": i}).encode() for i in range(7)],
        ("log", 1): [json.dumps({"n": 100 + i}).encode() for i in range(3)] + [b"{not json"],
    }
    lake = Lake(str(tmp_path / "lake"))
    opened: list[MemorySource] = []
    stats = run(lake, log, opened)
    assert (stats.consumed, stats.committed_rows, stats.dead_lettered) == (11, 10, 1)
    assert stats.stopped == "drained"
    rows = lake.table("ns.mem_events").to_arrow(columns=["n", "_kafka_partition", "_kafka_offset"])
    assert sorted(rows.column("n").to_pylist()) == [*range(7), 100, 101, 102]
    assert lake.table("ns.mem_events_dead_letters").to_arrow(columns=["offset"]).column(0).to_pylist() == [3]
    assert opened[0].committed == {("log", 0): 7, ("log", 1): 4}

    # the same log again: each partition starts where the table says, nothing is written twice
    log[("log", 0)].append(json.dumps({"n": 7}).encode())
    again = run(lake, log, opened)
    assert (again.consumed, again.committed_rows, again.dead_lettered) == (1, 1, 0)
    assert lake.table("ns.mem_events").count() == 11
    assert lake.table("ns.mem_events_dead_letters").count() == 1


def test_an_end_reported_with_the_last_records_drains_the_worker(tmp_path: Path) -> None:
    # MemorySource(end_once) reports a partition's end in the same poll that returns its last records, as
    # librdkafka does when its EOF event comes in the same batch: the end must outlive accepting
    # them, or only the long idle timeout stops the worker
    log = {("log", 0): [json.dumps({"n": i}).encode() for i in range(6)], ("log", 1): [b'{"n": 9}']}
    lake = Lake(str(tmp_path / "lake"))
    opened: list[MemorySource] = []
    factory = memory_factory(log, opened, end_once=True)
    worker = IngestWorker(lake, SPEC, source=factory, drain_idle_s=0.05, drain_timeout_s=120)
    stats = worker.run(until_drained=True)
    assert stats.stopped == "drained"
    assert stats.committed_rows == 7
    assert stats.duration_s < 60  # by the ends, not by the 120 s without any


def test_a_stale_end_in_a_batch_is_not_reported() -> None:
    # an EOF event followed, in the same consumed batch, by records of its partition: more came
    from confluent_kafka import KafkaError

    from shoal.sources.kafka import KafkaSource

    @dataclass
    class Msg:
        t: str
        p: int
        o: int
        eof: bool = False

        def error(self) -> KafkaError | None:
            return KafkaError(KafkaError._PARTITION_EOF) if self.eof else None

        def topic(self) -> str:
            return self.t

        def partition(self) -> int:
            return self.p

        def offset(self) -> int:
            return self.o

    batch = [Msg("t", 0, 5), Msg("t", 0, -1, eof=True), Msg("t", 1, 2), Msg("t", 1, -1, eof=True)]
    batch += [Msg("t", 0, 6), Msg("t", 2, -1, eof=True)]

    class Consumer:
        def consume(self, num_messages: int, timeout: float) -> list[Msg]:
            return batch

    ends: list[tuple[str, int]] = []
    source = KafkaSource(
        {"bootstrap.servers": "127.0.0.1:9", "group.id": "g"},
        ["t"],
        on_assign=lambda tps: {},
        on_revoke=lambda tps: None,
        on_lost=lambda tps: None,
        on_end=ends.append,
    )
    try:
        real, source._consumer = source._consumer, Consumer()  # type: ignore[assignment]
        records = source.poll(10, 0.1)
    finally:
        real.close()
    assert [(m.partition(), m.offset()) for m in records] == [(0, 5), (1, 2), (0, 6)]
    assert ends == [("t", 1), ("t", 2)]  # partition 0's end came before its offset 6


def test_pipeline_stopped_names_the_pipeline_and_table(tmp_path: Path) -> None:
    sink = LakeSink(Lake(str(tmp_path / "lake")), SPEC, IngestMetrics(SPEC.name), max_attempts=2)

    def unit(value: pa.Array, first: int) -> FlushUnit:
        data = pa.table(
            {
                "v": value,
                "_kafka_topic": pa.array(["log"]),
                "_kafka_partition": pa.array([0], pa.int32()),
                "_kafka_offset": pa.array([first], pa.int64()),
            }
        )
        return FlushUnit(data, (), {("log", 0): first}, {("log", 0): first + 1}, 1, "test")

    sink.commit(unit(pa.array([1], pa.int64()), 0))
    with pytest.raises(PipelineStopped) as caught:
        sink.commit(unit(pa.array([[1]], pa.list_(pa.int64())), 1))
    assert (caught.value.pipeline, caught.value.table) == ("mem", "ns.mem_events")
    assert "nothing committed" in str(caught.value)


def _slow_commits(
    worker: IngestWorker, seconds: float, fail_at: int | None = None
) -> list[tuple[float, float]]:
    """Make each commit of ``worker`` take ``seconds``; the ``fail_at``-th (1-based) raises."""
    spans: list[tuple[float, float]] = []
    real = worker.sink.commit

    def commit(unit: FlushUnit) -> Any:
        t0 = time.monotonic()
        time.sleep(seconds)
        if fail_at is not None and len(spans) + 1 == fail_at:
            spans.append((t0, time.monotonic()))
            raise OSError("disk gone")
        result = real(unit)
        spans.append((t0, time.monotonic()))
        return result

    worker.sink.commit = commit  # type: ignore[method-assign]
    return spans


def _polls(opened: list[MemorySource]) -> list[float]:
    return opened[0].polled


class TimedSource(MemorySource):
    def __init__(self, log: dict[tuple[str, int], list[bytes]], events: SourceEvents) -> None:
        super().__init__(log, events)
        self.polled: list[float] = []

    def poll(self, max_records: int, timeout: float) -> Sequence[Record]:
        out = super().poll(max_records, timeout)
        if out:
            self.polled.append(time.monotonic())
        return out


def _worker(
    lake: Lake, log: dict[tuple[str, int], list[bytes]], opened: list[MemorySource], spec: PipelineSpec = SPEC
) -> IngestWorker:
    def factory(spec: PipelineSpec, extra: Mapping[str, Any], events: SourceEvents, *_: Any) -> RecordSource:
        source = TimedSource(log, events)
        opened.append(source)
        return source

    return IngestWorker(lake, spec, source=factory, drain_idle_s=0.05, drain_timeout_s=2)


def test_commits_overlap_consuming_and_land_in_order_exactly_once(tmp_path: Path) -> None:
    log = {("log", 0): [json.dumps({"n": i}).encode() for i in range(10)], ("log", 1): [b'{"n": 100}']}
    lake = Lake(str(tmp_path / "lake"))
    opened: list[MemorySource] = []
    worker = _worker(lake, log, opened)
    spans = _slow_commits(worker, 0.3)
    stats = worker.run(until_drained=True)
    assert (stats.consumed, stats.committed_rows, stats.flushes) == (11, 11, len(spans))
    assert len(spans) >= 2
    # one commit at a time, in order; records were consumed while a commit was running
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
    assert any(s < t < e for s, e in spans for t in _polls(opened))
    table = lake.table("ns.mem_events")
    assert sorted(table.to_arrow(columns=["n"]).column(0).to_pylist()) == [*range(10), 100]
    assert table.version == len(spans)  # one Delta commit per flush (version 0 created the table)
    assert opened[0].committed == {("log", 0): 10, ("log", 1): 1}


def test_a_failed_commit_in_flight_stops_the_worker_with_nothing_after_it(tmp_path: Path) -> None:
    log = {("log", 0): [json.dumps({"n": i}).encode() for i in range(12)]}
    lake = Lake(str(tmp_path / "lake"))
    opened: list[MemorySource] = []
    worker = _worker(lake, log, opened)
    _slow_commits(worker, 0.1, fail_at=2)
    with pytest.raises(OSError, match="disk gone"):
        worker.run(until_drained=True)
    # the first flush (4 rows) is in and its offsets committed; nothing of or after the failed one
    assert sorted(lake.table("ns.mem_events").to_arrow(columns=["n"]).column(0).to_pylist()) == [0, 1, 2, 3]
    assert opened[0].committed == {("log", 0): 4}
    again = run(lake, log, [])
    assert (again.consumed, again.committed_rows) == (8, 8)
    assert lake.table("ns.mem_events").count() == 12


def _slow_builds(
    worker: IngestWorker, seconds: float, fail_at: int | None = None
) -> list[tuple[float, float, int]]:
    """Make each batch's decode + build on the decode thread take ``seconds``; the ``fail_at``-th
    (1-based) raises. Returns (start, end, first offset) of each."""
    spans: list[tuple[float, float, int]] = []
    real = worker._build

    def build(kept: Sequence[Record], *args: Any) -> Any:
        t0 = time.monotonic()
        time.sleep(seconds)
        if fail_at is not None and len(spans) + 1 == fail_at:
            spans.append((t0, time.monotonic(), kept[0].offset() or 0))
            raise OSError("decoder gone")
        built = real(kept, *args)
        spans.append((t0, time.monotonic(), kept[0].offset() or 0))
        return built

    worker._build = build  # type: ignore[method-assign]
    return spans


def test_batches_decode_while_the_next_is_consumed_and_land_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("shoal.ingest.runner.PIPELINE_MIN_RECORDS", 1)  # every batch is a backlog's
    log = {("log", 0): [json.dumps({"n": i}).encode() for i in range(10)], ("log", 1): [b'{"n": 100}']}
    lake = Lake(str(tmp_path / "lake"))
    opened: list[MemorySource] = []
    # batches of 2 into flushes of 4: the first batch of a flush decodes while the second is consumed
    worker = _worker(lake, log, opened, SPEC.model_copy(update={"consume_batch": 2}))
    spans = _slow_builds(worker, 0.2)
    stats = worker.run(until_drained=True)
    assert (stats.consumed, stats.committed_rows) == (11, 11)
    # one decode at a time, in consumed order; a batch was consumed while another was decoding
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
    assert any(s < t < e for s, e, _ in spans for t in _polls(opened))
    rows = lake.table("ns.mem_events").to_arrow(columns=["n", "_kafka_offset", "_kafka_partition"])
    got = sorted(zip(*(c.to_pylist() for c in rows.columns), strict=True), key=lambda r: (r[2], r[1]))
    assert [r[0] for r in got] == [*range(10), 100]
    assert lake.table("ns.mem_events").version == stats.flushes >= 3  # flushes of at most 4 rows
    assert opened[0].committed == {("log", 0): 10, ("log", 1): 1}


def test_a_failed_decode_stops_the_worker_with_nothing_of_it_or_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("shoal.ingest.runner.PIPELINE_MIN_RECORDS", 1)
    log = {("log", 0): [json.dumps({"n": i}).encode() for i in range(12)]}
    lake = Lake(str(tmp_path / "lake"))
    opened: list[MemorySource] = []
    worker = _worker(lake, log, opened, SPEC.model_copy(update={"consume_batch": 2}))
    spans = _slow_builds(worker, 0.05, fail_at=3)
    with pytest.raises(OSError, match="decoder gone"):
        worker.run(until_drained=True)
    failed_from = spans[2][2]
    committed = lake.table("ns.mem_events").to_arrow(columns=["n"]).column(0).to_pylist()
    assert sorted(committed) == list(range(len(committed)))
    assert len(committed) <= failed_from  # nothing of the failed batch, nothing consumed after it
    again = run(lake, log, [])
    assert again.committed_rows == 12 - len(committed)
    final = lake.table("ns.mem_events").to_arrow(columns=["n"]).column(0).to_pylist()
    assert sorted(final) == list(range(12))

"""The ingest loop over a record source other than Kafka: an in-memory log of JSON records.

The loop only knows the RecordSource protocol: where each partition starts comes from the lake
table (on_assign), so a second run over the same log resumes and writes nothing twice.
"""

from __future__ import annotations

import json
import logging
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
    """Two partitions of a fixed log; assigns both on the first poll, then reports their ends."""

    log: dict[tuple[str, int], list[bytes]]
    events: SourceEvents
    committed: dict[tuple[str, int], int] = field(default_factory=dict)
    _next: dict[tuple[str, int], int] | None = None

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
            if self._next[tp] == len(values):
                self.events.on_end(tp)
        return out

    def commit(self, positions: Mapping[tuple[str, int], int]) -> None:
        self.committed.update(positions)

    def close(self) -> None:
        pass


def memory_factory(
    log: dict[tuple[str, int], list[bytes]], opened: list[MemorySource]
) -> Callable[..., RecordSource]:
    def factory(
        spec: PipelineSpec,
        extra: Mapping[str, Any],
        events: SourceEvents,
        on_stats: Callable[[str], None] | None,
        logger: logging.Logger,
    ) -> RecordSource:
        source = MemorySource(log, events)
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

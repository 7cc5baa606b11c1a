"""The ingest worker on support-ticket events replayed from memory: no broker, one process.

    .venv/bin/python bench/bench_ingest_memory.py [--events 200000] [--pipeline-min N] [--switch-interval S]

Runs ``IngestWorker`` (decode, transform, buffer, exactly-once commits into a local lake) over a
record source that builds fresh ``confluent_kafka.Message`` objects on every poll, as ``consume()``
does. Without a broker and its fetches, the run isolates the worker's own CPU and threads; it
prints the worker's rate (first record → last commit), CPU seconds per million events (process
time of the run, all threads) and its stage timings. ``--pipeline-min`` sets
``shoal.ingest.runner.PIPELINE_MIN_RECORDS`` (a huge value decodes every batch before the next
poll, the behaviour before ADR 0048); ``--switch-interval`` sets ``sys.setswitchinterval``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

from confluent_kafka import Message

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from harness.ingest import write_pipeline_project  # noqa: E402
from shoal.ingest import runner  # noqa: E402
from shoal.ingest.runner import IngestWorker, resolve_pipeline  # noqa: E402
from shoal.ingest.source import RecordSource, SourceEvents  # noqa: E402
from shoal.usecases.support import MESSAGE, PROTO_FILE  # noqa: E402
from shoal.usecases.support.simulator import SupportSimulator  # noqa: E402

PARTITIONS = 6


class Replay:
    """Six partitions of a fixed log, assigned on the first poll; Message objects built per poll."""

    fatal_error = None

    def __init__(self, log: list[tuple[int, int, bytes, bytes]], events: SourceEvents) -> None:
        self.log = log
        self.events = events
        self.pos = 0
        self.assigned = False

    def poll(self, max_records: int, timeout: float) -> Sequence[Message]:
        if not self.assigned:
            self.events.on_assign([("t", p) for p in range(PARTITIONS)])
            self.assigned = True
        chunk = self.log[self.pos : self.pos + max_records]
        self.pos += len(chunk)
        if not chunk:
            for p in range(PARTITIONS):
                self.events.on_end(("t", p))
            time.sleep(min(timeout, 0.01))
            return []
        return [
            Message(topic="t", partition=p, offset=o, key=k, value=v, timestamp=(1, 1_767_571_200_000 + o))
            for p, o, k, v in chunk
        ]

    def commit(self, positions: Mapping[tuple[str, int], int]) -> None:
        pass

    def close(self) -> None:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--pipeline-min", type=int)
    ap.add_argument("--switch-interval", type=float)
    args = ap.parse_args()
    if args.pipeline_min is not None:
        runner.PIPELINE_MIN_RECORDS = args.pipeline_min
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)

    n = args.events
    sim = SupportSimulator(42, datetime(2026, 1, 5), days=n // 60_000 + 1, tickets_per_day=10_000)
    log = [(i % PARTITIONS, i // PARTITIONS, k, v) for i, (k, v) in enumerate(islice(sim.encoded(), n))]
    work = Path(tempfile.mkdtemp(prefix="shoal-bench-ingest-memory-"))
    project = write_pipeline_project(
        work / "proj",
        name="bench",
        topic="t",
        brokers="memory",
        decode={"format": "protobuf", "proto_file": str(PROTO_FILE), "message": MESSAGE},
        partition_by=[{"column": "event_date", "from": "occurred_at", "transform": "day"}],
        flush={"max_rows": 100_000, "max_latency_s": 5},
    )

    def source(_spec: Any, _extra: Any, events: SourceEvents, *_: Any) -> RecordSource:
        return Replay(log, events)

    factory: Callable[..., RecordSource] = source
    worker = IngestWorker(project.lake, resolve_pipeline(project, "bench"), source=factory, drain_idle_s=0.05)
    logging.getLogger("shoal").setLevel(logging.WARNING)
    cpu0 = time.process_time()
    stats = worker.run(until_drained=True)
    cpu = time.process_time() - cpu0
    assert stats.committed_rows == n, f"committed {stats.committed_rows} of {n}"
    print(
        json.dumps(
            {
                "events": n,
                "pipeline_min_records": runner.PIPELINE_MIN_RECORDS,
                "switch_interval": sys.getswitchinterval(),
                "ev_s_first_record_to_last_commit": round(n / stats.active_s),
                "cpu_s_per_million": round(cpu / n * 1e6, 2),
                "stage_seconds": stats.timings,
            }
        )
    )


if __name__ == "__main__":
    main()

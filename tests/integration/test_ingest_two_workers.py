"""Two workers share a 6-partition topic; one is killed with SIGKILL mid-way and the survivor takes
over its partitions from the table's offsets: no loss, no duplicate.

Runs on tansu, which evicts a dead group member after session.timeout.ms (noida-db never does).
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from itertools import islice
from pathlib import Path

import pyarrow.compute as pc
import pytest

from harness.ingest import WorkerProcess, write_pipeline_project
from shoal.sources.kafka.producer import produce_events
from shoal.usecases.support import MESSAGE, PROTO_FILE
from shoal.usecases.support.simulator import SupportSimulator

pytestmark = pytest.mark.integration

EVENTS = 60_000


def _assigned(log: Path) -> list[dict]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{") and '"partitions assigned"' in line:
            out.append(json.loads(line))
    return out


def _wait(cond, timeout: float, what: str, workers=()) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            tails = "\n---\n".join(w.log_tail(15) for w in workers)
            raise AssertionError(f"timed out waiting for {what}\n{tails}")
        time.sleep(0.25)


def test_survivor_takes_over_a_killed_worker(tansu_broker, tmp_path: Path) -> None:
    topic = tansu_broker.create_topic(f"two-workers-{time.monotonic_ns()}", partitions=6)
    events = list(
        islice(SupportSimulator(21, datetime(2026, 5, 1), days=5, tickets_per_day=2000).encoded(), EVENTS)
    )
    produce_events(tansu_broker.bootstrap, topic, events)
    project = write_pipeline_project(
        tmp_path / "proj",
        name="tickets",
        topic=topic,
        brokers=tansu_broker.bootstrap,
        decode={"format": "protobuf", "proto_file": str(PROTO_FILE), "message": MESSAGE},
        flush={"max_rows": 2000, "max_latency_s": 1},
        consume_batch=1000,
    )
    table = "support.ticket_events"
    client = dict(tansu_broker.consumer_overrides)
    a = WorkerProcess(project.dir, "tickets", client=client, log_path=tmp_path / "a.log").start()
    b = WorkerProcess(project.dir, "tickets", client=client, log_path=tmp_path / "b.log").start()
    try:
        # both members own partitions, and both have committed something
        _wait(
            lambda: (
                any(len(x["start_offsets"]) < 6 for x in _assigned(a.log_path))
                and any(len(x["start_offsets"]) < 6 for x in _assigned(b.log_path))
            ),
            90,
            "a split assignment",
            (a, b),
        )
        _wait(
            lambda: project.lake.exists(table) and project.lake.table(table).count() > 5000,
            90,
            "progress",
            (a, b),
        )
        before = len(_assigned(a.log_path))
        b.kill()
        killed_at = project.lake.table(table).count()
        assert killed_at < EVENTS, "worker b was killed too late to matter"
        _wait(
            lambda: any(len(x["start_offsets"]) == 6 for x in _assigned(a.log_path)[before:]),
            90,
            "takeover",
            (a,),
        )
        _wait(lambda: project.lake.table(table).count() >= EVENTS, 180, "all events", (a,))
        assert a.terminate(60) == 0, a.log_tail()
    finally:
        a.kill()
        b.kill()
    data = project.lake.table(table).to_arrow(columns=["event_id", "_kafka_partition"])
    assert data.num_rows == EVENTS
    assert len(pc.unique(data.column("event_id"))) == EVENTS
    assert set(data.column("_kafka_partition").to_pylist()) == set(range(6))

"""Exactly-once under kill -9: a worker is killed at random moments and restarted; every event lands once."""

from __future__ import annotations

import random
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

EVENTS = 200_000
KILLS = 10


def ticket_events(n: int, seed: int = 7) -> list[tuple[bytes, bytes]]:
    sim = SupportSimulator(seed, datetime(2026, 1, 5), days=6, tickets_per_day=6000)
    events = list(islice(sim.encoded(), n))
    assert len(events) == n
    return events


def test_kill_9_ten_times_then_every_event_exactly_once(kafka_broker, kafka_topic, tmp_path: Path) -> None:
    topic = kafka_topic(partitions=3)
    events = ticket_events(EVENTS)
    # Events arrive while the workers are being killed (a chunk before each worker starts), so
    # every kill lands on real ingestion work, however fast the machine drains a backlog.
    chunk = EVENTS // KILLS
    project = write_pipeline_project(
        tmp_path / "proj",
        name="tickets",
        topic=topic,
        brokers=kafka_broker.bootstrap,
        decode={"format": "protobuf", "proto_file": str(PROTO_FILE), "message": MESSAGE},
        partition_by=[{"column": "event_date", "from": "occurred_at", "transform": "day"}],
        flush={"max_rows": 3000, "max_latency_s": 1},
    )
    # noida-db never evicts a SIGKILLed member; a static member that comes back is reassigned at once.
    client = {
        **kafka_broker.consumer_overrides,
        "group.instance.id": "crash-worker",
        "session.timeout.ms": 10000,
    }
    rng = random.Random(1234)
    table_name = "support.ticket_events"
    versions = []
    produced = 0
    for i in range(KILLS):
        produced += produce_events(kafka_broker.bootstrap, topic, events[i * chunk : (i + 1) * chunk])
        worker = WorkerProcess(project.dir, "tickets", client=client, log_path=tmp_path / f"w{i}.log").start()
        worker.wait_first_commit()  # then killed at a random moment
        time.sleep(rng.uniform(0.0, 2.5))
        assert worker.running, f"worker {i} exited early:\n{worker.log_tail()}"
        worker.kill()
        if project.lake.exists(table_name):
            versions.append(project.lake.table(table_name).version)
    assert produced == EVENTS
    final = WorkerProcess(
        project.dir, "tickets", client=client, until_drained=True, log_path=tmp_path / "final.log"
    )
    rc = final.start().wait(240)
    assert rc == 0, final.log_tail()

    # the kills interrupted real progress, not just start-up
    assert len(set(versions)) >= 3, versions
    table = project.lake.table(table_name)
    ids = table.to_arrow(columns=["event_id", "_kafka_partition", "_kafka_offset"])
    assert ids.num_rows == EVENTS
    assert len(pc.unique(ids.column("event_id"))) == EVENTS
    keys = ids.group_by(["_kafka_partition", "_kafka_offset"]).aggregate([])
    assert keys.num_rows == EVENTS
    assert not project.lake.exists(f"{table_name}_dead_letters")

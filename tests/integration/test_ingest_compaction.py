"""Background compaction while a pipeline ingests: small files are merged, no event lost or doubled."""

from __future__ import annotations

from datetime import datetime
from itertools import islice
from pathlib import Path

import pyarrow.compute as pc
import pytest

from harness.ingest import write_pipeline_project
from shoal.ingest import run_pipeline
from shoal.sources.kafka.producer import produce_events
from shoal.usecases.support import MESSAGE, PROTO_FILE
from shoal.usecases.support.simulator import SupportSimulator

pytestmark = pytest.mark.integration

EVENTS = 24_000


def test_compaction_runs_beside_ingestion(kafka_broker, kafka_topic, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    topic = kafka_topic(partitions=2)
    events = list(
        islice(SupportSimulator(3, datetime(2026, 5, 1), days=2, tickets_per_day=3000).encoded(), EVENTS)
    )
    assert produce_events(kafka_broker.bootstrap, topic, events) == EVENTS
    project = write_pipeline_project(
        tmp_path / "proj",
        name="tickets",
        topic=topic,
        brokers=kafka_broker.bootstrap,
        decode={"format": "protobuf", "proto_file": str(PROTO_FILE), "message": MESSAGE},
        # one small file per flush; compaction every 4 commits, in the background
        flush={"max_rows": 1000, "max_latency_s": 0.5},
        compaction={"every_commits": 4},
        consume_batch=1000,
    )
    stats = run_pipeline(
        project, "tickets", until_drained=True, extra_client_config=kafka_broker.client_overrides
    )
    assert stats.committed_rows == EVENTS

    table = project.lake.table("support.ticket_events")
    operations = [h["operation"] for h in table.history()]
    assert "OPTIMIZE" in operations, operations  # compaction committed while ingestion went on
    assert operations.count("WRITE") >= EVENTS // 1000  # ingestion was not held back into one commit
    info = project.lake.describe("support.ticket_events")
    assert info.num_files < operations.count("WRITE")  # small files were merged
    ids = table.to_arrow(columns=["event_id"]).column("event_id")
    assert len(ids) == EVENTS
    assert len(pc.unique(ids)) == EVENTS

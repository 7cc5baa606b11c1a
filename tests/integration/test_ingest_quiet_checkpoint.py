"""A worker whose commits pause checkpoints the latest version of its table (ADR 0057)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest

from harness.ingest import write_pipeline_project
from harness.ports import wait_until
from shoal.ingest import RunStats, run_pipeline
from shoal.lake.catalog import CHECKPOINT_INTERVAL, QUIET_CHECKPOINT_S
from shoal.project import Project
from shoal.sources.kafka.producer import produce_events
from shoal.usecases.support import MESSAGE, PROTO_FILE
from shoal.usecases.support.simulator import SupportSimulator

pytestmark = pytest.mark.integration

TABLE = "support.ticket_events"


def _wait(cond: Callable[[], bool], timeout: float, what: str) -> None:
    wait_until(cond, timeout=timeout, what=what, interval=0.2)


def _tickets(tmp_path: Path, broker: Any, topic: str, max_rows: int) -> Project:
    """A pipeline of support-ticket events committing every ``max_rows`` (a commit per flush)."""
    return write_pipeline_project(
        tmp_path / "proj",
        name="tickets",
        topic=topic,
        brokers=broker.bootstrap,
        decode={"format": "protobuf", "proto_file": str(PROTO_FILE), "message": MESSAGE},
        flush={"max_rows": max_rows, "max_latency_s": 0.3},
        consume_batch=max_rows,
    )


def test_a_paused_worker_checkpoints_its_latest_version(kafka_broker, kafka_topic, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    topic = kafka_topic(partitions=2)
    events = list(
        islice(SupportSimulator(5, datetime(2026, 6, 1), days=2, tickets_per_day=3000).encoded(), 16_000)
    )
    first, second = events[:12_000], events[12_000:]
    produce_events(kafka_broker.bootstrap, topic, first)
    # more commits than the checkpoint interval, so the interval's checkpoint exists and lags
    project = _tickets(tmp_path, kafka_broker, topic, 1000)
    lake = project.lake
    stop = threading.Event()
    result: list[RunStats | BaseException] = []

    def work() -> None:
        try:
            result.append(
                run_pipeline(
                    project, "tickets", stop_event=stop, extra_client_config=kafka_broker.client_overrides
                )
            )
        except BaseException as exc:
            result.append(exc)

    def rows() -> int:
        return lake.table(TABLE).count() if lake.exists(TABLE) else 0

    worker = threading.Thread(target=work)
    worker.start()
    try:
        _wait(lambda: rows() >= len(first) or not worker.is_alive(), 120, "the first events")
        table = lake.table(TABLE)
        version = table.version
        assert version >= CHECKPOINT_INTERVAL, "the test needs more commits than the interval"
        # checkpointed while the worker runs, once its commits have paused
        _wait(lambda: table.last_checkpoint() == version, QUIET_CHECKPOINT_S + 15, "the quiet checkpoint")
        assert worker.is_alive()
        assert lake.table(TABLE).version == version  # a checkpoint is not a commit
        log = tmp_path / "proj" / "lake" / "support" / "ticket_events" / "_delta_log"
        assert len(list(log.glob("*.checkpoint.parquet"))) < version  # not one per commit

        produce_events(kafka_broker.bootstrap, topic, second)  # a second burst, a second pause
        _wait(lambda: rows() >= len(events) or not worker.is_alive(), 120, "the second events")
        again = lake.table(TABLE).version
        assert again > version
        _wait(lambda: table.last_checkpoint() == again, QUIET_CHECKPOINT_S + 15, "the second checkpoint")
    finally:
        stop.set()
        worker.join(60)
    assert result, "the worker thread returned nothing"
    assert isinstance(result[0], RunStats), result
    ids = lake.table(TABLE).to_arrow(columns=["event_id"]).column("event_id")
    assert len(ids) == len(events)
    assert len(pc.unique(ids)) == len(events)


def test_a_drained_worker_leaves_its_tables_checkpointed(kafka_broker, kafka_topic, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    topic = kafka_topic(partitions=1)
    events = list(
        islice(SupportSimulator(6, datetime(2026, 6, 1), days=1, tickets_per_day=3000).encoded(), 3_000)
    )
    events.insert(1500, (b"poison", b"\x08\x96"))  # a poison record: the dead-letter table gets a commit too
    produce_events(kafka_broker.bootstrap, topic, events)
    project = _tickets(tmp_path, kafka_broker, topic, 500)
    stats = run_pipeline(
        project, "tickets", until_drained=True, extra_client_config=kafka_broker.client_overrides
    )
    assert stats.committed_rows == len(events) - 1
    assert stats.dead_lettered == 1
    lake = project.lake
    for name in (TABLE, "support.ticket_events_dead_letters"):
        table = lake.table(name)
        assert table.last_checkpoint() == table.version, name

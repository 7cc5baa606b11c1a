"""The broker is stopped and restarted mid-stream: the running worker loses and duplicates nothing."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from itertools import islice
from pathlib import Path

import httpx
import pyarrow.compute as pc
import pytest

from harness.ingest import write_pipeline_project
from harness.ports import free_port
from shoal.ingest import RunStats, run_pipeline
from shoal.sources.kafka.producer import produce_events
from shoal.usecases.support import MESSAGE, PROTO_FILE
from shoal.usecases.support.simulator import SupportSimulator

pytestmark = pytest.mark.integration


def _count(project, table: str) -> int:
    return project.lake.table(table).count() if project.lake.exists(table) else 0


def _wait(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_broker_stop_and_start_mid_stream(kafka_broker_factory, tmp_path: Path) -> None:
    broker = kafka_broker_factory()  # private: this test stops it
    topic = broker.create_topic("restart-tickets", partitions=3)
    events = list(
        islice(SupportSimulator(11, datetime(2026, 4, 1), days=3, tickets_per_day=2000).encoded(), 30_000)
    )
    first, second = events[:15_000], events[15_000:]
    produce_events(broker.bootstrap, topic, first)
    project = write_pipeline_project(
        tmp_path / "proj",
        name="tickets",
        topic=topic,
        brokers=broker.bootstrap,
        decode={"format": "protobuf", "proto_file": str(PROTO_FILE), "message": MESSAGE},
        flush={"max_rows": 3000, "max_latency_s": 0.5},
    )
    table = "support.ticket_events"
    stop = threading.Event()
    port = free_port()
    result: list[RunStats | BaseException] = []

    def work() -> None:
        try:
            result.append(
                run_pipeline(
                    project,
                    "tickets",
                    stop_event=stop,
                    metrics_port=port,
                    extra_client_config={**broker.consumer_overrides, "reconnect.backoff.max.ms": 1000},
                )
            )
        except BaseException as exc:
            result.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    try:
        _wait(lambda: _count(project, table) > 0, 60, "the first commits")
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        committed = [ln for ln in metrics.splitlines() if ln.startswith("shoal_ingest_rows_committed_total{")]
        assert committed, metrics[:500]
        assert float(committed[0].rsplit(" ", 1)[1]) > 0
        assert "shoal_ingest_decode_seconds_bucket" in metrics
        broker.stop()
        time.sleep(3)  # the worker keeps polling a dead broker
        broker.start()
        produce_events(broker.bootstrap, topic, second)
        _wait(lambda: _count(project, table) >= len(events) or not worker.is_alive(), 120, "all events")
    finally:
        stop.set()
        worker.join(60)
    assert result, "the worker thread returned nothing"
    assert isinstance(result[0], RunStats), result
    data = project.lake.table(table).to_arrow(columns=["event_id"])
    assert data.num_rows == len(events)
    assert len(pc.unique(data.column("event_id"))) == len(events)

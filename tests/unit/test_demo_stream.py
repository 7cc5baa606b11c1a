"""The demo's streaming helper on the embedded Kafka: every event lands exactly once, with the
backlog bounded (the embedded cluster evicts old data), and a loss fails the step loudly."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shoal.config import init_project
from shoal.demo import DemoContext, DemoError, kafka_embedded
from shoal.project import Project
from shoal.sources.kafka.producer import produce_events
from shoal.usecases.billing import BillingSimulator, demo_step
from shoal.usecases.billing.events import PROTO_PATH

# flushes well below the backlog bound come from max_latency_s: keep the test quick
PIPELINE = demo_step.PIPELINE.replace("max_latency_s: 5", "max_latency_s: 0.5")
assert PIPELINE != demo_step.PIPELINE


def _run(tmp_path: Path, produce: Any) -> dict[str, Any]:
    init_project(tmp_path / "p", "t")
    ctx = DemoContext(project=Project.load(tmp_path / "p"), small=True, quiet=True)
    sim = BillingSimulator(seed=3, start=datetime(2026, 10, 1, tzinfo=UTC), days=2, users=300)
    return kafka_embedded.stream_use_case(
        ctx,
        pipeline="billing_usage",
        pipeline_yaml=PIPELINE,
        proto=PROTO_PATH,
        topic="t-usage",
        topic_env="BILLING_TOPIC",
        events=sim.encoded(),
        models=(),
        try_sql="select 1",
        produce=produce,
    )


def test_every_event_lands_once_with_a_bounded_backlog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kafka_embedded, "CHUNK", 4_000)
    monkeypatch.setattr(kafka_embedded, "MAX_BACKLOG", 10_000)
    backlog: list[int] = []
    original = kafka_embedded._Feeder.wait_for

    def spy(self: kafka_embedded._Feeder, target: int) -> bool:
        ok = original(self, target)
        if target != self.produced:  # before a chunk: what will be pending once it is produced
            chunk = target - self.produced + 10_000
            backlog.append(self.produced - self.landed() + chunk)
        return ok

    monkeypatch.setattr(kafka_embedded._Feeder, "wait_for", spy)
    out = _run(tmp_path, produce_events)
    assert out["produced"] > 20_000  # several chunks and several flushes
    assert out["ingest"]["committed_rows"] == out["produced"]
    assert len(backlog) > 5
    assert max(backlog) <= 10_000


def test_a_lost_event_fails_the_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_embedded, "STALL_S", 3.0)

    def lossy(bootstrap: str, topic: str, events: Iterable[tuple[bytes, bytes]]) -> int:
        batch = list(events)
        produce_events(bootstrap, topic, batch[1:])  # one event never reaches the broker
        return len(batch)

    with pytest.raises(DemoError, match="stalled"):
        _run(tmp_path, lossy)

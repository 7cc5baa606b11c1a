"""Revenue refreshed in the ingest commit (pipeline option ``refresh:``, ADR 0038), with a real
broker: the worker keeps the revenue path fresh by itself, exact to the cent against the Decimal
reference, also after kill -9 of the worker at random moments (10 times) mid-stream."""

from __future__ import annotations

import json
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness.ingest import WorkerProcess, write_pipeline_project
from shoal.lake import Lake
from shoal.models import ModelRunner
from shoal.project import Project
from shoal.sources.kafka.producer import produce_events
from shoal.usecases.billing import models, reference
from shoal.usecases.billing.events import PROTO_PATH, encode_events
from shoal.usecases.billing.simulator import BillingSimulator

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_billing_models import keyed

pytestmark = pytest.mark.integration

FAST_PATH = ("billing.charges_hourly", "billing.invoice_lines", "billing.revenue_hourly", "billing.run_rate")
REFRESH = ["billing.charges_hourly", "billing.revenue_hourly", "billing.run_rate"]
KILLS = 10


def _project(tmp_path: Path, broker: str, topic: str) -> Project:
    project = write_pipeline_project(
        tmp_path / "proj",
        name="billing_usage",
        topic=topic,
        brokers=broker,
        decode={
            "format": "protobuf",
            "proto_file": str(PROTO_PATH),
            "message": "shoal.billing.v1.UsageEvent",
        },
        table="billing.usage_events",
        partition_by=[{"column": "event_date", "from": "billing_hour", "transform": "day"}],
        flush={"max_rows": 2000, "max_latency_s": 0.5},
        refresh=REFRESH,
    )
    cfg = project.dir / "shoal.yaml"
    cfg.write_text(cfg.read_text().replace("models: []", "models: [shoal.usecases.billing.models]"))
    return Project.load(project.dir)


def _assert_exact(lake: Lake, events: list) -> None:
    ref = reference.compute(events)
    with ModelRunner(lake, [m for m in models() if m.name in FAST_PATH]) as runner:
        for name in FAST_PATH:
            spec = next(m for m in models() if m.name == name)
            got = runner.con.query_arrow(f"SELECT * FROM {name}").to_pylist()
            want = getattr(ref, name.split(".", 1)[1])
            assert keyed(got, spec.unique_key) == keyed(want, spec.unique_key), name


def _in_step(lake: Lake) -> bool:
    """Every model of the fast path has consumed its upstream's latest version."""
    for m in models():
        if m.name in FAST_PATH:
            (up, *_) = m.upstream
            if lake.table(m.name).app_version(f"model:{up}") != lake.table(up).version:
                return False
    return True


def test_the_worker_keeps_revenue_exact_through_ten_kill_9s(
    kafka_broker, kafka_topic, tmp_path: Path
) -> None:
    topic = kafka_topic(partitions=2)
    project = _project(tmp_path, kafka_broker.bootstrap, topic)
    # across a month boundary (caps reset), with late and duplicated events
    sim = BillingSimulator(5, datetime(2026, 1, 30, tzinfo=UTC), 3, 150, late_share=0.1, dup_share=0.02)
    events = list(sim.events())
    encoded = list(encode_events(events))
    chunk = len(events) // (KILLS + 1)
    client = {
        **kafka_broker.consumer_overrides,
        "group.instance.id": "refresh-worker",
        "session.timeout.ms": 10000,
    }
    rng = random.Random(38)
    lake = project.lake
    revenue_versions = set()
    for i in range(KILLS):
        produce_events(kafka_broker.bootstrap, topic, encoded[i * chunk : (i + 1) * chunk])
        worker = WorkerProcess(
            project.dir, "billing_usage", client=client, log_path=tmp_path / f"w{i}.log"
        ).start()
        worker.wait_first_commit()  # then killed at a random moment
        time.sleep(rng.uniform(0.0, 1.5))
        assert worker.running, f"worker {i} exited early:\n{worker.log_tail()}"
        worker.kill()
        if lake.exists("billing.revenue_hourly"):
            revenue_versions.add(lake.table("billing.revenue_hourly").version)
    produce_events(kafka_broker.bootstrap, topic, encoded[KILLS * chunk :])
    final = WorkerProcess(
        project.dir, "billing_usage", client=client, until_drained=True, log_path=tmp_path / "final.log"
    )
    assert final.start().wait(300) == 0, final.log_tail()

    # the workers refreshed revenue while they ran (not only the last one), and nobody else did
    assert len(revenue_versions) >= 3, revenue_versions
    assert lake.table("billing.usage_events").count() == len(events)
    assert _in_step(lake)
    _assert_exact(lake, events)
    log = [
        json.loads(line) for line in (tmp_path / "final.log").read_text().splitlines() if line.startswith("{")
    ]
    stopped = next(r for r in log if r.get("msg") == "pipeline stopped")
    assert stopped["timings"]["refresh"] > 0, stopped

"""Billing end to end: simulated usage events (late and duplicated) through a real Kafka-protocol
broker, the ingest pipeline of the demo, then every ``billing.*`` model refreshed incrementally and
held against the independent Decimal reference over the raw events, to the cent."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from shoal.config import init_project
from shoal.ingest import run_pipeline
from shoal.models import ModelRunner
from shoal.project import Project
from shoal.sources.kafka.producer import produce_events
from shoal.usecases.billing import BillingSimulator, models, reference
from shoal.usecases.billing.demo_step import PIPELINE
from shoal.usecases.billing.events import PROTO_PATH, BillingEvent

pytestmark = pytest.mark.integration

# Mar 30 - Apr 1: the stream crosses a month boundary (caps reset) and late events cross it too.
START = datetime(2026, 3, 30, tzinfo=UTC)
LATE_SHARE = 0.08
DUP_SHARE = 0.02


def keyed(rows: list[dict[str, Any]], key: Sequence[str]) -> dict[tuple[Any, ...], dict[str, Any]]:
    out = {tuple(r[k] for k in key): r for r in rows}
    assert len(out) == len(rows), f"unique_key {key} is not unique"
    return out


def stream_shares(events: Sequence[BillingEvent]) -> tuple[float, float]:
    """(late share, duplicate share) of a delivery-ordered stream.

    An event is late when it is delivered after an event of a later billing hour (the simulator
    delivers each hour's traffic after that hour closes); a duplicate is a re-sent event_id.
    """
    latest = events[0].billing_hour
    late = 0
    for e in events:
        if e.billing_hour < latest:
            late += 1
        latest = max(latest, e.billing_hour)
    distinct = len({e.event_id for e in events})
    return late / len(events), (len(events) - distinct) / distinct


def test_billing_models_match_reference_through_broker(  # type: ignore[no-untyped-def]
    kafka_broker, kafka_topic, tmp_path: Path, monkeypatch
) -> None:
    topic = kafka_topic(partitions=3)
    proj_dir = tmp_path / "proj"
    init_project(proj_dir, "billing")
    (proj_dir / "protos").mkdir()
    (proj_dir / "protos" / PROTO_PATH.name).write_bytes(PROTO_PATH.read_bytes())
    (proj_dir / "pipelines" / "billing_usage.yaml").write_text(PIPELINE)
    monkeypatch.setenv("KAFKA_BROKERS", kafka_broker.bootstrap)
    monkeypatch.setenv("BILLING_TOPIC", topic)
    project = Project.load(proj_dir)

    sim = BillingSimulator(5, START, 3, 300, late_share=LATE_SHARE, dup_share=DUP_SHARE)
    events = list(sim.events())
    encoded = list(sim.encoded())
    assert len(events) == len(encoded) > 20_000
    late, dup = stream_shares(events)
    assert late >= 0.05
    assert dup >= 0.01
    assert {e.billing_month for e in events} == {"2026-03", "2026-04"}

    specs = models()
    cut = len(encoded) // 2
    # the second half holds late events for hours (and resource-months) the first half already billed
    assert any(e.billing_hour < events[cut - 1].billing_hour for e in events[cut:])
    overrides = dict(kafka_broker.client_overrides)
    with ModelRunner(project.lake, specs) as runner:
        for lo, hi, first in ((0, cut, True), (cut, len(encoded), False)):
            produced = produce_events(kafka_broker.bootstrap, topic, encoded[lo:hi], client_config=overrides)
            assert produced == hi - lo
            stats = run_pipeline(project, "billing_usage", until_drained=True, extra_client_config=overrides)
            assert stats.dead_lettered == 0
            modes = {r.model: r.mode for r in runner.refresh()}
            # models neither incremental nor additive (run rate, storage by spend) recompute on any change
            assert modes == {
                m.name: "full" if first or not (m.incremental_by or m.additive_sql) else "incremental"
                for m in specs
            }

            # every produced record landed exactly once (a duplicate event is a distinct record)
            assert project.lake.table("billing.usage_events").count() == hi

            ref = reference.compute(events[:hi])
            for m in specs:
                table = project.lake.table(m.name).to_arrow()
                got = keyed(table.to_pylist(), m.unique_key)
                want = keyed(getattr(ref, m.name.split(".", 1)[1]), m.unique_key)
                assert want, m.name
                assert got.keys() == want.keys(), m.name
                for k, w in want.items():
                    assert got[k] == w, (m.name, k)  # Decimal == Decimal: exact, to the micro-dollar
            charges = project.lake.table("billing.charges_hourly").to_arrow()
            assert charges.schema.field("charge").type == pa.decimal128(18, 6)

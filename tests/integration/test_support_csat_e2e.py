"""Support tickets → CSAT end to end: simulated events through a real broker, the ingest pipeline,
then the incremental models, compared with the independent reference over the raw events."""

from __future__ import annotations

import dataclasses
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shoal.config import init_project
from shoal.ingest import run_pipeline
from shoal.models import ModelRunner
from shoal.project import Project
from shoal.sources.kafka.producer import produce_events
from shoal.usecases.support import PIPELINE_TEMPLATE, PROTO_FILE, reference
from shoal.usecases.support.models import models
from shoal.usecases.support.simulator import SupportSimulator

pytestmark = pytest.mark.integration


def _rows(rows: list[dict[str, Any]], key: tuple[str, ...]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: tuple("" if r[k] is None else str(r[k]) for k in key))


def test_csat_models_match_reference(kafka_broker, kafka_topic, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    topic = kafka_topic(partitions=3)
    init_project(tmp_path / "proj", "csat")
    proj_dir = tmp_path / "proj"
    (proj_dir / "protos").mkdir()
    shutil.copy(PROTO_FILE, proj_dir / "protos" / PROTO_FILE.name)
    shutil.copy(PIPELINE_TEMPLATE, proj_dir / "pipelines" / "support_tickets.yaml")
    monkeypatch.setenv("KAFKA_BROKERS", kafka_broker.bootstrap)
    monkeypatch.setenv("SUPPORT_TOPIC", topic)
    project = Project.load(proj_dir)

    sim = SupportSimulator(
        5, datetime(2026, 6, 1, tzinfo=UTC), days=6, tickets_per_day=120, tail_days=1, duplicate_rate=0.02
    )
    events = list(sim.events())
    encoded = list(sim.encoded())
    assert len(events) == len(encoded) > 5000
    cut = len(encoded) // 2
    overrides = dict(kafka_broker.client_overrides)

    with ModelRunner(project.lake, models()) as runner:
        for lo, hi, mode in ((0, cut, "full"), (cut, len(encoded), "incremental")):
            produce_events(kafka_broker.bootstrap, topic, encoded[lo:hi], client_config=overrides)
            stats = run_pipeline(
                project, "support_tickets", until_drained=True, extra_client_config=overrides
            )
            assert stats.dead_lettered == 0
            results = {r.model: r.mode for r in runner.refresh()}
            assert results == {"support.tickets": mode, "support.csat_daily": mode}

            raw = project.lake.table("support.ticket_events")
            assert raw.count() == hi  # every produced record landed once (duplicates are distinct records)
            want_tickets = reference.tickets(events[:hi])
            got = _rows(project.lake.table("support.tickets").to_arrow().to_pylist(), ("ticket_id",))
            assert got == _rows([dataclasses.asdict(t) for t in want_tickets], ("ticket_id",))
            want_daily = reference.csat_daily(want_tickets)
            got_daily = _rows(
                project.lake.table("support.csat_daily").to_arrow().to_pylist(), ("day", "team", "product")
            )
            assert got_daily == _rows([dataclasses.asdict(r) for r in want_daily], ("day", "team", "product"))
    assert os.environ["SUPPORT_TOPIC"] == topic

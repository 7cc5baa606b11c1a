"""The pipeline template validates, and the real decoder maps TicketEvent to the columns the SQL uses."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from shoal import decode
from shoal.ingest import spec as ingest_spec
from shoal.usecases.support import MESSAGE, PIPELINE_TEMPLATE, PROTO_FILE
from shoal.usecases.support.simulator import SupportSimulator


def _spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("KAFKA_BROKERS", "127.0.0.1:19092")
    (tmp_path / "protos").mkdir()
    (tmp_path / "protos" / "ticket_events.proto").write_text(PROTO_FILE.read_text())
    raw = yaml.safe_load(PIPELINE_TEMPLATE.read_text())
    return ingest_spec.parse_pipeline(raw, base_dir=tmp_path, file=str(PIPELINE_TEMPLATE))


def test_template_is_a_valid_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _spec(tmp_path, monkeypatch)
    assert spec.table == "support.ticket_events"
    assert spec.dlq_table == "support.ticket_events_dead_letters"
    assert spec.brokers == "127.0.0.1:19092"
    assert spec.topics == ("support.ticket-events",)
    assert spec.decode.message == MESSAGE
    assert [(p.column, p.source, p.transform) for p in spec.partition_by] == [
        ("event_date", "occurred_at", "day")
    ]


def test_decoder_gives_the_columns_the_models_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from test_support_models import events_to_arrow

    spec = _spec(tmp_path, monkeypatch)
    decoder = decode.build_decoder(spec.decode)
    sim = SupportSimulator(5, datetime(2026, 1, 5, tzinfo=UTC), days=1, tickets_per_day=60, tail_days=2)
    events = list(sim.events())
    res = decoder.decode([e.SerializeToString() for e in events])
    assert not res.failures
    got = pa.Table.from_batches([res.batch])
    mine = events_to_arrow(events)
    sql_columns = {
        "event_id",
        "ticket_id",
        "occurred_at",
        "customer_id",
        "customer_tier",
        "team",
        "product",
        "channel",
        "priority",
        "payload_case",
        "agent_replied",
        "status_changed",
        "satisfaction_rated",
    }
    assert sql_columns <= set(got.schema.names)
    # the test converter used by test_support_models agrees with the real decoder on every column
    for name in got.schema.names:
        assert got.schema.field(name).type == mine.schema.field(name).type, name
        assert got.column(name).to_pylist() == mine.column(name).to_pylist(), name

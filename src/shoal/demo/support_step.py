"""Demo step: support ticket events through Kafka into support.ticket_events, then CSAT models."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shoal.demo import DemoContext

TOPIC = "support.ticket-events"


def run(ctx: DemoContext) -> dict[str, Any]:
    from shoal.demo.kafka_embedded import embedded_kafka
    from shoal.ingest import run_pipeline
    from shoal.models import ModelRunner
    from shoal.usecases.support import PIPELINE_TEMPLATE, PROTO_FILE
    from shoal.usecases.support.models import models
    from shoal.usecases.support.produce import produce_events
    from shoal.usecases.support.simulator import SupportSimulator

    project = ctx.project
    (project.dir / "protos").mkdir(exist_ok=True)
    shutil.copy(PROTO_FILE, project.dir / "protos" / PROTO_FILE.name)
    project.pipelines_path.mkdir(exist_ok=True)
    shutil.copy(PIPELINE_TEMPLATE, project.pipelines_path / "support_tickets.yaml")

    days, per_day = (5, 60) if ctx.small else (21, 220)
    sim = SupportSimulator(
        seed=42, start=datetime(2026, 10, 1, tzinfo=UTC), days=days, tickets_per_day=per_day
    )
    with embedded_kafka() as bootstrap:
        previous = {k: os.environ.get(k) for k in ("KAFKA_BROKERS", "SUPPORT_TOPIC")}
        os.environ["KAFKA_BROKERS"] = bootstrap
        os.environ["SUPPORT_TOPIC"] = TOPIC
        try:
            produced = produce_events(bootstrap, TOPIC, sim.encoded())
            ctx.say(f"  produced {produced} ticket events to {TOPIC} (embedded Kafka at {bootstrap})")
            stats = run_pipeline(project, "support_tickets", until_drained=True, drain_timeout_s=120)
        finally:
            for k, v in previous.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    ctx.say(f"  ingested {stats.committed_rows} events exactly once into support.ticket_events")
    with ModelRunner(project.lake, models()) as runner:
        results = runner.refresh()
    ctx.notes.setdefault("queries", []).append(
        f'shoal sql -p {project.dir} "select day, team, csat_pct, first_response_p50_s '
        f'from support.csat_daily order by day desc, team limit 20"'
    )
    return {
        "produced": produced,
        "ingest": stats.as_dict(),
        "models": {r.model: r.rows_written for r in results},
    }

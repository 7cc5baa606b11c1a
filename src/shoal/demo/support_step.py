"""Demo step: support ticket events through Kafka into support.ticket_events, then CSAT models."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shoal.demo import DemoContext

TOPIC = "support.ticket-events"


def run(ctx: DemoContext) -> dict[str, Any]:
    from shoal.demo.kafka_embedded import produce_and_ingest
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
    produced, stats = produce_and_ingest(
        project,
        "support_tickets",
        topic=TOPIC,
        topic_env="SUPPORT_TOPIC",
        events=sim.encoded(),
        produce=produce_events,
        say=ctx.say,
    )
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

"""The support demo step: support ticket events through Kafka into support.ticket_events, then CSAT models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shoal.usecases.registry import StepContext

TOPIC = "support.ticket-events"


def run(ctx: StepContext) -> dict[str, Any]:
    from shoal.usecases.support import PIPELINE_TEMPLATE, PROTO_FILE
    from shoal.usecases.support.models import models
    from shoal.usecases.support.simulator import SupportSimulator

    days, per_day = (5, 60) if ctx.small else (21, 220)
    sim = SupportSimulator(
        seed=42, start=datetime(2026, 10, 1, tzinfo=UTC), days=days, tickets_per_day=per_day
    )
    return ctx.stream(
        pipeline="support_tickets",
        pipeline_yaml=PIPELINE_TEMPLATE.read_text(),
        proto=PROTO_FILE,
        topic=TOPIC,
        topic_env="SUPPORT_TOPIC",
        events=sim.encoded(),
        models=models(),
        try_sql="select day, team, csat_pct, first_response_p50_s "
        "from support.csat_daily order by day desc, team limit 20",
    )

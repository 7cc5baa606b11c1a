"""Demo step: billable usage events through Kafka into billing.usage_events, then revenue models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shoal.demo import DemoContext

TOPIC = "billing.usage-events"

PIPELINE = """\
# Billable usage events (shoal.billing.v1.UsageEvent), keyed by resource_id. Late and duplicate
# events are expected: the models dedupe by event_id and restate only what a late event touches.
name: billing_usage
topics: ["${BILLING_TOPIC:-billing.usage-events}"]
brokers: ${KAFKA_BROKERS:-127.0.0.1:9092}
decode:
  format: protobuf
  proto_file: protos/usage_events.proto
  message: shoal.billing.v1.UsageEvent
table: billing.usage_events
partition_by:
  - {column: event_date, from: billing_hour, transform: day}
flush: {max_rows: 200000, max_bytes: 64MiB, max_latency_s: 5}
dead_letter_table: billing.usage_events_dead_letters
"""


def run(ctx: DemoContext) -> dict[str, Any]:
    from shoal.demo.kafka_embedded import stream_use_case
    from shoal.sources.kafka.producer import produce_events
    from shoal.usecases.billing import BillingSimulator, models
    from shoal.usecases.billing.events import PROTO_PATH

    users, days = (300, 2) if ctx.small else (2_000, 3)
    sim = BillingSimulator(seed=11, start=datetime(2026, 10, 1, tzinfo=UTC), days=days, users=users)
    result = stream_use_case(
        ctx,
        pipeline="billing_usage",
        pipeline_yaml=PIPELINE,
        proto=PROTO_PATH,
        topic=TOPIC,
        topic_env="BILLING_TOPIC",
        events=sim.encoded(),
        produce=produce_events,
        models=models(),
    )
    ctx.notes.setdefault("queries", []).append(
        f"shoal sql -p {ctx.project.dir} "
        '"select product, run_rate from billing.run_rate order by run_rate desc"'
    )
    return result

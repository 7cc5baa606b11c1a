"""The billing demo step: usage events through Kafka into billing.usage_events, then revenue models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shoal.usecases.billing.simulator import BillingSimulator
    from shoal.usecases.registry import StepContext

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
# hourly rollups by event time read this column instead of flooring every row's occurred_at
derive:
  - {column: event_hour, from: occurred_at, transform: hour}
flush: {max_rows: 25000, max_bytes: 64MiB, max_latency_s: 5}
dead_letter_table: billing.usage_events_dead_letters
"""


def simulator(small: bool) -> BillingSimulator:
    """The demo's billing simulation (its customers are the company's users in the other use
    cases too: the leads CRM derives its users and teams from the same seed and arguments)."""
    from shoal.usecases.billing import BillingSimulator

    # The full demo: an established company of 100,000 customers (99 % signed up before the
    # window) and the last 6 hours of its hourly metering (~1.8M events; a whole day would be 7M,
    # minutes of a demo). Block storage is GA from the start. --small: 300 users over 2 days.
    if small:
        return BillingSimulator(seed=11, start=datetime(2026, 10, 1, tzinfo=UTC), days=2, users=300)
    return BillingSimulator(
        seed=11,
        start=datetime(2026, 10, 1, 18, tzinfo=UTC),
        days=1,
        users=100_000,
        existing_share=0.99,
        hours=6,
    )


def run(ctx: StepContext) -> dict[str, Any]:
    from shoal.usecases.billing import models
    from shoal.usecases.billing.events import PROTO_PATH

    sim = simulator(ctx.small)
    return ctx.stream(
        pipeline="billing_usage",
        pipeline_yaml=PIPELINE,
        proto=PROTO_PATH,
        topic=TOPIC,
        topic_env="BILLING_TOPIC",
        events=sim.encoded(),
        models=models(),
        try_sql="select product, run_rate from billing.run_rate order by run_rate desc",
    )

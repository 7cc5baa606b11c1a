"""Demo step: billable usage events through Kafka into billing.usage_events, then revenue models."""

from __future__ import annotations

import shutil
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
    from shoal.demo.kafka_embedded import produce_and_ingest
    from shoal.models import ModelRunner
    from shoal.usecases.billing import BillingSimulator, models, produce_events
    from shoal.usecases.billing.events import PROTO_PATH

    project = ctx.project
    (project.dir / "protos").mkdir(exist_ok=True)
    shutil.copy(PROTO_PATH, project.dir / "protos" / PROTO_PATH.name)
    project.pipelines_path.mkdir(exist_ok=True)
    (project.pipelines_path / "billing_usage.yaml").write_text(PIPELINE)

    users, days = (300, 2) if ctx.small else (2_000, 3)
    sim = BillingSimulator(seed=11, start=datetime(2026, 10, 1, tzinfo=UTC), days=days, users=users)
    produced, stats = produce_and_ingest(
        project,
        "billing_usage",
        topic=TOPIC,
        topic_env="BILLING_TOPIC",
        events=sim.encoded(),
        produce=produce_events,
        say=ctx.say,
    )
    with ModelRunner(project.lake, models()) as runner:
        results = runner.refresh()
    ctx.notes.setdefault("queries", []).append(
        f'shoal sql -p {project.dir} "select product, run_rate from billing.run_rate order by run_rate desc"'
    )
    return {
        "produced": produced,
        "ingest": stats.as_dict(),
        "models": {r.model: r.rows_written for r in results},
    }

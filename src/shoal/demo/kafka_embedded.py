"""An embedded Kafka-protocol cluster for the demo: librdkafka's mock cluster.

librdkafka (inside confluent-kafka) can serve the real Kafka wire protocol on 127.0.0.1 from this
process. The demo uses it so it needs no broker installed; real deployments point pipelines at
their Kafka. It keeps only a few MB per partition, which suits a demo, not production.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from confluent_kafka import Producer

if TYPE_CHECKING:
    from shoal.config import Project
    from shoal.ingest.runner import RunStats


@contextmanager
def embedded_kafka() -> Iterator[str]:
    """Yield the bootstrap address of an in-process mock cluster, alive until the block exits."""
    holder = Producer({"test.mock.num.brokers": 1, "bootstrap.servers": "embedded", "log_level": 3})
    try:
        brokers = holder.list_topics(timeout=10).brokers.values()
        broker = next(iter(brokers))
        yield f"{broker.host}:{broker.port}"
    finally:
        holder.flush(5)
        del holder


def produce_and_ingest(
    project: Project,
    pipeline: str,
    *,
    topic: str,
    topic_env: str,
    events: Iterable[tuple[bytes, bytes]],
    produce: Callable[..., int],
    say: Callable[[str], None],
) -> tuple[int, RunStats]:
    """Produce ``events`` to ``topic`` on an embedded cluster, then drain ``pipeline`` into the lake.

    The demo's pipeline files read ``${KAFKA_BROKERS}`` and ``${<topic_env>}``, set here for the run.
    """
    from shoal.ingest import run_pipeline

    with embedded_kafka() as bootstrap:
        previous = {k: os.environ.get(k) for k in ("KAFKA_BROKERS", topic_env)}
        os.environ["KAFKA_BROKERS"] = bootstrap
        os.environ[topic_env] = topic
        try:
            produced = produce(bootstrap, topic, events)
            say(f"  produced {produced:,} events to {topic} (embedded Kafka at {bootstrap})")
            stats = run_pipeline(project, pipeline, until_drained=True, drain_timeout_s=180)
        finally:
            for k, v in previous.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    say(f"  ingested {stats.committed_rows:,} events exactly once via pipeline {pipeline}")
    return produced, stats

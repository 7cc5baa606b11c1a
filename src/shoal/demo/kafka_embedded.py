"""An embedded Kafka-protocol cluster for the demo: librdkafka's mock cluster.

librdkafka (inside confluent-kafka) can serve the real Kafka wire protocol on 127.0.0.1 from this
process. The demo uses it so it needs no broker installed; real deployments point pipelines at
their Kafka. It keeps only a few MB per partition, which suits a demo, not production.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from confluent_kafka import Producer


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

"""Write ``(key, value)`` events to a Kafka topic with confluent-kafka (idempotent, lz4, batched).

Used by the simulators and tests that feed pipelines; every use case produces through this one
function so delivery failures are reported the same way everywhere.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from shoal.errors import ShoalError, Transient

log = logging.getLogger(__name__)

DEFAULT_PRODUCER_CONFIG: dict[str, Any] = {
    "enable.idempotence": "true",  # acks=all, no duplicates or reordering from internal retries
    # only failures come back to Python, not a callback per acknowledged message
    "delivery.report.only.error": True,
    "compression.type": "lz4",
    "linger.ms": "20",
    "batch.num.messages": "10000",
    "queue.buffering.max.messages": "200000",
    "message.timeout.ms": "60000",  # a dead broker fails delivery in a minute, not librdkafka's 5
}
PACE_SLACK_S = 0.002


class ProduceError(ShoalError, Transient):
    """Events could not be delivered to Kafka (broker down, unknown topic, timeout)."""

    def __init__(self, message: str, *, topic: str | None = None, undelivered: int = 0) -> None:
        super().__init__(message)
        self.topic = topic
        self.undelivered = undelivered


def produce_events(
    bootstrap: str,
    topic: str,
    events: Iterable[tuple[bytes, bytes]],
    *,
    client_config: Mapping[str, Any] | None = None,
    rate_per_s: float | None = None,
) -> int:
    """Produce every ``(key, value)`` of ``events`` to ``topic`` in order, flush, return the count.

    ``client_config`` entries override :data:`DEFAULT_PRODUCER_CONFIG`. ``rate_per_s`` paces
    sending (freshness benchmarks); ``None`` sends as fast as possible. Raises
    :class:`ProduceError` naming the first failure if any event was not acknowledged; production
    stops at the first failure reported while producing.
    """
    if rate_per_s is not None and rate_per_s <= 0:
        raise ValueError("rate_per_s must be positive")
    config: dict[str, Any] = {
        **DEFAULT_PRODUCER_CONFIG,
        **(client_config or {}),
        "bootstrap.servers": bootstrap,
    }
    failures: list[KafkaError] = []
    client_errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            failures.append(err)

    config["error_cb"] = client_errors.append
    config["logger"] = log  # librdkafka logs go to logging, not straight to stderr
    producer = Producer(config)
    count = 0
    started = time.monotonic()
    for key, value in events:
        if rate_per_s is not None:
            # wait for this message's slot on the schedule, never bursting to catch up beyond it;
            # a sleep per message (each shorter than the OS's timer slack) would cost more CPU
            # than producing, so messages due within PACE_SLACK_S go out together
            delay = started + count / rate_per_s - time.monotonic()
            if delay > PACE_SLACK_S:
                producer.poll(0)
                time.sleep(delay)
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
                break
            except BufferError:  # local queue full: let librdkafka send and acknowledge
                producer.poll(0.05)
        count += 1
        if count % 5000 == 0:
            producer.poll(0)
            if failures or any(e.fatal() for e in client_errors):
                break
    timeout_s = int(config["message.timeout.ms"]) / 1000 + 5
    remaining = producer.flush(timeout_s)
    if failures or remaining:
        reasons = [failures[0].str()] if failures else []
        if client_errors:  # e.g. "Connection refused" behind a "Message timed out"
            reasons.append(f"last client error: {client_errors[-1].str()}")
        detail = f": {'; '.join(reasons)}" if reasons else ""
        raise ProduceError(
            f"{len(failures) + remaining} of {count} events were not delivered to topic {topic!r} "
            f"at {bootstrap}{detail}",
            topic=topic,
            undelivered=len(failures) + remaining,
        )
    return count

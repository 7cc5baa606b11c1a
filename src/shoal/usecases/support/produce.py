"""Write ``(key, value)`` events to a Kafka topic with confluent-kafka (idempotent, lz4, batched)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from shoal.errors import ShoalError, Transient

log = logging.getLogger(__name__)

DEFAULT_CONFIG: dict[str, str] = {
    "enable.idempotence": "true",  # no duplicates or reordering from internal retries
    "compression.type": "lz4",
    "linger.ms": "20",
    "batch.num.messages": "10000",
    "queue.buffering.max.messages": "200000",
    "message.timeout.ms": "60000",  # a dead broker fails delivery in a minute, not librdkafka's 5
}


class ProduceError(ShoalError, Transient):
    """Events could not be delivered to Kafka (broker down, unknown topic, timeout)."""


def produce_events(
    bootstrap: str,
    topic: str,
    events: Iterable[tuple[bytes, bytes]],
    *,
    client_config: Mapping[str, str] | None = None,
) -> int:
    """Produce every ``(key, value)`` of ``events`` to ``topic``, flush, and return the count.

    ``client_config`` entries override :data:`DEFAULT_CONFIG` (e.g. ``compression.type: none``).
    Raises :class:`ProduceError` naming the first failure if any event was not acknowledged;
    production stops at the first failure that is reported while producing.
    """
    config: dict[str, Any] = {**DEFAULT_CONFIG, **(client_config or {}), "bootstrap.servers": bootstrap}
    failures: list[KafkaError] = []
    client_errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            failures.append(err)

    def on_error(err: KafkaError) -> None:
        client_errors.append(err)

    config["error_cb"] = on_error
    config["logger"] = log  # librdkafka logs go to logging, not straight to stderr
    producer = Producer(config)
    count = 0
    for key, value in events:
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
                break
            except BufferError:  # local queue full: let librdkafka send and acknowledge
                producer.poll(0.05)
        count += 1
        if count % 5000 == 0:
            producer.poll(0)
            fatal = [e for e in client_errors if e.fatal()]
            if failures or fatal:
                break
    timeout_s = int(config.get("message.timeout.ms", DEFAULT_CONFIG["message.timeout.ms"])) / 1000 + 5
    remaining = producer.flush(timeout_s)
    if failures or remaining:
        reasons = [failures[0].str()] if failures else []
        if client_errors:  # e.g. "Connection refused" behind a "Message timed out"
            reasons.append(f"last client error: {client_errors[-1].str()}")
        detail = f": {'; '.join(reasons)}" if reasons else ""
        raise ProduceError(
            f"{len(failures) + remaining} of {count} events were not delivered to topic {topic!r} "
            f"at {bootstrap}{detail}"
        )
    return count

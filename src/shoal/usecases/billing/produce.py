"""Send billing events to Kafka with an idempotent confluent-kafka producer."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from shoal.errors import ShoalError, Transient

_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,  # implies acks=all and ordered, de-duplicated retries
    "acks": "all",
    "linger.ms": 20,
    "batch.num.messages": 10_000,
    "compression.type": "lz4",
}


class ProduceError(ShoalError, Transient):
    """Kafka did not acknowledge every billing event."""


def produce_events(
    bootstrap: str,
    topic: str,
    events: Iterable[tuple[bytes, bytes]],
    *,
    client_config: Mapping[str, Any] | None = None,
    rate_per_s: float | None = None,
) -> int:
    """Produce (key, value) pairs in order; returns how many were acknowledged.

    ``rate_per_s`` paces sending (for freshness benchmarks); ``None`` = as fast as
    possible. Raises :class:`ProduceError` if any message failed delivery.
    """
    from confluent_kafka import KafkaException, Producer

    if rate_per_s is not None and rate_per_s <= 0:
        raise ValueError("rate_per_s must be positive")
    conf = {**_DEFAULTS, **(client_config or {}), "bootstrap.servers": bootstrap}
    producer = Producer(conf)
    acked = 0
    failed: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        nonlocal acked
        if err is None:
            acked += 1
        elif len(failed) < 5:
            failed.append(str(err))
        else:
            failed.append("")

    started = time.monotonic()
    sent = 0
    try:
        for key, value in events:
            if rate_per_s is not None:
                # sleep until this message's slot on the schedule; never burst to catch up beyond it
                delay = started + sent / rate_per_s - time.monotonic()
                if delay > 0:
                    producer.poll(0)
                    time.sleep(delay)
            while True:
                try:
                    producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
                    break
                except BufferError:
                    producer.poll(0.05)  # local queue full: let deliveries drain
            sent += 1
            if sent % 1000 == 0:
                producer.poll(0)
        remaining = producer.flush(60)
    except KafkaException as err:
        raise ProduceError(f"producing to {topic!r} at {bootstrap} failed: {err}") from err
    if remaining or failed:
        detail = next((f for f in failed if f), f"{remaining} unacknowledged after flush")
        raise ProduceError(
            f"{sent - acked} of {sent} billing events to {topic!r} were not delivered: {detail}"
        )
    return acked

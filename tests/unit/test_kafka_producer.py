"""The Kafka producer against librdkafka's in-process mock cluster (the real Kafka wire protocol)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from confluent_kafka import Consumer, Producer

from shoal.sources.kafka.producer import ProduceError, produce_events
from shoal.usecases.billing.simulator import BillingSimulator
from shoal.usecases.support.simulator import SupportSimulator


@pytest.fixture(scope="module")
def bootstrap() -> Iterator[str]:
    # The cluster lives as long as this producer object.
    holder = Producer({"test.mock.num.brokers": 1, "bootstrap.servers": "unused", "log_level": 3})
    md = holder.list_topics(timeout=10)
    yield ",".join(f"{b.host}:{b.port}" for b in md.brokers.values())
    del holder


def _consume_all(bootstrap: str, topic: str, expected: int) -> list[tuple[bytes, bytes]]:
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"t-{topic}",
            "auto.offset.reset": "earliest",
            "log_level": 3,
        }
    )
    c.subscribe([topic])
    got: list[tuple[bytes, bytes]] = []
    deadline = time.monotonic() + 30
    try:
        while len(got) < expected and time.monotonic() < deadline:
            for msg in c.consume(1000, 0.5):
                assert msg.error() is None, msg.error()
                got.append((msg.key(), msg.value()))
    finally:
        c.close()
    return got


def test_produces_every_event_keyed_by_ticket(bootstrap: str) -> None:
    events = list(
        SupportSimulator(4, datetime(2026, 1, 5, tzinfo=UTC), days=1, tickets_per_day=150).encoded()
    )
    n = produce_events(bootstrap, "support-events", iter(events))
    assert n == len(events) > 1000
    got = _consume_all(bootstrap, "support-events", n)
    assert sorted(got) == sorted(events)


def test_uncompressed_override(bootstrap: str) -> None:
    events = [(b"T-1", b"x" * 100)] * 50
    assert produce_events(bootstrap, "plain", events, client_config={"compression.type": "none"}) == 50
    assert len(_consume_all(bootstrap, "plain", 50)) == 50


def test_undeliverable_raises_a_clear_error() -> None:
    start = time.monotonic()
    with pytest.raises(
        ProduceError, match=r"3 of 3 events were not delivered to topic 'x' at 127\.0\.0\.1:9"
    ):
        produce_events(
            "127.0.0.1:9",
            "x",
            [(b"k", b"v")] * 3,
            client_config={"message.timeout.ms": "1000", "log_level": "0"},
        )
    assert time.monotonic() - start < 15


def test_produces_every_event_once_in_key_order(bootstrap: str) -> None:
    pairs = list(BillingSimulator(1, datetime(2026, 1, 1, tzinfo=UTC), 1, 40).encoded())
    assert produce_events(bootstrap, "billing.usage", pairs) == len(pairs)
    got = _consume_all(bootstrap, "billing.usage", len(pairs))
    assert sorted(got) == sorted(pairs)
    # per key (= partition) the delivery order is kept
    for key in {k for k, _ in pairs[:50]}:
        assert [v for k, v in got if k == key] == [v for k, v in pairs if k == key]


def test_rate_limit_paces_sending(bootstrap: str) -> None:
    pairs = [(b"k", b"v%d" % i) for i in range(200)]
    t0 = time.monotonic()
    assert produce_events(bootstrap, "billing.paced", pairs, rate_per_s=1000) == 200
    assert time.monotonic() - t0 >= 0.19

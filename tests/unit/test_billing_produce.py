"""produce_events against librdkafka's in-process mock cluster (real wire protocol)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from confluent_kafka import Consumer, Producer

from shoal.usecases.billing.produce import ProduceError, produce_events
from shoal.usecases.billing.simulator import BillingSimulator


@pytest.fixture(scope="module")
def bootstrap() -> Iterator[str]:
    holder = Producer({"test.mock.num.brokers": 1, "bootstrap.servers": "unused:1"})
    brokers = holder.list_topics(timeout=10).brokers.values()
    yield ",".join(f"{b.host}:{b.port}" for b in brokers)
    holder.flush(1)


def consume_all(bootstrap: str, topic: str, n: int) -> list[tuple[bytes, bytes]]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "t", "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got: list[tuple[bytes, bytes]] = []
    deadline = time.monotonic() + 30
    while len(got) < n and time.monotonic() < deadline:
        for m in c.consume(1000, timeout=0.5):
            if m.error() is None:
                got.append((m.key(), m.value()))
    c.close()
    return got


def test_produces_every_event_once_in_key_order(bootstrap: str) -> None:
    pairs = list(BillingSimulator(1, datetime(2026, 1, 1, tzinfo=UTC), 1, 40).encoded())
    assert produce_events(bootstrap, "billing.usage", pairs) == len(pairs)
    got = consume_all(bootstrap, "billing.usage", len(pairs))
    assert sorted(got) == sorted(pairs)
    # per key (= partition) the delivery order is kept
    for key in {k for k, _ in pairs[:50]}:
        assert [v for k, v in got if k == key] == [v for k, v in pairs if k == key]


def test_rate_limit_paces_sending(bootstrap: str) -> None:
    pairs = [(b"k", b"v%d" % i) for i in range(200)]
    t0 = time.monotonic()
    assert produce_events(bootstrap, "billing.paced", pairs, rate_per_s=1000) == 200
    assert time.monotonic() - t0 >= 0.19


def test_undeliverable_raises_produce_error() -> None:
    with pytest.raises(ProduceError):
        produce_events(
            "127.0.0.1:1", "billing.usage", [(b"k", b"v")], client_config={"message.timeout.ms": 500}
        )

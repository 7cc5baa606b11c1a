"""1 % corrupted messages (random bytes, truncated, wrong schema) land in the dead-letter table, exactly."""

from __future__ import annotations

import random
from datetime import datetime
from itertools import islice
from pathlib import Path

import pyarrow.compute as pc
import pytest

from harness.ingest import write_pipeline_project
from shoal.decode import DecodeSpec, build_decoder
from shoal.ingest import run_pipeline
from shoal.sources.kafka.producer import produce_events
from shoal.usecases.support import MESSAGE, PROTO_FILE
from shoal.usecases.support.simulator import SupportSimulator

pytestmark = pytest.mark.integration

DECODE = {
    "format": "protobuf",
    "proto_file": str(PROTO_FILE),
    "message": MESSAGE,
    "strict_unknown_fields": True,
}


def corrupt(rng: random.Random, value: bytes, kind: int) -> bytes:
    if kind == 0:  # random bytes
        return rng.randbytes(rng.randint(1, 120))
    if kind == 1:  # truncated inside the first length-delimited field (event_id: tag, len, 36 bytes)
        return value[: rng.randint(3, 20)]
    # wrong schema: another message whose field 1 is a varint and field 2 a fixed64
    return b"\x08" + bytes([rng.randint(1, 127)]) + b"\x11" + rng.randbytes(8)


def test_one_percent_corrupted_goes_to_dead_letters(kafka_broker, kafka_topic, tmp_path: Path) -> None:
    rng = random.Random(99)
    good = list(
        islice(SupportSimulator(3, datetime(2026, 2, 1), days=2, tickets_per_day=2000).encoded(), 20_000)
    )
    decoder = build_decoder(DecodeSpec.model_validate(DECODE))
    events: list[tuple[bytes, bytes]] = []
    bad_values: list[bytes] = []
    for i, (key, value) in enumerate(good):
        events.append((key, value))
        if i % 100 == 50:
            while True:  # keep only corruptions the decoder really rejects (random bytes may parse)
                bad = corrupt(rng, value, len(bad_values) % 3)
                if decoder.decode([bad]).failures:
                    break
            events.append((b"bad-" + key, bad))
            bad_values.append(bad)
    topic = kafka_topic(partitions=2)
    produce_events(kafka_broker.bootstrap, topic, events)
    project = write_pipeline_project(
        tmp_path / "proj",
        name="tickets",
        topic=topic,
        brokers=kafka_broker.bootstrap,
        decode=DECODE,
        flush={"max_rows": 4000},
    )
    stats = run_pipeline(
        project,
        "tickets",
        until_drained=True,
        extra_client_config=kafka_broker.consumer_overrides,
        drain_idle_s=1,
    )
    assert stats.stopped == "drained"
    assert stats.dead_lettered == len(bad_values) == 200
    data = project.lake.table("support.ticket_events").to_arrow(columns=["event_id", "_kafka_key"])
    assert data.num_rows == len(good)
    assert len(pc.unique(data.column("event_id"))) == len(good)
    dlq = project.lake.table("support.ticket_events_dead_letters").to_arrow()
    assert sorted(dlq.column("value").to_pylist()) == sorted(bad_values)
    assert all(k.startswith(b"bad-") for k in dlq.column("key").to_pylist())
    assert set(dlq.column("pipeline").to_pylist()) == {"tickets"}
    assert set(dlq.column("topic").to_pylist()) == {topic}
    assert all(dlq.column("error_message").to_pylist())
    assert dlq.schema.field("headers").type.value_type.names == ["key", "value"]

    # A second run finds nothing new: neither table grows (offsets came from the tables).
    again = run_pipeline(
        project,
        "tickets",
        until_drained=True,
        extra_client_config=kafka_broker.consumer_overrides,
        drain_idle_s=1,
    )
    assert again.consumed == 0
    assert project.lake.table("support.ticket_events_dead_letters").count() == 200


def test_transform_failures_are_bisected_and_missing_partition_values_dead_lettered(
    kafka_broker, kafka_topic, tmp_path: Path
) -> None:
    events = list(
        islice(SupportSimulator(5, datetime(2026, 3, 1), days=2, tickets_per_day=1000).encoded(), 3000)
    )
    assert len(events) == 3000
    topic = kafka_topic(partitions=1)
    produce_events(kafka_broker.bootstrap, topic, events)
    project = write_pipeline_project(
        tmp_path / "proj",
        name="tickets",
        topic=topic,
        brokers=kafka_broker.bootstrap,
        decode=DECODE,
        # a record-dependent runtime error (every 500th offset) and a nullable partition source
        transform_sql=(
            "SELECT * REPLACE (CASE WHEN _kafka_offset % 500 = 7 THEN error('poison ' || event_id) "
            "ELSE event_id END AS event_id), NULLIF(channel, 'CHANNEL_PHONE') AS channel_part FROM batch"
        ),
        partition_by=[{"column": "channel_p", "from": "channel_part"}],
        flush={"max_rows": 1000},
    )
    stats = run_pipeline(
        project,
        "tickets",
        until_drained=True,
        extra_client_config=kafka_broker.consumer_overrides,
        drain_idle_s=1,
    )
    dlq = project.lake.table("support.ticket_events_dead_letters").to_arrow()
    data = project.lake.table("support.ticket_events").to_arrow(columns=["channel", "_kafka_offset"])
    poisoned = {o for o in range(3000) if o % 500 == 7}
    by_class = dlq.group_by("error_class").aggregate([("offset", "count")]).to_pylist()
    counts = {r["error_class"]: r["offset_count"] for r in by_class}
    dead_at = dict(zip(dlq.column("offset").to_pylist(), dlq.column("error_class").to_pylist(), strict=True))
    assert stats.consumed == 3000
    assert counts.get("InvalidInputException") == len(poisoned), {o: dead_at.get(o) for o in poisoned}
    dead_transform = {
        o
        for o, c in zip(dlq.column("offset").to_pylist(), dlq.column("error_class").to_pylist(), strict=True)
        if c == "InvalidInputException"
    }
    assert dead_transform == poisoned
    assert counts["MissingPartitionValue"] > 0
    assert "CHANNEL_PHONE" not in set(data.column("channel").to_pylist())
    # every record is in exactly one of the two tables
    all_offsets = sorted(data.column("_kafka_offset").to_pylist() + dlq.column("offset").to_pylist())
    assert all_offsets == list(range(3000))  # one partition: offsets 0..2999
    assert stats.committed_rows + stats.dead_lettered == 3000

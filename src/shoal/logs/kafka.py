"""Log lines from a Kafka topic: an ordinary ingest pipeline into ``logs.lines``.

The pipeline loop (exactly once: offsets in the Delta commit; dead letters; consumer groups)
is :mod:`shoal.ingest`'s; this module only fills in the decode, the SQL and the table, the same
as the HTTP receiver uses. ``shoal logs consume --topic T --brokers B`` runs one worker of it;
more workers with the same ``--group`` share the topic's partitions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from shoal.ingest import FlushPolicy, PartitionColumn, PipelineSpec
from shoal.logs.schema import DEAD_LETTERS, KAFKA_TRANSFORM_SQL, LINES, decode_spec


def logs_pipeline(
    topics: Sequence[str],
    brokers: str,
    *,
    name: str = "logs",
    group_id: str | None = None,
    client: Mapping[str, str] | None = None,
    flush: FlushPolicy | None = None,
) -> PipelineSpec:
    """The pipeline of JSON log lines from ``topics`` into ``logs.lines``."""
    return PipelineSpec(
        name=name,
        topics=tuple(topics),
        brokers=brokers,
        group_id=group_id,
        client=dict(client or {}),
        decode=decode_spec(),
        table=LINES,
        partition_by=(PartitionColumn.model_validate({"column": "day", "from": "ts", "transform": "day"}),),
        transform_sql=KAFKA_TRANSFORM_SQL,
        dead_letter_table=DEAD_LETTERS,
        flush=flush or FlushPolicy(max_rows=50_000, max_latency_s=1.0),
        description="JSON log lines into logs.lines",
    )

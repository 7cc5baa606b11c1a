"""The dead-letter table: raw bytes, origin and the error of every record that could not be ingested.

A letter is identified by :data:`LETTER_KEY` (a record's pipeline, topic, partition and offset).
``shoal dlq replay`` marks letters instead of deleting them (:data:`REPLAY_FIELDS`, nullable):
tables written before those columns existed gain them on the first replay, and readers treat a
missing column as null (ADR 0026).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pyarrow as pa

from shoal.ingest.buffer import DeadRecord

HEADER_TYPE = pa.list_(pa.struct([("key", pa.string()), ("value", pa.binary())]))

#: what ``shoal dlq replay`` writes into a letter (all null until a replay touches it)
REPLAY_FIELDS = (
    #: when the letter's record reached the main table (null: not replayed)
    pa.field("replayed_at", pa.timestamp("us", tz="UTC")),
    #: the main-table commit that wrote the letter's rows (or a version found holding them; ADR 0026)
    pa.field("replayed_version", pa.int64()),
    #: how many replays tried the letter
    pa.field("retries", pa.int32()),
    #: when the last replay tried it, and its error if the letter still fails
    pa.field("retried_at", pa.timestamp("us", tz="UTC")),
    pa.field("retry_error_class", pa.string()),
    pa.field("retry_error_message", pa.string()),
)

#: the columns naming one letter: the record it holds
LETTER_KEY = ("pipeline", "topic", "partition", "offset")

DEAD_LETTER_SCHEMA = pa.schema(
    [
        ("key", pa.binary()),
        ("value", pa.binary()),
        ("headers", HEADER_TYPE),
        ("topic", pa.string()),
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("timestamp", pa.timestamp("ms", tz="UTC")),
        ("error_class", pa.string()),
        ("error_message", pa.string()),
        ("pipeline", pa.string()),
        ("failed_at", pa.timestamp("us", tz="UTC")),
        *REPLAY_FIELDS,
    ]
)

#: error_class of a record whose partition column value was missing
MISSING_PARTITION_VALUE = "MissingPartitionValue"


def dead_letter_table(records: Sequence[DeadRecord], pipeline: str, now: datetime | None = None) -> pa.Table:
    """Dead records as rows of the dead-letter table (messages are cut to 2000 characters)."""
    at = now or datetime.now(UTC)
    n = len(records)
    return pa.table(
        [
            pa.array([r.key for r in records], pa.binary()),
            pa.array([r.value for r in records], pa.binary()),
            pa.array(
                [[{"key": k, "value": v} for k, v in r.headers] for r in records],
                HEADER_TYPE,
            ),
            pa.array([r.topic for r in records], pa.string()),
            pa.array([r.partition for r in records], pa.int32()),
            pa.array([r.offset for r in records], pa.int64()),
            pa.array(
                [None if r.timestamp_ms is None or r.timestamp_ms < 0 else r.timestamp_ms for r in records],
                pa.timestamp("ms", tz="UTC"),
            ),
            pa.array([r.error_class for r in records], pa.string()),
            pa.array([r.error_message[:2000] for r in records], pa.string()),
            pa.array([pipeline] * n, pa.string()),
            pa.array([at] * n, pa.timestamp("us", tz="UTC")),
            *(pa.nulls(n, f.type) for f in REPLAY_FIELDS),
        ],
        schema=DEAD_LETTER_SCHEMA,
    )


def dead_filter_below(records: Sequence[DeadRecord], below: dict[tuple[str, int], int]) -> list[DeadRecord]:
    """Records whose offset is not yet covered by the dead-letter table's txn version."""
    return [r for r in records if r.offset >= below.get((r.topic, r.partition), -1)]

"""The logs table and how a JSON log line becomes one of its rows.

Both ways in (the HTTP receiver and a Kafka pipeline) decode lines with the same JSON decoder and
the same SQL, so a line means the same thing whichever way it came. A line is a JSON object; the
usual spellings are accepted (``ts``/``time``/``timestamp``/``@timestamp``, ``message``/``msg``,
``service``/``app``/``logger``, ``level``/``severity``); every other key lands in ``attrs`` as a
JSON object string. A line without a message is a dead letter, a line without a time takes the
time it was received.
"""

from __future__ import annotations

import pyarrow as pa

from shoal.decode import DecodeSpec
from shoal.decode.spec import JsonColumn
from shoal.lake import Lake, Table

LINES = "logs.lines"
DEAD_LETTERS = "logs.lines_dead_letters"
#: columns a search can filter on with ``--where key=value`` (exact, case-sensitive terms)
LABELS = ("service", "level", "host", "trace_id")

TS = pa.timestamp("us", tz="UTC")
#: the lake schema; the ``_kafka_*`` columns are null for lines that came over HTTP
LINES_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("ts", TS),
        pa.field("service", pa.string()),
        pa.field("level", pa.string()),
        pa.field("message", pa.string()),
        pa.field("host", pa.string()),
        pa.field("trace_id", pa.string()),
        pa.field("attrs", pa.string()),
        pa.field("day", pa.date32()),
        pa.field("_kafka_topic", pa.string()),
        pa.field("_kafka_partition", pa.int32()),
        pa.field("_kafka_offset", pa.int64()),
        pa.field("_kafka_timestamp", pa.timestamp("ms", tz="UTC")),
        pa.field("_kafka_key", pa.binary()),
        pa.field("_ingested_at", TS),
    ]
)
PARTITION_BY = ("day",)
#: the error a line without a message is dead-lettered with
NO_MESSAGE = 'log line has no "message" (or "msg") field'

_ALIASES: dict[str, tuple[tuple[str, str], ...]] = {
    # output column -> (decoded column, json key) in order of preference
    "ts": (("ts", "ts"), ("_time", "time"), ("_timestamp", "timestamp"), ("_at_timestamp", "@timestamp")),
    "message": (("message", "message"), ("_msg", "msg")),
    "service": (("service", "service"), ("_app", "app"), ("_logger", "logger")),
    "level": (("level", "level"), ("_severity", "severity")),
    "host": (("host", "host"), ("_hostname", "hostname")),
    "trace_id": (("trace_id", "trace_id"), ("_trace_id", "traceId")),
}


def decode_spec() -> DecodeSpec:
    """The JSON decode of a log line (unmapped keys are kept in ``_extra``, then ``attrs``)."""
    cols: list[JsonColumn] = []
    for out, names in _ALIASES.items():
        for name, key in names:
            cols.append(JsonColumn(name=name, type="timestamp" if out == "ts" else "string", path=key))
    return DecodeSpec(format="json", columns=tuple(cols), extra_column=True)


def _coalesce(out: str) -> str:
    return "coalesce(" + ", ".join(f'"{name}"' for name, _ in _ALIASES[out]) + ")"


def transform_sql(*, id_sql: str, received_sql: str) -> str:
    """SQL over ``batch`` (decoded columns) giving the lake columns; ``id_sql`` names each line,
    ``received_sql`` is the time used for lines that carry none. A line without a message raises,
    which dead-letters that line only (the batch is bisected)."""
    return f"""
SELECT
    {id_sql} AS id,
    coalesce({_coalesce("ts")}, {received_sql}) AS ts,
    {_coalesce("service")} AS service,
    lower({_coalesce("level")}) AS level,
    CASE WHEN {_coalesce("message")} IS NULL
         THEN error('{NO_MESSAGE}')
         ELSE {_coalesce("message")} END AS message,
    {_coalesce("host")} AS host,
    {_coalesce("trace_id")} AS trace_id,
    _extra AS attrs,
    * EXCLUDE ({", ".join(f'"{n}"' for names in _ALIASES.values() for n, _ in names)}, _extra)
FROM batch
"""


#: the Kafka pipeline's transform: ids from (topic, partition, offset), Kafka's time as fallback
KAFKA_TRANSFORM_SQL = transform_sql(
    id_sql="_kafka_topic || ':' || _kafka_partition || ':' || _kafka_offset",
    received_sql="_kafka_timestamp",
)


def ensure_tables(lake: Lake) -> Table:
    """Create ``logs.lines`` (partitioned by day) if missing; returns it."""
    return lake.create_table(
        LINES,
        LINES_SCHEMA,
        partition_by=PARTITION_BY,
        description="Structured log lines (JSON lines over HTTP or Kafka), full-text indexed",
        owner="shoal.logs",
        source="shoal logs receive | shoal logs consume",
    )


def conform(table: pa.Table) -> pa.Table:
    """``table`` with exactly the lake columns, in order (missing ones null)."""
    cols = []
    for field in LINES_SCHEMA:
        if field.name in table.column_names:
            cols.append(table.column(field.name).cast(field.type))
        else:
            cols.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(cols, schema=LINES_SCHEMA)

"""Derived plain columns (``derive``, ADR 0047): declared in the pipeline, written on every row by
ingest, recorded for queries only on a table ingest creates with them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from shoal.decode import DecodeSpec
from shoal.ingest import PipelineSpec, PipelineSpecError, parse_pipeline
from shoal.ingest.buffer import FlushUnit
from shoal.ingest.metrics import IngestMetrics
from shoal.ingest.sink import LakeSink
from shoal.ingest.transform import BatchTransform
from shoal.lake import Lake
from shoal.query import connect_lake

TS = pa.timestamp("us", tz="UTC")
BASE = {
    "name": "usage",
    "topics": ["t"],
    "brokers": "127.0.0.1:1",
    "decode": {"format": "json", "infer": True},
    "table": "ns.events",
}
DERIVE = [{"column": "event_hour", "from": "occurred_at", "transform": "hour"}]
HOURLY = "SELECT date_trunc('hour', occurred_at) AS h, count(*) AS n FROM ns.events GROUP BY 1"


def _spec(**changes: object) -> PipelineSpec:
    return parse_pipeline({**BASE, **changes}, base_dir=Path("."), file="pipelines/usage.yaml")


def test_derive_is_parsed_with_the_partition_shape() -> None:
    spec = _spec(
        partition_by=[{"column": "event_date", "from": "occurred_at", "transform": "day"}], derive=DERIVE
    )
    assert spec.derived_columns == {"event_hour": ("occurred_at", "hour")}
    assert spec.partition_sources == {"event_date": ("occurred_at", "day")}
    assert spec.describe()["derive"] == DERIVE


@pytest.mark.parametrize(
    ("derive", "field", "needle"),
    [
        ([{"column": "h", "from": "ts", "transform": "minute"}], "derive.0.transform", "'day' or 'hour'"),
        ([{"column": "h", "from": "ts"}], "derive.0.transform", "Field required"),
        ([{"column": "h", "from": "ts", "transform": "hour"}] * 2, "(top level)", "listed twice"),
        ([{"column": "d", "from": "ts", "transform": "day"}], "(top level)", "'d' is a partition column"),
        ([{"column": "ts", "from": "ts", "transform": "hour"}], "(top level)", "derived from itself"),
    ],
)
def test_bad_derive_names_the_field(derive: object, field: str, needle: str) -> None:
    with pytest.raises(PipelineSpecError) as err:
        _spec(derive=derive, partition_by=[{"column": "d", "from": "ts", "transform": "day"}])
    msg = str(err.value)
    assert msg.startswith(f"pipelines/usage.yaml: {field}:"), msg
    assert needle in msg
    assert "\n" not in msg


def test_the_billing_pipeline_declares_the_hour_column() -> None:
    from shoal.usecases.billing.demo_step import PIPELINE

    spec = parse_pipeline(yaml.safe_load(PIPELINE), base_dir=Path("."), file="billing_usage.yaml")
    assert spec.derived_columns == {"event_hour": ("occurred_at", "hour")}


def _batch(times: list[datetime | None], first_offset: int = 0) -> pa.Table:
    n = len(times)
    return pa.table(
        {
            "occurred_at": pa.array(times, TS),
            "_kafka_topic": pa.array(["t"] * n),
            "_kafka_partition": pa.array([0] * n, pa.int32()),
            "_kafka_offset": pa.array(range(first_offset, first_offset + n), pa.int64()),
        }
    )


def test_the_transform_writes_the_hour_of_every_row_and_null_for_null() -> None:
    spec = _spec(derive=DERIVE)
    paris = pa.timestamp("us", tz="Europe/Paris")
    times = [datetime(1969, 12, 31, 23, 59, tzinfo=UTC), datetime(2026, 3, 1, 7, 30, 5, tzinfo=UTC), None]
    batch = _batch(times).set_column(0, "occurred_at", pa.array(times, TS).cast(paris))
    out, failed = BatchTransform(spec).apply(batch)
    assert failed == []  # a NULL time is no dead letter: its hour is NULL, as date_trunc's
    assert out.schema.field("event_hour").type == TS  # UTC whatever the source's label
    assert out.column("event_hour").to_pylist() == [
        datetime(1969, 12, 31, 23, tzinfo=UTC),
        datetime(2026, 3, 1, 7, tzinfo=UTC),
        None,
    ]


def _commit(sink: LakeSink, spec: PipelineSpec, batch: pa.Table) -> None:
    data, _ = BatchTransform(spec).apply(batch)
    offsets = data.column("_kafka_offset").to_pylist()
    sink.commit(
        FlushUnit(
            data=data,
            dead=(),
            first_offsets={("t", 0): offsets[0]},
            next_offsets={("t", 0): offsets[-1] + 1},
            records=data.num_rows,
            reason="test",
        )
    )


DAY = [datetime(2026, 1, 1, h, m, tzinfo=UTC) for h in range(3) for m in (0, 59)]


def test_ingest_creates_the_table_with_the_column_declared(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    spec = _spec(derive=DERIVE)
    _commit(LakeSink(lake, spec, IngestMetrics("usage")), spec, _batch([*DAY, None]))
    assert lake.derived_columns("ns.events") == {"event_hour": ("occurred_at", "hour")}
    rows = lake.table("ns.events").to_arrow(columns=["event_hour"]).column(0).to_pylist()
    assert sorted(rows, key=str) == sorted([d.replace(minute=0) for d in DAY] + [None], key=str)
    with connect_lake(lake) as con:
        assert "event_hour" in con._prepare(HOURLY)
        got = sorted(con.sql(HOURLY).fetchall(), key=str)
        con.derived_column_rewrite = False
        assert got == sorted(con.sql(HOURLY).fetchall(), key=str)
        assert len(got) == 4


def test_an_existing_table_gets_the_column_but_no_declaration(tmp_path: Path) -> None:
    """Schema evolution: a table ingest created before ``derive`` was declared takes the column
    from then on (NULL in its older rows), so queries must keep truncating the source."""
    lake = Lake(str(tmp_path / "lake"))
    old = PipelineSpec(
        name="usage",
        topics=("t",),
        brokers="127.0.0.1:1",
        decode=DecodeSpec(format="json", infer=True),
        table="ns.events",
    )
    _commit(LakeSink(lake, old, IngestMetrics("usage")), old, _batch(DAY[:3]))
    assert "event_hour" not in lake.table("ns.events").schema.names
    new = _spec(derive=DERIVE)
    _commit(LakeSink(lake, new, IngestMetrics("usage")), new, _batch(DAY[3:], first_offset=3))
    hours = lake.table("ns.events").to_arrow(columns=["event_hour"]).column(0).to_pylist()
    assert hours.count(None) == 3  # the older rows
    assert lake.derived_columns("ns.events") == {}
    with connect_lake(lake) as con:
        assert "event_hour" not in con._prepare(HOURLY)
        assert sorted(n for _, n in con.sql(HOURLY).fetchall()) == [2, 2, 2]  # all six rows counted

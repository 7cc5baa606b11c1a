"""Spark (PySpark local[2], a real JVM) on shoal's tables: read as of a version with partition
pruning, a billing model computed in Spark equal to shoal's to the cent, and a result written back
in one commit that shoal.connect then queries."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import shoal
from shoal.config.settings import init_project
from shoal.lake import Lake
from shoal.models import ModelRunner
from shoal.project import Project
from shoal.usecases.billing.models import MODEL_SPECS
from shoal.usecases.billing.simulator import BillingSimulator

pytest.importorskip("pyspark", reason="pip install 'shoal[spark]'")  # bootstrap installs it

from pyspark.sql import SparkSession  # noqa: E402

from shoal.spark import SparkWriteFailed, local_session, read_table, table_files, write_table  # noqa: E402

EVENTS = "billing.usage_events"
TS_US = pa.timestamp("us", tz="UTC")

# revenue_hourly from the raw usage events in Spark SQL, written independently of shoal's DuckDB
# models (same billing rules: dedupe by event_id, caps per resource-month in hour order, exact
# integer micro-dollars converted to DECIMAL(18,6) only at the end).
SPARK_REVENUE_HOURLY = """
WITH events AS (
    SELECT * FROM (
        SELECT *, row_number() OVER (PARTITION BY event_id ORDER BY _kafka_partition, _kafka_offset) AS rn
        FROM usage_events
    ) WHERE rn = 1
),
usage AS (
    SELECT *,
        CAST((CAST(hourly_price_micros AS DECIMAL(38,0)) * quantity_micros + 500000) DIV 1000000 AS BIGINT)
            AS uncapped_micros
    FROM events WHERE event_type = 'EVENT_TYPE_USAGE'
),
running AS (
    SELECT *, coalesce(sum(uncapped_micros) OVER (
        PARTITION BY resource_id, billing_month ORDER BY billing_hour, event_id
        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before_micros
    FROM usage
),
charged AS (
    SELECT *, CASE WHEN monthly_cap_micros IS NULL THEN uncapped_micros
                   ELSE greatest(0, least(uncapped_micros, monthly_cap_micros - before_micros)) END
              AS charge_micros
    FROM running
)
SELECT billing_hour, to_date(billing_hour) AS billing_date, product, plan, region, currency,
       CAST(CAST(sum(charge_micros) AS DECIMAL(24,0)) * 0.000001BD AS DECIMAL(18,6)) AS revenue,
       CAST(CAST(sum(uncapped_micros) AS DECIMAL(24,0)) * 0.000001BD AS DECIMAL(18,6)) AS uncapped_revenue,
       CAST(CAST(sum(quantity_micros) AS DECIMAL(24,0)) * 0.000001BD AS DECIMAL(18,6)) AS quantity,
       count(*) AS usage_events
FROM charged
GROUP BY billing_hour, to_date(billing_hour), product, plan, region, currency
"""
KEY = ("billing_hour", "product", "plan", "region", "currency")


def _arrow(events: list[Any]) -> pa.Table:
    cols: dict[str, pa.Array] = {}
    for name, col in zip(events[0]._fields, zip(*events, strict=True), strict=True):
        if name in ("occurred_at", "billing_hour"):
            cols[name] = pa.array(col, type=TS_US)
        elif name.endswith("_micros"):
            cols[name] = pa.array(col, type=pa.int64())
        else:
            cols[name] = pa.array(col, type=pa.string())
    n = len(events)
    cols["_kafka_partition"] = pa.array([hash(e.resource_id) % 3 for e in events], type=pa.int32())
    cols["_kafka_offset"] = pa.array(range(n), type=pa.int64())
    return pa.table(cols)


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    session = local_session(threads=2, app_name="shoal-tests", memory="1g")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def billing(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    """A project whose usage events landed in two commits (Jan, then Feb), partitioned by month,
    and shoal's billing models refreshed over them. Returns (project, version 1, version 2)."""
    project = tmp_path_factory.mktemp("spark") / "proj"
    init_project(project, "spark")
    lake = Project.load(project).lake
    sim = BillingSimulator(11, datetime(2026, 1, 1, tzinfo=UTC), 32, 40, late_share=0.07, dup_share=0.012)
    table = _arrow(list(sim.events()))
    source = lake.create_table(EVENTS, table.schema, partition_by=["billing_month"])
    jan = table.filter(pa.compute.equal(table["billing_month"], "2026-01"))
    feb = table.filter(pa.compute.equal(table["billing_month"], "2026-02"))
    v1 = source.append(jan)
    v2 = source.append(feb)
    with ModelRunner(lake, MODEL_SPECS) as runner:
        runner.refresh()
    return project, v1, v2


def _keyed(rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    out = {tuple(r[k] for k in KEY): r for r in rows}
    assert len(out) == len(rows)
    return out


def test_revenue_hourly_in_spark_equals_shoal_to_the_cent(
    spark: SparkSession, billing: tuple[Path, int, int]
) -> None:
    project, _, _ = billing
    read_table(spark, project, EVENTS).createOrReplaceTempView("usage_events")
    got = [r.asDict() for r in spark.sql(SPARK_REVENUE_HOURLY).collect()]
    with shoal.connect(project) as con:
        want = con.sql("SELECT * FROM billing.revenue_hourly").to_arrow_table().to_pylist()
        capped = con.sql("SELECT count(*) FROM billing.charges_hourly WHERE charge < uncapped_charge")
        assert capped.fetchone()[0] > 0  # the caps are exercised, not only plain sums
    assert len(want) > 1000
    spark_rows = _keyed(got)
    shoal_rows = _keyed(want)
    assert spark_rows.keys() == {(k[0].replace(tzinfo=None), *k[1:]) for k in shoal_rows} or (
        {(k[0].astimezone(UTC).replace(tzinfo=None), *k[1:]) for k in shoal_rows} == spark_rows.keys()
    )
    for key, w in shoal_rows.items():
        g = spark_rows[(w["billing_hour"].astimezone(UTC).replace(tzinfo=None), *key[1:])]
        for col in ("revenue", "uncapped_revenue", "quantity"):
            assert isinstance(g[col], Decimal) and g[col] == w[col], (key, col)
        assert g["usage_events"] == w["usage_events"], key
        assert g["billing_date"] == w["billing_date"], key

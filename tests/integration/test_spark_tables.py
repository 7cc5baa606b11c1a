"""Spark (PySpark local[2], a real JVM) on shoal's tables: read as of a version with partition
pruning, a billing model computed in Spark equal to shoal's to the cent, and a result written back
in one commit that shoal.connect then queries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyspark.sql import DataFrame, SparkSession

import shoal
from harness.cli import invoke_shoal
from shoal.config.settings import init_project
from shoal.lake import Lake
from shoal.models import ModelRunner
from shoal.project import Project
from shoal.spark import SparkWriteFailed, local_session, read_table, table_files, write_table
from shoal.usecases.billing.models import MODEL_SPECS
from shoal.usecases.billing.simulator import BillingSimulator

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
    sim = BillingSimulator(11, datetime(2026, 1, 1, tzinfo=UTC), 32, 10, late_share=0.07, dup_share=0.012)
    table = _arrow(list(sim.events()))
    source = lake.create_table(EVENTS, table.schema, partition_by=["billing_month"])
    jan = table.filter(pa.compute.equal(table["billing_month"], "2026-01"))
    feb = table.filter(pa.compute.equal(table["billing_month"], "2026-02"))
    v1 = source.append(jan)
    v2 = source.append(feb)
    with ModelRunner(lake, MODEL_SPECS) as runner:
        runner.refresh()
    return project, v1, v2


@pytest.fixture(scope="module")
def spark_revenue(spark: SparkSession, billing: tuple[Path, int, int]) -> Iterator[DataFrame]:
    """revenue_hourly computed in Spark from the raw events, computed once and cached."""
    read_table(spark, billing[0], EVENTS).createOrReplaceTempView("usage_events")
    result = spark.sql(SPARK_REVENUE_HOURLY).cache()
    yield result
    result.unpersist()


def _keyed(rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    out = {tuple(r[k] for k in KEY): r for r in rows}
    assert len(out) == len(rows)
    return out


def test_revenue_hourly_in_spark_equals_shoal_to_the_cent(
    spark_revenue: DataFrame, billing: tuple[Path, int, int]
) -> None:
    project, _, _ = billing
    got = [r.asDict() for r in spark_revenue.collect()]
    with shoal.connect(project) as con:
        want = con.sql("SELECT * FROM billing.revenue_hourly").to_arrow_table().to_pylist()
        capped = con.sql("SELECT count(*) FROM billing.charges_hourly WHERE charge < uncapped_charge")
        assert capped.fetchone()[0] > 0  # the caps are exercised, not only plain sums
    assert len(want) > 500
    spark_rows = _keyed(got)
    shoal_rows = _keyed(want)
    assert spark_rows.keys() == {(k[0].replace(tzinfo=None), *k[1:]) for k in shoal_rows} or (
        {(k[0].astimezone(UTC).replace(tzinfo=None), *k[1:]) for k in shoal_rows} == spark_rows.keys()
    )
    for key, w in shoal_rows.items():
        g = spark_rows[(w["billing_hour"].astimezone(UTC).replace(tzinfo=None), *key[1:])]
        for col in ("revenue", "uncapped_revenue", "quantity"):
            assert isinstance(g[col], Decimal), (key, col)
            assert g[col] == w[col], (key, col)
        assert g["usage_events"] == w["usage_events"], key
        assert g["billing_date"] == w["billing_date"], key


def test_read_as_of_an_older_version_and_partition_pruning(
    spark: SparkSession, billing: tuple[Path, int, int]
) -> None:
    project, v1, v2 = billing
    lake = Project.load(project).lake
    assert read_table(spark, project, EVENTS, version=v1).count() == lake.table(EVENTS).count(v1)
    months = {r[0] for r in read_table(spark, project, EVENTS, version=v1).select("billing_month").collect()}
    assert months == {"2026-01"}
    latest = read_table(spark, lake, EVENTS)
    assert latest.count() == lake.table(EVENTS).count(v2) > lake.table(EVENTS).count(v1)
    # pruned before Spark sees a file: only February's files are given to Spark
    every = table_files(lake, EVENTS)
    feb = read_table(spark, lake, EVENTS, partitions=[("billing_month", "=", "2026-02")])
    feb_files = set(feb.inputFiles())
    assert feb_files
    assert all("billing_month=2026-02" in f for f in feb_files)
    assert len(feb_files) < len(every.files)
    assert {r[0] for r in feb.select("billing_month").distinct().collect()} == {"2026-02"}
    with shoal.connect(project) as con:
        want = con.sql(f"SELECT count(*) FROM {EVENTS} WHERE billing_month = '2026-02'").fetchone()[0]
    assert feb.count() == want
    # the restored partition column is typed and filterable like any column
    assert read_table(spark, lake, EVENTS, partitions=[("billing_month", "in", ["2026-03"])]).count() == 0


def test_write_back_in_one_commit_then_query_with_shoal(
    spark_revenue: DataFrame, billing: tuple[Path, int, int]
) -> None:
    project, _, _ = billing
    lake = Project.load(project).lake
    result = spark_revenue
    v = write_table(result, project, "spark.revenue_hourly", mode="overwrite", partition_by=["billing_date"])
    assert v == 0  # created by the one commit that adds the data
    out = lake.table("spark.revenue_hourly")
    assert [h["operation"] for h in out.history()] == ["CREATE TABLE"]
    assert out.partition_by == ["billing_date"]
    assert str(out.schema.field("revenue").type) == "decimal128(18, 6)"
    assert out.schema.field("billing_hour").type == TS_US
    with shoal.connect(project) as con:
        diff = con.sql(
            """SELECT count(*) FROM (
                 (SELECT * EXCLUDE (billing_date) FROM spark.revenue_hourly
                  EXCEPT ALL SELECT * EXCLUDE (billing_date) FROM billing.revenue_hourly)
                 UNION ALL
                 (SELECT * EXCLUDE (billing_date) FROM billing.revenue_hourly
                  EXCEPT ALL SELECT * EXCLUDE (billing_date) FROM spark.revenue_hourly))"""
        ).fetchone()[0]
        assert diff == 0
        total = con.sql("SELECT sum(revenue) FROM spark.revenue_hourly").fetchone()[0]
        # statistics from the files' footers: DuckDB skips files by them and must still be right
        day = (
            "WHERE billing_hour >= TIMESTAMPTZ '2026-01-20 00:00:00+00'"
            " AND billing_hour < TIMESTAMPTZ '2026-01-21 00:00:00+00'"
        )
        one_day = con.sql(f"SELECT count(*) FROM spark.revenue_hourly {day}").fetchone()[0]
        want_day = con.sql(f"SELECT count(*) FROM billing.revenue_hourly {day}").fetchone()[0]
        assert one_day == want_day > 0
    info = lake.describe("spark.revenue_hourly")
    assert info.num_rows == len(want_rows := result.collect())
    assert sum(r["revenue"] for r in want_rows) == total
    # read back in Spark: one scan of the job's directory, billing_date parsed from its paths
    files = table_files(lake, "spark.revenue_hourly")
    assert not files.groups
    assert [u.rsplit("/", 1)[-1] for u in files.hive] == [files.files[0].split("/")[-3]]
    back = read_table(spark_revenue.sparkSession, lake, "spark.revenue_hourly")
    assert [(f.name, f.dataType) for f in back.schema] == [(f.name, f.dataType) for f in result.schema]
    sums = ["count(*)", "sum(revenue)", "sum(hash(billing_hour, billing_date, product, plan, region))"]
    assert back.selectExpr(*sums).first() == result.selectExpr(*sums).first()
    # append adds one more commit with the same rows; overwrite replaces them all in one commit
    v1 = write_table(result.limit(10), lake, "spark.revenue_hourly", mode="append")
    assert (v1, out.count()) == (1, info.num_rows + 10)
    # only the committed Parquet files are left in the job directories (no _SUCCESS, no checksums)
    left = {p.name.split("-")[0] for p in Path(out.uri).glob("spark-*/**/*") if p.is_file()}
    assert left == {"part"}
    v2 = write_table(result.limit(7), lake, "spark.revenue_hourly", mode="overwrite")
    assert (v2, out.count()) == (2, 7)
    with shoal.connect(project) as con:
        assert con.sql("SELECT sum(revenue) FROM spark.revenue_hourly VERSION AS OF 0").fetchone()[0] == total


def test_a_failed_job_commits_nothing_and_vacuum_removes_its_files(
    spark: SparkSession, tmp_path: Path
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    small = spark.range(0, 50, numPartitions=2).selectExpr("id", "CAST(id % 5 AS STRING) AS k")
    write_table(small, lake, "spark.failing", partition_by=["k"])
    table = lake.table("spark.failing")
    before = (table.version, table.count())
    before_dirs = {p.name for p in Path(table.uri).glob("spark-*")}
    # a task that fails after the other task's files are written: the job aborts
    boom = spark.range(0, 50, numPartitions=2).selectExpr(
        "id", "CASE WHEN id < 40 THEN CAST(id % 5 AS STRING) ELSE raise_error('boom') END AS k"
    )
    with pytest.raises(SparkWriteFailed, match=r"spark\.failing: the Spark job failed, nothing committed"):
        write_table(boom, lake, "spark.failing")
    assert (table.version, table.count()) == before
    assert not [p for p in Path(table.uri).glob("spark-*") if p.name not in before_dirs]  # removed at once
    # a killed job leaves its staging directory behind: no version references it, vacuum removes it
    orphan = Path(table.uri) / "spark-killed0000000000" / "k=1"
    orphan.mkdir(parents=True)
    (orphan / "part-00000-x.snappy.parquet").write_bytes(b"PAR1 half-written")
    assert table.vacuum(retention_hours=0) == []  # the log's tombstones only: orphans stay
    removed = table.vacuum(retention_hours=0, full=True)
    assert any("spark-killed0000000000" in r for r in removed)
    assert not list((Path(table.uri) / "spark-killed0000000000").rglob("*.parquet"))
    assert table.count() == before[1]


def test_without_pyspark_the_import_names_the_install(tmp_path: Path) -> None:
    # a child interpreter where importing pyspark fails, as in an install without the extra
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'pyspark' or name.startswith('pyspark.'):\n"
        "            raise ImportError('No module named ' + repr(name))\n"
        "sys.meta_path.insert(0, _Block())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", "import shoal.spark"], env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (
        "shoal.errors.OptionalDependencyError: Spark on shoal tables (shoal.spark) needs the optional "
        "dependency 'pyspark': pip install 'shoal[spark]'"
    )
    # the CLI works without the extra; its spark command says the same in one line
    cli = subprocess.run(
        [sys.executable, "-m", "shoal", "spark", "sql", "SELECT 1", "-p", str(tmp_path)],
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert cli.returncode == 1
    assert cli.stderr.strip() == (
        "error: Spark on shoal tables (shoal.spark) needs the optional dependency 'pyspark': "
        "pip install 'shoal[spark]'"
    )


def test_shoal_spark_sql_reads_versions_and_writes_back(
    spark: SparkSession, billing: tuple[Path, int, int]
) -> None:
    project, v1, _ = billing
    query = (
        "SELECT billing_month, count(*) AS n FROM billing.usage_events VERSION AS OF {v} "
        "GROUP BY 1 ORDER BY 1"
    )
    # the module's session is running: the command uses it and leaves it running
    old = invoke_shoal(["spark", "sql", query.format(v=v1), "-p", str(project), "--format", "json"])
    assert old.exit_code == 0, old.output
    rows = json.loads(old.output)
    with shoal.connect(project) as con:
        want = con.sql(
            f"SELECT billing_month, count(*) FROM billing.usage_events VERSION AS OF {v1} GROUP BY 1"
        ).fetchall()
    assert [(r["billing_month"], r["n"]) for r in rows] == want
    wrote = invoke_shoal(
        ["spark", "sql", "SELECT product, count(*) AS n FROM billing.usage_events GROUP BY 1",
         "--write", "spark.by_product", "--partition-by", "product", "-p", str(project), "-f", "json"]
    )  # fmt: skip
    assert wrote.exit_code == 0, wrote.output
    out = json.loads(wrote.output)
    assert (out["table"], out["version"], out["mode"]) == ("spark.by_product", 0, "overwrite")
    with shoal.connect(project) as con:
        assert (
            con.sql("SELECT sum(n) FROM spark.by_product").fetchone()[0]
            == Project.load(project).lake.table(EVENTS).count()
        )
    bad = invoke_shoal(["spark", "sql", "SELECT * FROM billing.nope", "-p", str(project)])
    assert bad.exit_code == 1
    assert "no table billing.nope" in bad.output


def test_partition_values_from_the_log_when_paths_do_not_spell_them(
    spark: SparkSession, tmp_path: Path
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    table_dir = tmp_path / "lake" / "ext" / "flat"
    table_dir.mkdir(parents=True)
    import pyarrow.parquet as pq

    from shoal.lake.addfiles import DataFile, add_files

    pq.write_table(pa.table({"id": [1, 2]}), table_dir / "a.parquet")
    pq.write_table(pa.table({"id": [3]}), table_dir / "b.parquet")
    schema = pa.schema([("id", pa.int64()), ("day", pa.date32()), ("region", pa.string())])
    add_files(
        lake,
        "ext.flat",
        [
            DataFile("a.parquet", {"day": "2026-01-01", "region": "fra1"}),
            DataFile("b.parquet", {"day": None, "region": "ams3"}),
        ],
        schema,
        partition_by=["day", "region"],
    )
    files = table_files(lake, "ext.flat")
    assert not files.hive
    assert len(files.groups) == 2
    rows = sorted(tuple(r) for r in read_table(spark, lake, "ext.flat").collect())
    assert rows == [(1, date(2026, 1, 1), "fra1"), (2, date(2026, 1, 1), "fra1"), (3, None, "ams3")]
    pruned = read_table(spark, lake, "ext.flat", partitions=[("day", "=", "2026-01-01")])
    assert [f.rsplit("/", 1)[-1] for f in pruned.inputFiles()] == ["a.parquet"]


def test_merge_on_read_tables_are_read_resolved(spark: SparkSession, tmp_path: Path) -> None:
    from shoal.lake.mergeonread import MergeOnRead, base_rows, change_rows

    lake = Lake(str(tmp_path / "lake"))
    layout = MergeOnRead(("id",))
    table = lake.create_table(
        "rep.items", pa.schema([("id", pa.int64()), ("name", pa.string()), *layout.fields()])
    )
    table.append(base_rows(pa.table({"id": [1, 2, 3, 4], "name": ["a", "b", "c", "d"]}), table.schema))
    first = change_rows(pa.table({"id": [2, 5], "name": ["B", "e"]}), pa.table({"id": [3]}), 2, table.schema)
    table.append(first)
    second = change_rows(pa.table({"id": [2], "name": ["BB"]}), pa.table({"id": [5]}), 3, table.schema)
    table.append(second)
    df = read_table(spark, lake, "rep.items")
    assert df.columns == ["id", "name"]
    assert sorted(tuple(r) for r in df.collect()) == [(1, "a"), (2, "BB"), (4, "d")]
    assert sorted(tuple(r) for r in read_table(spark, lake, "rep.items", version=2).collect()) == [
        (1, "a"),
        (2, "B"),
        (4, "d"),
        (5, "e"),
    ]

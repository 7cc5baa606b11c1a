"""Write a Spark DataFrame back as a shoal table, in one atomic Delta commit.

Spark writes Parquet into a fresh ``spark-<id>/`` directory inside the table's directory (its own
output committer moves task files in place only when the job succeeds); shoal then reads the
files' footers and commits them with one Delta transaction. Until that commit no reader sees a
byte of them: a failed or killed job leaves the table as it was, and its files, referenced by no
version, are removed by ``shoal vacuum``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Literal
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.fs as pafs
from py4j.protocol import Py4JError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession

from shoal.errors import ConfigError
from shoal.lake import Lake, validate_name
from shoal.lake.addfiles import DataFile, add_files
from shoal.spark.errors import SparkWriteFailed, UnsupportedTable
from shoal.spark.source import LakeSource, as_lake, spark_uri
from shoal.spark.types import spark_to_arrow

#: Spark's directory value for a null partition (Delta's add action says null)
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
STAGING_PREFIX = "spark-"


@contextmanager
def _write_conf(spark: SparkSession) -> Iterator[None]:
    """Timestamps as INT64 microseconds (Spark's default INT96 is not Delta's type)."""
    key = "spark.sql.parquet.outputTimestampType"
    before = spark.conf.get(key, None)
    spark.conf.set(key, "TIMESTAMP_MICROS")
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)


def _partition_types_ok(name: str, schema: pa.Schema, partition_by: Sequence[str]) -> None:
    for column in partition_by:
        if column not in schema.names:
            raise ConfigError(f"write to {name}: partition column {column!r} is not in the DataFrame")
        t = schema.field(column).type
        # Spark spells these in directory names exactly as Delta spells partition values.
        if not (
            pa.types.is_string(t) or pa.types.is_integer(t) or pa.types.is_date32(t) or pa.types.is_boolean(t)
        ):
            raise UnsupportedTable(
                f"write to {name}: partition column {column!r} is {t}; "
                "partition by a string, integer, boolean or date column"
            )


def _written(lake: Lake, name: str, staging: str, partition_by: Sequence[str]) -> list[DataFile]:
    """The Parquet files the job left under ``staging``, with the partition values their
    ``col=value`` directories name."""
    fs, base = lake.location.filesystem()
    ns, tbl = name.split(".", 1)
    root = f"{base}/{ns}/{tbl}"
    infos = fs.get_file_info(pafs.FileSelector(f"{root}/{staging}", recursive=True))
    files = []
    for info in infos:
        rel = info.path[len(root) + 1 :]
        parts = rel.split("/")
        if info.type == pafs.FileType.File and parts[-1].startswith(".") and parts[-1].endswith(".crc"):
            # Hadoop's local filesystem writes a checksum beside every file: noise in the table
            with suppress(OSError):
                fs.delete_file(info.path)
            continue
        if info.type != pafs.FileType.File or not parts[-1].endswith(".parquet"):
            continue
        if any(p.startswith(("_", ".")) for p in parts):
            continue  # _temporary/ of an unfinished task, checksums
        dirs = dict(p.split("=", 1) for p in parts[1:-1] if "=" in p)
        values: dict[str, str | None] = {}
        for column in partition_by:
            raw = dirs.get(column)
            if raw is None:
                raise SparkWriteFailed(f"write to {name}: {rel} has no {column}= directory")
            value = unquote(raw)
            values[column] = None if value == HIVE_NULL else value
        files.append(DataFile(rel, values))
    return sorted(files, key=lambda f: f.path)


def _remove_tree(lake: Lake, name: str, staging: str) -> None:
    fs, base = lake.location.filesystem()
    ns, tbl = name.split(".", 1)
    with suppress(OSError):
        fs.delete_dir(f"{base}/{ns}/{tbl}/{staging}")


def write_table(
    df: DataFrame,
    target: LakeSource,
    name: str,
    mode: Literal["append", "overwrite"] = "append",
    partition_by: Sequence[str] | None = None,
    *,
    description: str = "",
    owner: str = "",
) -> int:
    """Write ``df`` to table ``name`` (created when missing) and return the committed version.

    ``overwrite`` replaces every row; ``append`` adds (new nullable columns join the schema).
    ``partition_by`` defaults to the existing table's partition columns.
    """
    validate_name(name)
    if mode not in ("append", "overwrite"):
        raise ConfigError(f"write to {name}: mode must be append or overwrite, not {mode!r}")
    lake = as_lake(target)
    existing = lake.find(name)
    if partition_by is None:
        partition_by = existing.partition_by if existing is not None else []
    partition_by = list(partition_by)
    schema = spark_to_arrow(df.schema, f"write to {name}")
    _partition_types_ok(name, schema, partition_by)
    # The table's column order: data columns first, then partition columns (as Spark's files hold).
    staging = f"{STAGING_PREFIX}{uuid.uuid4().hex[:16]}"
    ns, tbl = name.split(".", 1)
    out = spark_uri(f"{lake.location.table_uri(ns, tbl)}/{staging}")
    try:
        with _write_conf(df.sparkSession):
            (
                df.write.mode("errorifexists")
                .option("mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")
                .partitionBy(*partition_by)
                .parquet(out)
            )
    except (PySparkException, Py4JError) as exc:
        _remove_tree(lake, name, staging)  # best effort; vacuum removes what a kill leaves
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise SparkWriteFailed(f"write to {name}: the Spark job failed, nothing committed: {first}") from exc
    files = _written(lake, name, staging, partition_by)
    return add_files(
        lake,
        name,
        files,
        schema,
        mode=mode,
        partition_by=partition_by,
        operation=f"shoal.spark write_table ({mode})",
        description=description,
        owner=owner,
        source="spark",
    )

"""Spark on shoal's tables: read any table as of a version, write a result back in one commit.

Optional (``pip install 'shoal[spark]'``). No jars beyond the PyPI ``pyspark`` package: tables are
read from their snapshot's file list (partition values restored from the Delta log, partitions
pruned before Spark sees a file) and written as Parquet by Spark, then committed by shoal.
"""

from __future__ import annotations

from shoal.errors import OptionalDependencyError

try:
    import pyspark  # noqa: F401
except ImportError as exc:  # one line naming the install, as for every optional extra
    raise OptionalDependencyError("Spark on shoal tables (shoal.spark)", "spark", "pyspark") from exc

from shoal.spark.errors import SparkError, SparkWriteFailed, UnsupportedTable
from shoal.spark.read import PartitionFilter, read_table, table_files
from shoal.spark.session import local_session
from shoal.spark.types import arrow_to_spark, spark_to_arrow
from shoal.spark.write import write_table

__all__ = [
    "PartitionFilter",
    "SparkError",
    "SparkWriteFailed",
    "UnsupportedTable",
    "arrow_to_spark",
    "local_session",
    "read_table",
    "spark_to_arrow",
    "table_files",
    "write_table",
]

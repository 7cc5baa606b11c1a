"""A local Spark session configured the way shoal's tables need."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from pyspark.sql import SparkSession


def local_session(
    threads: int = 2, app_name: str = "shoal", memory: str = "1g", conf: Mapping[str, str] | None = None
) -> SparkSession:
    """``local[threads]`` Spark on this machine, in UTC, with the UI off.

    The session time zone is UTC so that ``date_trunc('hour', ts)`` buckets the same wall-clock
    hours as shoal's SQL. The driver's loopback address and the Python workers' interpreter are
    pinned (``SPARK_LOCAL_IP``, ``PYSPARK_PYTHON``) unless already set.
    """
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(f"local[{threads}]")
        .appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", memory)
        .config("spark.sql.shuffle.partitions", str(max(2, threads * 2)))
    )
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark

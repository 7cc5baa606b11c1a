"""Spark SQL over the lake: ``ns.table`` (and ``ns.table VERSION AS OF n``) names lake tables.

Spark's session catalog has no Delta tables here (ADR 0030), so each lake table the query names is
read with :func:`read_table` into a temporary view and the reference is rewritten to that view
(sqlglot, Spark dialect) before Spark parses the query.
"""

from __future__ import annotations

import re
from typing import Any

import sqlglot
from pyspark.sql import DataFrame, SparkSession
from sqlglot import exp
from sqlglot.errors import ParseError

from shoal.errors import ConfigError
from shoal.spark.read import read_table
from shoal.spark.source import LakeSource, as_lake


def _version(table: exp.Table, where: str) -> int | str | None:
    v = table.args.get("version")
    if v is None:
        return None
    value = v.expression
    if not isinstance(value, exp.Literal):
        raise ConfigError(f"{where}: AS OF takes a literal version number or timestamp")
    if str(v.this).upper() == "VERSION":
        if value.is_string or not value.is_int:
            raise ConfigError(f"{where}: VERSION AS OF takes a version number")
        return int(value.this)
    return str(value.this)


def lake_sql(spark: SparkSession, source: LakeSource, query: str) -> DataFrame:
    """Run Spark SQL where ``ns.table`` names a lake table (at ``VERSION AS OF n`` /
    ``TIMESTAMP AS OF '…'`` when given); names Spark knows otherwise are left alone."""
    lake = as_lake(source)
    try:
        tree = sqlglot.parse_one(query, read="spark")
    except ParseError as exc:
        raise ConfigError(f"SQL does not parse: {str(exc).splitlines()[0]}") from exc
    views: dict[tuple[str, Any], str] = {}
    for table in list(tree.find_all(exp.Table)):
        if not table.db or table.catalog:
            continue
        name = f"{table.db}.{table.name}"
        version = _version(table, f"table {name}")
        key = (name, version)
        if key not in views:
            view = re.sub(r"[^a-z0-9_]", "_", f"shoal__{table.db}__{table.name}__{version or 'latest'}")
            read_table(spark, lake, name, version=version).createOrReplaceTempView(view)
            views[key] = view
        table.set("db", None)
        table.set("version", None)
        table.set("this", exp.to_identifier(views[key]))
    return spark.sql(tree.sql(dialect="spark"))

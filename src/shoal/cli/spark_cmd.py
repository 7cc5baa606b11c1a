"""``shoal spark sql``: Spark SQL over the lake tables, optionally written back as a table.

PySpark is imported only when the command runs: ``shoal`` works without the extra, and the command
then fails with one line naming ``pip install 'shoal[spark]'``.
"""

from __future__ import annotations

import sys
from typing import Annotated, Literal, cast

import typer

from shoal.options import FormatOpt, ProjectOpt
from shoal.output import OutputFormat, emit, emit_arrow, err_console

spark_app = typer.Typer(help="Spark (PySpark local[N]) on the lake's tables (pip install 'shoal[spark]').")


@spark_app.command("sql")
def sql(  # noqa: PLR0917 (typer arguments and options)
    query: Annotated[
        str,
        typer.Argument(
            help="Spark SQL; ns.table names a lake table (VERSION AS OF n works). '-' reads stdin."
        ),
    ],
    write: Annotated[
        str | None, typer.Option("--write", help="Write the result to this table (one commit).")
    ] = None,
    mode: Annotated[str, typer.Option(help="With --write: append or overwrite.")] = "overwrite",
    partition_by: Annotated[
        list[str] | None, typer.Option("--partition-by", help="With --write: a partition column.")
    ] = None,
    threads: Annotated[int, typer.Option(help="Spark local[N] threads.")] = 2,
    memory: Annotated[str, typer.Option(help="Spark driver memory.")] = "1g",
    project: ProjectOpt = None,
    fmt: FormatOpt = OutputFormat.table,
    max_rows: Annotated[int, typer.Option(help="Rows shown in table format.")] = 100,
) -> None:
    """Run Spark SQL over every lake table; print the result or write it back with --write."""
    from shoal.project import Project
    from shoal.spark import local_session, write_table
    from shoal.spark.sql import lake_sql

    text = sys.stdin.read() if query == "-" else query
    lake = Project.load(project).lake
    quiet = fmt is not OutputFormat.table
    from pyspark.sql import SparkSession

    # a session already running in this process (a notebook, a test) is used and left running
    ours = SparkSession.getActiveSession() is None
    with err_console.status("starting Spark", spinner="dots") if not quiet else _nothing():
        spark = local_session(threads=threads, app_name="shoal-spark-sql", memory=memory)
    try:
        with err_console.status("running", spinner="dots") if not quiet else _nothing():
            df = lake_sql(spark, lake, text)
            if write is None:
                result = df.toArrow()
            else:
                if mode not in ("append", "overwrite"):
                    raise typer.BadParameter("append or overwrite", param_hint="--mode")
                version = write_table(
                    df,
                    lake,
                    write,
                    mode=cast(Literal["append", "overwrite"], mode),
                    partition_by=partition_by,
                )
        if write is None:
            emit_arrow(result, fmt, max_rows=max_rows)
        else:
            info = lake.describe(write)
            emit({"table": write, "version": version, "mode": mode, "rows": info.num_rows}, fmt)
    finally:
        if ours:
            spark.stop()


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None

"""CLI: ``shoal ingest PIPELINE`` (run one worker) and ``shoal pipelines`` (list them)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import typer

from shoal import open_project
from shoal.options import FormatOpt, ProjectOpt
from shoal.output import OutputFormat, emit, emit_rows, err_console


def _client_option(values: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for kv in values or []:
        key, sep, value = kv.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--client expects KEY=VALUE, got {kv!r}")
        out[key.strip()] = value
    return out


def register(app: typer.Typer) -> None:
    @app.command("ingest")
    def ingest(  # noqa: PLR0917 (typer options)
        pipeline: Annotated[
            str, typer.Argument(help="Pipeline name (pipelines/<name>.yaml) or a YAML path.")
        ],
        project: ProjectOpt = None,
        until_drained: Annotated[
            bool, typer.Option("--until-drained", help="Stop once every assigned partition is consumed.")
        ] = False,
        metrics_port: Annotated[
            int | None, typer.Option("--metrics-port", help="Serve Prometheus /metrics on 127.0.0.1:PORT.")
        ] = None,
        client: Annotated[
            list[str] | None,
            typer.Option(
                "--client", help="Extra librdkafka setting KEY=VALUE (repeatable), e.g. group.instance.id=w1."
            ),
        ] = None,
        drain_idle_s: Annotated[
            float,
            typer.Option(
                "--drain-idle-s", help="With --until-drained: seconds without records that count as drained."
            ),
        ] = 2.0,
        log_level: Annotated[
            str, typer.Option("--log-level", help="Log level of the JSON logs on stderr.")
        ] = "INFO",
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Run one worker of a pipeline: Kafka topic(s) into a lake table, exactly once.

        Start more workers with the same pipeline to share partitions. Stops on SIGTERM/SIGINT after
        committing what it buffered. Logs are JSON lines on stderr; the run summary goes to stdout.
        """
        from shoal.ingest import run_pipeline
        from shoal.ingest.jsonlog import configure_json_logging

        configure_json_logging(getattr(logging, log_level.upper(), logging.INFO))
        proj = open_project(project)
        stats = run_pipeline(
            proj,
            pipeline,
            until_drained=until_drained,
            metrics_port=metrics_port,
            extra_client_config=_client_option(client),
            drain_idle_s=drain_idle_s,
        )
        emit(stats.as_dict(), fmt)

    @app.command("pipelines")
    def pipelines(project: ProjectOpt = None, fmt: FormatOpt = OutputFormat.table) -> None:
        """List the project's pipelines: topics, target table, dead-letter table and consumer group."""
        from shoal.errors import ShoalError
        from shoal.ingest import load_pipeline

        proj = open_project(project)
        rows: list[dict[str, Any]] = []
        for name, path in proj.pipeline_files.items():
            try:
                spec = load_pipeline(path, proj.dir)
            except ShoalError as exc:
                rows.append({"name": name, "file": str(path), "error": str(exc)})
                continue
            rows.append(
                {
                    "name": spec.name,
                    "file": str(path),
                    "topics": ", ".join(spec.subscription),
                    "table": spec.table,
                    "dead_letter_table": spec.dlq_table,
                    "group_id": spec.group,
                    "error": None,
                }
            )
        if not rows and fmt is OutputFormat.table:
            err_console.print(f"no pipelines in {proj.pipelines_path}")
            return
        cols = ["name", "topics", "table", "dead_letter_table", "group_id", "file", "error"]
        emit_rows(rows, fmt, columns=cols)

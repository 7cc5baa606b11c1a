"""The ``shoal metrics`` command group: ``scrape | remote-write | smartctl-load | rollup``."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Annotated

import typer

from shoal import open_project
from shoal.options import FormatOpt, ProjectOpt
from shoal.output import OutputFormat, emit, err_console

app = typer.Typer(
    help="Prometheus metrics and smartctl reports into the lake: scrape, remote_write, rollups."
)


@app.command("scrape")
def scrape(  # noqa: PLR0917 (typer options)
    targets_file: Annotated[
        Path,
        typer.Argument(help="Prometheus file_sd targets file (YAML or JSON); re-read when it changes."),
    ],
    project: ProjectOpt = None,
    job: Annotated[str, typer.Option(help="job label for targets whose group sets none.")] = "shoal",
    interval: Annotated[float, typer.Option(help="Seconds between rounds (rounds align to it).")] = 300.0,
    jitter: Annotated[float, typer.Option(help="Random 0..N s delay per target to spread load.")] = 5.0,
    timeout: Annotated[float, typer.Option(help="Per-target request timeout in seconds.")] = 10.0,
    concurrency: Annotated[int, typer.Option(help="Targets scraped at the same time.")] = 64,
    once: Annotated[bool, typer.Option("--once", help="Scrape one round, write it, and exit.")] = False,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Scrape Prometheus targets into metrics.samples / metrics.series / metrics.targets."""
    from shoal.sources.prometheus import MetricsWriter, ScrapeConfig, Scraper, TargetsFile

    proj = open_project(project)
    config = ScrapeConfig(
        job=job, interval_s=interval, jitter_s=jitter, timeout_s=timeout, concurrency=concurrency
    )
    tf = TargetsFile(targets_file, default_job=job)
    scraper = Scraper(tf, MetricsWriter(proj.lake), config)

    async def main() -> None:
        if once:
            result = await scraper.scrape_round()
            emit(result.summary(), fmt)
            return
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await scraper.run(stop, on_round=lambda r: emit(r.summary(), fmt))
        err_console.print("scraper stopped")

    asyncio.run(main())


@app.command("remote-write")
def remote_write(
    project: ProjectOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 9201,
    max_batch_samples: Annotated[
        int, typer.Option(help="Flush when this many samples are pending.")
    ] = 100_000,
    max_batch_delay: Annotated[
        float, typer.Option(help="Flush at most this many seconds after a sample arrived.")
    ] = 1.0,
) -> None:
    """Serve Prometheus remote_write (POST /api/v1/write) into the metrics tables."""
    from shoal.sources.prometheus import MetricsWriter, ReceiverConfig
    from shoal.usecases.metrics.receiver import serve

    proj = open_project(project)
    config = ReceiverConfig(max_batch_samples=max_batch_samples, max_batch_delay_s=max_batch_delay)
    err_console.print(f"remote_write receiver on http://{host}:{port}/api/v1/write -> {proj.lake.root}")
    serve(MetricsWriter(proj.lake), host=host, port=port, config=config)


@app.command("smartctl-load")
def smartctl_load(
    paths: Annotated[
        list[Path], typer.Argument(help="smartctl --json -a output files (or directories of *.json).")
    ],
    project: ProjectOpt = None,
    host: Annotated[str, typer.Option(help="Host the files were collected on (part of device_id).")] = "",
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Load smartctl JSON into infra.smart_devices and infra.smart_attributes."""
    from shoal.sources.smartctl import parse_smartctl_file, write_reports

    files: list[Path] = []
    for p in paths:
        files.extend(sorted(p.glob("*.json")) if p.is_dir() else [p])
    reports = [parse_smartctl_file(f, host=host) for f in files]
    devices, attrs = write_reports(open_project(project).lake, reports)
    emit({"files": len(files), "devices": devices, "attributes": attrs}, fmt)


@app.command("rollup")
def metrics_rollup(
    project: ProjectOpt = None,
    full: Annotated[bool, typer.Option("--full", help="Recompute every day, not only changed days.")] = False,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Refresh metrics.samples_5m / metrics.samples_1h from metrics.samples (changed days only).

    The same as ``shoal refresh metrics.samples_5m metrics.samples_1h``: the rollups are models
    of the ``shoal.usecases.metrics`` use case, which the project must list under ``models:``.
    """
    from shoal.errors import NotFoundError
    from shoal.sources.prometheus import ROLLUPS

    proj = open_project(project)
    try:
        runner = proj.runner(list(ROLLUPS))
    except NotFoundError as exc:
        raise NotFoundError(f"{exc}: add shoal.usecases.metrics.models to models: in shoal.yaml") from exc
    with runner:
        results = runner.refresh(full=full)
    emit({r.model: r.mode for r in results}, fmt)

"""``shoal databases`` and ``shoal sync``, plugged into the CLI through ``shoal.commands`` entry points.

Errors are raised as :class:`~shoal.errors.ShoalError`: the CLI's entry point prints them as one line.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from shoal.errors import ShoalError
from shoal.options import FormatOpt, ProjectOpt
from shoal.output import OutputFormat, console, emit, emit_rows, err_console
from shoal.project import Project


def databases(project: ProjectOpt = None, fmt: FormatOpt = OutputFormat.table) -> None:
    """List the databases declared in shoal.yaml and whether each answers (password never shown)."""
    from shoal.replicate.probe import probe

    proj = Project.load(project)
    endpoints = proj.endpoints()
    results = [probe(ep) for ep in endpoints]
    if fmt is OutputFormat.json:
        emit([{**ep.describe(), **r.as_dict()} for ep, r in zip(endpoints, results, strict=True)], fmt)
    elif results or fmt is OutputFormat.csv:
        no = "[red]no[/red]" if fmt is OutputFormat.table else "no"
        rows = [
            {"name": r.name, "where": r.where, "reachable": "yes" if r.reachable else no,
             "detail": r.detail, "ms": r.latency_ms}
            for r in results
        ]  # fmt: skip
        emit_rows(rows, fmt, columns=["name", "where", "reachable", "detail", "ms"])
    else:
        console.print("No databases declared (add a databases: section to shoal.yaml).")
    if not all(r.reachable for r in results):
        raise typer.Exit(1)


def sync(  # noqa: PLR0917 (typer arguments and options)
    name: Annotated[str, typer.Argument(help="A database declared under databases: in shoal.yaml.")],
    tables: Annotated[
        list[str] | None, typer.Argument(help="Tables to copy (default: sync.tables or all).")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep applying changes until interrupted.")
    ] = False,
    poll: Annotated[float, typer.Option(help="Seconds between change polls with --follow.")] = 0.2,
    compact: Annotated[
        bool,
        typer.Option(
            "--compact", help="Fold the change tails of merge-on-read replicas into their bases, then exit."
        ),
    ] = False,
    project: ProjectOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Copy a database's tables into the lake: a snapshot in key chunks, then its changes, exactly once."""
    from shoal.replicate.sync import Syncer

    stop = threading.Event()
    if follow and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    proj = Project.load(project)
    endpoint = next((e for e in proj.endpoints() if e.name == name), None)
    if endpoint is None:
        known = ", ".join(proj.settings.databases) or "none"
        raise ShoalError(f"no database {name!r} in shoal.yaml (declared: {known})")
    if compact:
        done = Syncer(proj.lake, endpoint).compact(tables or ())
        rows = [c.as_dict() for c in done]
        if fmt is OutputFormat.json:
            emit(rows, fmt)
            return
        emit_rows(rows, fmt, columns=["table", "change_rows", "files_removed", "files_added", "seconds"])
        return
    show = fmt is OutputFormat.table and sys.stderr.isatty()
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err_console, disable=not show,
    ) as bar:  # fmt: skip
        tasks: dict[str, TaskID] = {}

        def on_progress(table: str, done: int, total: int | None, phase: str) -> None:
            key = f"{table}:{phase}"
            if key not in tasks:
                tasks[key] = bar.add_task(f"{name}.{table} {phase}", total=total)
            bar.update(tasks[key], completed=done, total=total)

        syncer = Syncer(proj.lake, endpoint, on_progress=on_progress)
        report = syncer.run(tables or (), follow=follow, stop=stop, poll_s=poll)
    if fmt is OutputFormat.json:
        emit(report.as_dict(), fmt)
        return
    rows = [
        {"table": t.table, "lake table": t.lake_table, "snapshot rows": t.snapshot_rows,
         "upserted": t.upserted, "deleted": t.deleted}
        for t in report.tables.values()
    ]  # fmt: skip
    emit_rows(rows, fmt, columns=["table", "lake table", "snapshot rows", "upserted", "deleted"])

"""``shoal databases`` and ``shoal sync``, plugged into the CLI through ``shoal.commands`` entry points.

``app`` groups both for tests; the CLI mounts the functions.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table as RichTable

from shoal.errors import ShoalError
from shoal.project import Project

console = Console(width=None if sys.stdout.isatty() else 240)
err_console = Console(stderr=True, soft_wrap=True)  # an error stays one line

ProjectOpt = Annotated[
    Path | None,
    typer.Option(
        "--project", "-p", help="Project directory (default: $SHOAL_PROJECT or .).", envvar="SHOAL_PROJECT"
    ),
]


class Format(StrEnum):
    table = "table"
    json = "json"


FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="table for people, json for scripts.")]


def _fail(exc: ShoalError) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
    return typer.Exit(1)


def _json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def databases(project: ProjectOpt = None, fmt: FormatOpt = Format.table) -> None:
    """List the databases declared in shoal.yaml and whether each answers (password never shown)."""
    from shoal.replicate.probe import probe

    try:
        proj = Project.load(project)
        results = [probe(ep) for ep in proj.endpoints()]
    except ShoalError as exc:
        raise _fail(exc) from None
    if fmt is Format.json:
        _json([{**ep.describe(), **r.as_dict()} for ep, r in zip(proj.endpoints(), results, strict=True)])
    else:
        table = RichTable("name", "where", "reachable", "detail", "ms")
        for r in results:
            table.add_row(
                r.name, r.where, "yes" if r.reachable else "[red]no[/red]", r.detail, str(r.latency_ms or "")
            )
        console.print(table if results else "No databases declared (add a databases: section to shoal.yaml).")
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
    project: ProjectOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Copy a database's tables into the lake: a snapshot in key chunks, then its changes, exactly once."""
    from shoal.replicate.sync import Syncer

    stop = threading.Event()
    if follow and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        proj = Project.load(project)
        endpoint = next((e for e in proj.endpoints() if e.name == name), None)
        if endpoint is None:
            known = ", ".join(proj.settings.databases) or "none"
            raise _fail(ShoalError(f"no database {name!r} in shoal.yaml (declared: {known})"))
        show = fmt is not Format.json and sys.stderr.isatty()
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
    except ShoalError as exc:
        raise _fail(exc) from None
    if fmt is Format.json:
        _json(report.as_dict())
        return
    out = RichTable("table", "lake table", "snapshot rows", "upserted", "deleted")
    for t in report.tables.values():
        out.add_row(t.table, t.lake_table, str(t.snapshot_rows), str(t.upserted), str(t.deleted))
    console.print(out)


app = typer.Typer(
    name="shoal-replicate", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False
)
app.command("databases")(databases)
app.command("sync")(sync)

"""The ``shoal`` command line."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from shoal import __version__, open_project
from shoal.cli import dlq_cmd, ingest_cmd, plugins
from shoal.errors import ShoalError
from shoal.jsonsafe import dumps
from shoal.options import FormatOpt, ProjectOpt
from shoal.output import OutputFormat, console, emit, emit_arrow, emit_rows, err_console
from shoal.project import Project

app = typer.Typer(
    name="shoal",
    help="shoal: events, metrics and databases in one open lakehouse, queried with SQL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"shoal {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    _state["debug"] = debug or os.environ.get("SHOAL_DEBUG") == "1"
    logging.basicConfig(level=logging.DEBUG if _state["debug"] else logging.WARNING)


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Where to create the project.")] = Path("."),
    name: Annotated[str | None, typer.Option(help="Project name (default: the directory's).")] = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Create a new project: shoal.yaml, pipelines/ and a local lake/."""
    from shoal.config import init_project

    path = init_project(directory.resolve(), name)
    if fmt is OutputFormat.json:
        emit({"project_file": str(path)}, fmt)
    else:
        console.print(f"Created {path}. Next: add a pipeline in pipelines/, then `shoal tables`.")


@app.command()
def tables(project: ProjectOpt = None, fmt: FormatOpt = OutputFormat.table) -> None:
    """List every lake table with its description, size and last commit."""
    proj = open_project(project)
    infos = proj.lake.list_tables()
    if fmt is OutputFormat.json:
        emit([i.as_dict() for i in infos], fmt)
        return
    rows = [
        {
            "table": i.name,
            "rows": i.num_rows,
            "files": i.num_files,
            "size": _human(i.size_bytes),
            "version": i.version,
            "last commit": i.last_commit.strftime("%Y-%m-%d %H:%M:%S") if i.last_commit else None,
            "partitioned by": ", ".join(i.partition_by),
            "description": i.description,
        }
        for i in infos
    ]
    emit_rows(rows, fmt, columns=None if rows else ["table"], title=f"lake {proj.lake_root}")


@app.command()
def describe(
    table: Annotated[str, typer.Argument(help="namespace.table")],
    project: ProjectOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Show one table: owner, source, schema, partitioning, size and recent history."""
    proj = open_project(project)
    info = proj.lake.describe(table)
    data = info.as_dict()
    data["history"] = [
        {"version": h.get("version"), "operation": h.get("operation"), "timestamp": h.get("timestamp")}
        for h in proj.lake.table(table).history(10)
    ]
    if fmt is OutputFormat.json:
        emit(data, fmt)
        return
    console.print(f"[bold]{info.name}[/bold]  {info.description}")
    console.print(f"owner: {info.owner or '-'}   source: {info.source or '-'}   uri: {info.uri}")
    console.print(
        f"rows: {info.num_rows}   files: {info.num_files}   size: {_human(info.size_bytes)}   "
        f"version: {info.version}   partitioned by: {', '.join(info.partition_by) or '-'}"
    )
    emit_rows(data["schema"], fmt, title="schema")  # type: ignore[arg-type]
    emit_rows(data["history"], fmt, title="history")  # type: ignore[arg-type]


@app.command()
def sql(
    query: Annotated[
        str, typer.Argument(help="SQL (DuckDB dialect); tables are namespace.table. '-' reads stdin.")
    ],
    project: ProjectOpt = None,
    fmt: FormatOpt = OutputFormat.table,
    max_rows: Annotated[int, typer.Option(help="Rows shown in table format.")] = 100,
) -> None:
    """Run SQL over every lake table. Time travel: FROM ns.t VERSION AS OF 3 / TIMESTAMP AS OF '...'."""
    import shoal

    text = sys.stdin.read() if query == "-" else query
    with shoal.connect(project) as con:
        result = con.query_arrow(text)
    emit_arrow(result, fmt, max_rows=max_rows)


@app.command()
def compact(
    table: Annotated[list[str] | None, typer.Argument(help="Tables to compact (default: all).")] = None,
    project: ProjectOpt = None,
    target_size_mb: Annotated[int | None, typer.Option(help="Target file size in MiB.")] = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Rewrite small files into large ones (readers and writers carry on)."""
    from rich.progress import Progress

    proj = open_project(project)
    names = table or proj.lake.table_names()
    rows = []
    with Progress(console=err_console, transient=True, disable=fmt is not OutputFormat.table) as bar:
        task = bar.add_task("compacting", total=len(names))
        for name in names:
            bar.update(task, description=f"compacting {name}")
            res = proj.lake.table(name).compact(target_size_mb)
            rows.append(
                {
                    "table": name,
                    "files_added": res.get("numFilesAdded", 0),
                    "files_removed": res.get("numFilesRemoved", 0),
                }
            )
            bar.advance(task)
    emit_rows(rows, fmt, columns=["table", "files_added", "files_removed"])


@app.command()
def vacuum(  # noqa: PLR0917 (typer options)
    table: Annotated[list[str] | None, typer.Argument(help="Tables to vacuum (default: all).")] = None,
    project: ProjectOpt = None,
    retention_hours: Annotated[float, typer.Option(help="Keep files needed by versions this recent.")] = 168,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be deleted.")] = False,
    full: Annotated[
        bool,
        typer.Option("--full", help="Also delete files no version ever referenced (a killed Spark job's)."),
    ] = False,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Delete data files no longer referenced by recent versions (limits time travel to the retention)."""
    proj = open_project(project)
    names = table or proj.lake.table_names()
    rows = []
    for name in names:
        removed = proj.lake.table(name).vacuum(retention_hours, dry_run=dry_run, full=full)
        rows.append({"table": name, "files_deleted" if not dry_run else "files_to_delete": len(removed)})
    emit_rows(rows, fmt)


@app.command()
def history(
    table: Annotated[str, typer.Argument(help="namespace.table")],
    project: ProjectOpt = None,
    limit: Annotated[int, typer.Option(help="How many versions.")] = 20,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """The table's commits (versions usable with VERSION AS OF)."""
    from datetime import UTC, datetime

    proj = open_project(project)
    rows = [
        {
            "version": h.get("version"),
            "timestamp": datetime.fromtimestamp(h["timestamp"] / 1000, tz=UTC).isoformat()
            if h.get("timestamp")
            else None,
            "operation": h.get("operation"),
            "metrics": h.get("operationMetrics", {}),
        }
        for h in proj.lake.table(table).history(limit)
    ]
    emit_rows(rows, fmt, columns=["version", "timestamp", "operation"] if fmt is OutputFormat.table else None)


@app.command()
def refresh(  # noqa: PLR0917 (typer options)
    model: Annotated[list[str] | None, typer.Argument(help="Models to refresh (default: all).")] = None,
    project: ProjectOpt = None,
    full: Annotated[bool, typer.Option("--full", help="Recompute from scratch.")] = False,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch", help="Keep refreshing whenever a source table changes, until SIGTERM/SIGINT."
        ),
    ] = False,
    interval: Annotated[
        float,
        typer.Option(
            "--interval",
            min=0.01,
            help="With --watch: a cycle starts at most once per interval (ADR 0049).",
        ),
    ] = 1.0,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Bring models up to date, recomputing only what new data touched.

    With --watch it keeps them fresh as ingestion commits: one line per refresh cycle (one JSON
    object per line with --format json).
    """
    proj = open_project(project)
    if watch:
        _watch(proj, model, full=full, interval_s=interval, fmt=fmt)
        return
    with proj.runner() as runner, err_console.status("refreshing") as status:
        results = runner.refresh(model, full=full, progress=lambda n: status.update(f"refreshing {n}"))
    emit_rows(
        [r.as_dict() for r in results],
        fmt,
        columns=["model", "mode", "touched", "rows_written", "rows_deleted", "version", "seconds"],
    )


def _watch(
    proj: Project, names: list[str] | None, *, full: bool, interval_s: float, fmt: OutputFormat
) -> None:
    import signal
    import time

    from shoal.models import RefreshResult

    stop = {"now": False}

    def handler(_signum: int, _frame: object) -> None:
        stop["now"] = True  # finish the model being refreshed (each one commits atomically), then exit

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}

    def report(results: list[RefreshResult]) -> None:
        changed = [r for r in results if r.mode != "unchanged"]
        if fmt is OutputFormat.json:
            line = {"at": time.time(), "models": [r.as_dict() for r in results]}
            sys.stdout.write(dumps(line) + "\n")
            sys.stdout.flush()
        elif changed:
            parts = ", ".join(f"{r.model} {r.mode} +{r.rows_written}/-{r.rows_deleted}" for r in changed)
            took = sum(r.seconds for r in results)
            err_console.print(f"{time.strftime('%H:%M:%S')} {parts} ({took:.2f} s)")

    try:
        # Only the chosen models (and the state models they read): their sources are then what
        # they read and the others write, so one watcher can keep latency-critical models fresh
        # while another does the rest.
        with proj.runner(names) as runner:
            if full:
                report(runner.refresh(full=True))
            if fmt is not OutputFormat.json:
                sources = ", ".join(runner.sources) or "no source tables"
                err_console.print(f"watching {sources} (Ctrl-C stops)")
            runner.watch(
                interval_s=interval_s,
                should_stop=lambda: stop["now"],
                on_cycle=report,
                on_retry=lambda exc: err_console.print(
                    f"{time.strftime('%H:%M:%S')} retrying: {str(exc).splitlines()[0]}"
                ),
            )
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


ingest_cmd.register(app)
app.add_typer(dlq_cmd.app, name="dlq")


def run(argv: Sequence[str] | None = None) -> None:
    """Entry point: one-line errors and exit code 1, tracebacks only with --debug.

    The use cases' groups and plugged commands (``shoal infra``, ``shoal demo`` …) are mounted
    here, from their entry points, so a broken one is reported like any other error; a built-in
    command (``shoal ingest`` …) runs without loading them (``plugins.needed``).
    ``argv`` (default: the process's arguments) lets tests run the command line in-process."""
    try:
        args = list(sys.argv[1:] if argv is None else argv)
        if plugins.needed(app, args):
            plugins.mount(app)
        code = app(args=args, standalone_mode=False)
        # Without standalone mode a command's `raise typer.Exit(n)` comes back as n.
        if isinstance(code, int) and code:
            sys.exit(code)
    except ShoalError as exc:
        if _state["debug"]:
            raise
        # escaped: a message may hold brackets (pip install 'shoal[spark]', list[int]) that rich
        # would otherwise take for markup and drop
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:
        import click

        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if _state["debug"]:
            raise
        err_console.print(
            f"[red]error:[/red] {type(exc).__name__}: {escape(str(exc))} "
            "(rerun with --debug for the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)

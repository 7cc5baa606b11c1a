"""CLI: ``shoal dlq list|show|replay PIPELINE`` (inspect dead letters, replay them after a fix)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from shoal import open_project
from shoal.options import FormatOpt, ProjectOpt
from shoal.output import OutputFormat, console, emit, emit_rows, err_console

if TYPE_CHECKING:
    from shoal.ingest.replay import LetterFilter, Status
    from shoal.ingest.spec import PipelineSpec
    from shoal.project import Project

app = typer.Typer(
    name="dlq",
    help="Dead letters: inspect them by error class and time, replay them after fixing the pipeline.",
    no_args_is_help=True,
)

PipelineArg = Annotated[str, typer.Argument(help="Pipeline name (pipelines/<name>.yaml) or a YAML path.")]
SinceOpt = Annotated[
    str | None,
    typer.Option("--since", help="Only letters that failed since: a duration (30m, 2h, 7d) or an ISO time."),
]
ClassOpt = Annotated[
    list[str] | None,
    typer.Option("--error-class", "-e", help="Only letters of this error class (repeatable)."),
]
TopicOpt = Annotated[str | None, typer.Option("--topic", help="Only letters from this topic.")]
PartitionOpt = Annotated[int | None, typer.Option("--partition", help="Only letters from this partition.")]


def _filter(
    spec: PipelineSpec,
    *,
    since: str | None,
    classes: list[str] | None,
    status: Status = "all",
    topic: str | None = None,
    partition: int | None = None,
) -> LetterFilter:
    from shoal.ingest.replay import LetterFilter, parse_since

    return LetterFilter(
        spec.name,
        since=parse_since(since) if since else None,
        error_classes=tuple(classes or ()),
        status=status,
        topic=topic,
        partition=partition,
    )


def _spec(proj: Project, pipeline: str) -> PipelineSpec:
    from shoal.ingest import resolve_pipeline

    return resolve_pipeline(proj, pipeline)


def _status(value: str) -> Status:
    if value not in ("pending", "replayed", "all"):
        raise typer.BadParameter(f"--status must be pending, replayed or all, got {value!r}")
    return value  # type: ignore[return-value]


@app.command("list")
def list_letters(  # noqa: PLR0917 (typer options)
    pipeline: PipelineArg,
    project: ProjectOpt = None,
    since: SinceOpt = None,
    error_class: ClassOpt = None,
    bucket: Annotated[
        str, typer.Option("--bucket", help="Time bucket of failed_at: minute, hour or day.")
    ] = "hour",
    status: Annotated[str, typer.Option("--status", help="pending, replayed or all.")] = "all",
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Count a pipeline's dead letters by time bucket and error class (newest first).

    pending: not in the main table yet; still_failing: pending after a replay tried them.
    """
    from shoal.ingest.replay import dead_letter_table, read_letters, summarize

    if bucket not in ("minute", "hour", "day"):
        raise typer.BadParameter(f"--bucket must be minute, hour or day, got {bucket!r}")
    proj = open_project(project)
    spec = _spec(proj, pipeline)
    flt = _filter(spec, since=since, classes=error_class, status=_status(status))
    dlq = dead_letter_table(proj.lake, spec)
    cols = ["failed_at", "error_class", "offset", "replayed_at", "retries"]
    rows = summarize(read_letters(dlq, flt, columns=cols), bucket) if dlq is not None else []  # type: ignore[arg-type]
    if not rows and fmt is OutputFormat.table:
        err_console.print(f"no dead letters for pipeline {spec.name} in {spec.dlq_table}")
        return
    emit_rows(
        rows,
        fmt,
        columns=["bucket", "error_class", "letters", "pending", "replayed", "still_failing"],
        title=f"dead letters of {spec.name} ({spec.dlq_table}) per {bucket}",
    )


@app.command("show")
def show(  # noqa: PLR0917 (typer options)
    pipeline: PipelineArg,
    project: ProjectOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many letters (newest first).")] = 20,
    since: SinceOpt = None,
    error_class: ClassOpt = None,
    status: Annotated[str, typer.Option("--status", help="pending, replayed or all.")] = "pending",
    topic: TopicOpt = None,
    partition: PartitionOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Show dead letters: origin, error, and a preview decoded with the pipeline's current decoder.

    decodes_now tells whether the current decoder reads the value (the transform may still fail).
    """
    from shoal.ingest.replay import dead_letter_table, newest_letters, show_rows

    proj = open_project(project)
    spec = _spec(proj, pipeline)
    flt = _filter(
        spec, since=since, classes=error_class, status=_status(status), topic=topic, partition=partition
    )
    dlq = dead_letter_table(proj.lake, spec)
    rows = show_rows(spec, newest_letters(dlq, flt, limit), limit) if dlq is not None else []
    if fmt is not OutputFormat.table:
        emit_rows(rows, fmt, columns=list(rows[0]) if rows else ["offset"])
        return
    if not rows:
        err_console.print(f"no {status} dead letters for pipeline {spec.name} match")
        return
    emit_rows(
        [{**r, "where": f"{r['topic']}[{r['partition']}]@{r['offset']}", "error": _error(r)} for r in rows],
        fmt,
        columns=["where", "failed_at", "error", "decodes_now", "preview", "retries", "replayed_version"],
        title=f"dead letters of {spec.name} ({spec.dlq_table})",
    )


def _error(r: dict[str, Any]) -> str:
    first = f"{r['error_class']}: {r['error_message']}"
    if r["retry_error_class"]:
        return f"{first}\nlast retry: {r['retry_error_class']}: {r['retry_error_message']}"
    return first


@app.command("replay")
def replay(  # noqa: PLR0917 (typer options)
    pipeline: PipelineArg,
    project: ProjectOpt = None,
    since: SinceOpt = None,
    error_class: ClassOpt = None,
    topic: TopicOpt = None,
    partition: PartitionOpt = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Replay at most this many letters.")
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Letters per main-table commit.")
    ] = 5000,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count what would be replayed and what would still fail.")
    ] = False,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Re-decode and transform pending dead letters with the pipeline's CURRENT spec into its table.

    Exactly once: a replay stopped at any point and run again writes nothing twice. Replayed letters
    are marked (replayed_at, replayed_version), not deleted; letters that still fail stay pending
    with their new error (retry_error_class/message, retries).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from shoal.ingest.replay import BatchEvent, DeadLetterReplay

    proj = open_project(project)
    spec = _spec(proj, pipeline)
    flt = _filter(spec, since=since, classes=error_class, status="pending", topic=topic, partition=partition)
    runner = DeadLetterReplay(proj.lake, spec, batch_size=batch_size)
    show = fmt is OutputFormat.table and sys.stderr.isatty()
    verb: Literal["replaying", "checking"] = "checking" if dry_run else "replaying"
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err_console, disable=not show, transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task(f"{verb} dead letters of {spec.name}", total=None)

        def on_batch(event: BatchEvent) -> None:
            if event.phase == "marked":
                bar.update(task, completed=event.letters_done, total=event.letters_total)

        report = runner.run(flt, dry_run=dry_run, limit=limit, on_batch=on_batch)
    if fmt is not OutputFormat.table:
        emit(report.as_dict(), fmt)
        return
    head = "dry run: would replay" if dry_run else "replayed"
    commits = "" if dry_run else f", {len(report.versions)} commit(s)"
    console.print(
        f"{head} {report.replayed} of {report.letters} pending letter(s) of {spec.name} into "
        f"{spec.table} ({report.rows} row(s){commits}); "
        f"{report.already_present} already there; {report.still_failing} still failing"
    )
    if report.still_failing_by_class:
        emit_rows(
            [{"error_class": k, "letters": v} for k, v in report.still_failing_by_class.items()],
            fmt,
            title="still failing",
        )

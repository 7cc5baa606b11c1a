"""``shoal logs receive | consume | index | search | sql``: log lines in, full-text search out.

Long-running commands (``receive``, ``consume``, ``index --follow``) stop cleanly on SIGTERM/SIGINT
and run as ``python -m shoal logs ...`` under a supervisor.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from shoal import open_project
from shoal.options import FormatOpt, ProjectOpt
from shoal.output import OutputFormat, emit, emit_arrow, emit_rows, err_console

app = typer.Typer(help="Logs: JSON lines over HTTP or Kafka into logs.lines, full-text search with ranking.")

IndexOpt = Annotated[
    Path | None,
    typer.Option(
        "--index",
        help="Index directory (default: <project>/.shoal/logs-index).",
        envvar="SHOAL_LOGS_INDEX",
        show_default=False,
    ),
]


def index_dir(project_dir: Path, override: Path | None) -> Path:
    return override if override is not None else project_dir / ".shoal" / "logs-index"


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


@app.command("receive")
def receive(
    project: ProjectOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 9300,
    max_batch_lines: Annotated[int, typer.Option(help="Commit when this many lines are pending.")] = 50_000,
    max_batch_delay: Annotated[
        float, typer.Option(help="Commit at most this many seconds after a line arrived.")
    ] = 1.0,
) -> None:
    """Serve POST /v1/logs (JSON lines) into logs.lines; bad lines go to logs.lines_dead_letters."""
    from shoal.logs.receiver import ReceiverConfig, serve

    proj = open_project(project)
    config = ReceiverConfig(max_batch_lines=max_batch_lines, max_batch_delay_s=max_batch_delay)
    err_console.print(f"logs receiver on http://{host}:{port}/v1/logs -> {proj.lake.root}")
    serve(proj.lake, host=host, port=port, config=config)


@app.command("consume")
def consume(  # noqa: PLR0917 (typer options)
    topic: Annotated[
        list[str], typer.Option("--topic", "-t", help="Kafka topic of JSON log lines (repeatable).")
    ],
    brokers: Annotated[str, typer.Option(help="Kafka bootstrap servers.", envvar="KAFKA_BROKERS")],
    project: ProjectOpt = None,
    group: Annotated[str | None, typer.Option(help="Consumer group (default shoal-logs).")] = None,
    client: Annotated[
        list[str] | None, typer.Option("--client", help="Extra librdkafka setting KEY=VALUE (repeatable).")
    ] = None,
    until_drained: Annotated[
        bool, typer.Option("--until-drained", help="Stop once every assigned partition is consumed.")
    ] = False,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Consume JSON log lines from Kafka into logs.lines, exactly once (one worker of a group)."""
    from shoal.ingest import run_pipeline
    from shoal.logs.kafka import logs_pipeline
    from shoal.logs.schema import ensure_tables

    settings: dict[str, str] = {}
    for kv in client or []:
        key, sep, value = kv.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--client expects KEY=VALUE, got {kv!r}")
        settings[key.strip()] = value
    proj = open_project(project)
    ensure_tables(proj.lake)
    spec = logs_pipeline(topic, brokers, group_id=group)
    stats = run_pipeline(proj, spec, until_drained=until_drained, extra_client_config=settings)
    emit(stats.as_dict(), fmt)


@app.command("index")
def index(  # noqa: PLR0917 (typer options)
    project: ProjectOpt = None,
    index_path: IndexOpt = None,
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep indexing new commits until stopped.")
    ] = False,
    interval: Annotated[float, typer.Option(help="With --follow: seconds between looks at the table.")] = 1.0,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Drop the index and rebuild it from the table's snapshot.")
    ] = False,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Bring the search index up to date with logs.lines (incrementally; --follow keeps it there)."""
    from shoal.logs.index import Indexer, LogIndex, UpdateResult

    proj = open_project(project)
    idx = LogIndex(index_dir(proj.dir, index_path))
    with Indexer(proj.lake, idx) as indexer:
        result = indexer.update(rebuild=rebuild)
        emit(result.as_dict(), fmt)
        if follow:
            stop = _stop_on_signals()

            def show(r: UpdateResult) -> None:
                emit(r.as_dict(), fmt)

            indexer.follow(stop, interval_s=interval, on_update=show)


@app.command("search")
def search(  # noqa: PLR0917 (typer options)
    query: Annotated[
        str, typer.Argument(help='Words, "phrases", +must, -not, field:value ("" = newest lines).')
    ],
    project: ProjectOpt = None,
    since: Annotated[
        str | None,
        typer.Option(help="Only lines at or after: a duration back from now (15m, 1h, 2d) or an ISO time."),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Only lines before: a duration back or an ISO time.")
    ] = None,
    where: Annotated[
        list[str] | None,
        typer.Option("--where", "-w", help="Label filter key=value, key=a,b or key!=value (repeatable)."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Hits to return, best first.")] = 20,
    index_path: IndexOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Full-text search of logs.lines with ranking (BM25), filtered by time and labels."""
    from shoal.logs.index import LogIndex
    from shoal.logs.query import build_query

    proj = open_project(project)
    q = build_query(query, since=since, until=until, where=where or [], limit=limit)
    idx = LogIndex(index_dir(proj.dir, index_path))
    hits = idx.search(q)
    rows: list[dict[str, Any]] = [h.as_dict() for h in hits]
    if fmt is OutputFormat.table:
        for r in rows:
            r["score"] = round(r["score"], 3)
        emit_rows(rows, fmt, columns=["score", "ts", "service", "level", "host", "message"])
        prog = idx.progress()
        lines = proj.lake.find("logs.lines")
        if prog is None:
            err_console.print(f"[dim]{len(rows)} hit(s); the index is empty: run `shoal logs index`[/dim]")
        else:
            behind = "" if lines is None else f", table at version {lines.version}"
            err_console.print(
                f"[dim]{len(rows)} hit(s); index at table version {prog.table_version}{behind}[/dim]"
            )
    else:
        emit_rows(rows, fmt)


@app.command("sql")
def sql(
    query: Annotated[str, typer.Argument(help="SQL; logs_search('text', n) gives the hits as a list.")],
    project: ProjectOpt = None,
    index_path: IndexOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """SQL over the lake with logs_search(query, lim), e.g.
    SELECT h.* FROM (SELECT unnest(logs_search('timeout', 20), recursive := true)) h"""
    from shoal.logs.index import LogIndex
    from shoal.logs.sql import register

    proj = open_project(project)
    with proj.connect(databases=False) as con:
        register(con.duckdb, LogIndex(index_dir(proj.dir, index_path)))
        emit_arrow(con.query_arrow(query), fmt)


@app.command("ship")
def ship(
    url: Annotated[str, typer.Option(help="The receiver (shoal logs receive), e.g. http://127.0.0.1:9300.")],
    files: Annotated[list[Path] | None, typer.Argument(help="JSON-lines files (default: stdin).")] = None,
    source: Annotated[
        str | None, typer.Option(help="X-Shoal-Source name (default: host/pid/random, one per run).")
    ] = None,
    max_batch: Annotated[int, typer.Option(help="Lines per request.")] = 1000,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Send JSON lines (a file, or stdin: `shoal ingest p 2>&1 | shoal logs ship --url ...`) to a receiver."""
    import sys

    from shoal.logs.shipping import LogShipper

    shipper = LogShipper(url, source=source, max_batch=max_batch)
    with shipper:
        streams = [p.open("rb") for p in files] if files else [sys.stdin.buffer]
        for stream in streams:
            for line in stream:
                if line.strip():
                    shipper.ship(line)
    emit({"sent": shipper.sent, "dead_lettered": shipper.dead_lettered, "dropped": shipper.dropped}, fmt)


@app.command("status")
def status(
    project: ProjectOpt = None, index_path: IndexOpt = None, fmt: FormatOpt = OutputFormat.table
) -> None:
    """The table, its dead letters and how far the index has caught up (versions behind)."""
    from shoal.logs.index import LogIndex
    from shoal.logs.schema import DEAD_LETTERS, LINES

    proj = open_project(project)
    lines = proj.lake.find(LINES)
    dead = proj.lake.find(DEAD_LETTERS)
    path = index_dir(proj.dir, index_path)
    idx = LogIndex(path)
    prog = idx.progress()
    table_version = lines.version if lines is not None else None
    emit(
        {
            "table": LINES,
            "table_version": table_version,
            "lines": lines.count() if lines is not None else 0,
            "dead_letters": dead.count() if dead is not None else 0,
            "index": str(path),
            "index_version": prog.table_version if prog else None,
            "indexed_lines": idx.num_lines(),
            "versions_behind": None
            if table_version is None or prog is None
            else table_version - prog.table_version,
        },
        fmt,
    )

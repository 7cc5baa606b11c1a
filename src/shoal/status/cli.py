"""``shoal status``, plugged into the CLI through the ``shoal.commands`` entry point group."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from shoal.options import FormatOpt, ProjectOpt
from shoal.output import OutputFormat, console, emit, emit_rows

_COLOUR = {"failing": "red", "late": "yellow", "warning": "magenta", "ok": "green"}


def _mark(status: str, fmt: OutputFormat) -> str:
    return f"[{_COLOUR.get(status, 'white')}]{status}[/]" if fmt is OutputFormat.table else status


def _human(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def _workers(p: dict[str, Any]) -> str:
    w = p.get("workers") or {}
    return f"{w.get('running', 0)}/{w.get('declared', 0)}"


def _rows(report: dict[str, Any], fmt: OutputFormat) -> dict[str, tuple[list[dict[str, Any]], list[str]]]:
    def m(status: str) -> str:
        return _mark(status, fmt)

    return {
        "problems": (
            [{"status": m(p["status"]), "what": f"{p['section']}: {p['name']}", "why": p["why"]}
             for p in report["problems"]],
            ["status", "what", "why"],
        ),
        "children": (
            [{"status": m(c["status"]), "child": c["name"], "kind": c.get("kind"), "state": c.get("state"),
              "pid": c.get("pid"), "restarts": c.get("restarts"), "why": c["why"]}
             for c in report.get("children", [])],
            ["status", "child", "kind", "state", "pid", "restarts", "why"],
        ),
        "pipelines": (
            [{"status": m(p["status"]), "pipeline": p["name"],
              "workers": _workers(p),
              "lag": p.get("lag"),
              "partitions": " ".join(f"{x['partition']}:{x['lag'] if x['lag'] is not None else '?'}"
                                     for x in p.get("partitions", [])),
              "rows/s": (p.get("throughput") or {}).get("rows_per_s"),
              "last commit": p.get("last_commit"),
              "dead 1h": (p.get("dead_letters") or {}).get("last_hour"), "why": p["why"]}
             for p in report["pipelines"]],
            ["status", "pipeline", "workers", "lag", "partitions", "rows/s", "last commit", "dead 1h", "why"],
        ),
        "models": (
            [{"status": m(x["status"]), "model": x["name"], "behind": x.get("versions_behind"),
              "why": x["why"]}
             for x in report["models"]],
            ["status", "model", "behind", "why"],
        ),
        "tables": (
            [{"status": m(t["status"]), "table": t["name"], "size": _human(t.get("size_bytes")),
              "files": t.get("files"), "small": t.get("small_files"), "last commit": t.get("last_commit"),
              "last maintenance": (t.get("last_maintenance") or {}).get("at"), "why": t["why"]}
             for t in report["tables"]],
            ["status", "table", "size", "files", "small", "last commit", "last maintenance", "why"],
        ),
        "jobs": (
            [{"status": m(j["status"]), "job": j["name"], "kind": j.get("kind"),
              "last run": (j.get("last_run") or {}).get("finished"),
              "outcome": (j.get("last_run") or {}).get("outcome"), "next": j.get("next_run_at"),
              "why": j["why"]}
             for j in report.get("jobs", [])],
            ["status", "job", "kind", "last run", "outcome", "next", "why"],
        ),
    }  # fmt: skip


def status(
    project: ProjectOpt = None,
    broker_timeout: Annotated[
        float, typer.Option("--broker-timeout", help="Seconds each broker gets to report its watermarks.")
    ] = 2.0,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """What runs and how late it is: children of `shoal up`, pipelines (workers, lag per partition,
    throughput, dead letters), models (freshness against inputs), tables, jobs. Problems first."""
    from shoal.project import Project
    from shoal.status.collect import collect_status

    report = collect_status(Project.load(project), broker_timeout_s=broker_timeout)
    if fmt is OutputFormat.json:
        emit(report, fmt)
        return
    sup = report.get("supervisor") or {}
    if fmt is OutputFormat.table:
        where = f"running (pid {sup['pid']})" if sup.get("running") else "[yellow]not running[/yellow]"
        console.print(
            f"[bold]{report['project']}[/bold]: shoal up {where}; {len(report['problems'])} problem(s)"
        )
    for section, (rows, cols) in _rows(report, fmt).items():
        if rows or section == "problems":
            emit_rows(rows, fmt, columns=cols, title=section if fmt is OutputFormat.table else None)

"""``shoal up`` and ``shoal maintain``, plugged into the CLI through ``shoal.commands`` entry points."""

from __future__ import annotations

import os
import signal
import sys
from typing import Annotated, Any

import typer

from shoal.errors import ShoalError
from shoal.jsonsafe import dumps
from shoal.options import FormatOpt, ProjectOpt
from shoal.output import OutputFormat, emit, emit_rows, err_console
from shoal.project import Project


class NotRunning(ShoalError):
    """``shoal up --reload`` found no running supervisor for the project."""


def _plan_rows(plan: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [
        {"name": c["name"], "kind": c["kind"], "target": c["target"],
         "when": f"continuous, restart {c['restart']}", "command": " ".join(c["argv"][3:])}
        for c in plan["children"]
    ]  # fmt: skip
    rows += [
        {"name": j["name"], "kind": "maintenance", "target": j["action"], "when": j["schedule"],
         "command": " ".join(j["argv"][3:])}
        for j in plan["jobs"]
    ]  # fmt: skip
    return rows


def _print_event(event: dict[str, Any]) -> None:
    kind = event["event"]
    at = str(event.get("at", ""))[11:19]
    if kind == "start":
        line = f"started {event['child']} (pid {event['pid']}, restarts {event['restarts']})"
    elif kind == "crash":
        how = event.get("signal") or f"exit {event.get('exit_code')}"
        line = (
            f"[red]{event['child']} died[/red] ({how}) after {event.get('uptime_s')} s; "
            f"restart in {event['restart_in_s']} s (log {event['log']})"
        )
    elif kind == "job":
        colour = "green" if event["outcome"] == "ok" else "red"
        line = f"job {event['job']}: [{colour}]{event['outcome']}[/{colour}] {event.get('detail', '')}"
    elif kind == "reloaded":
        line = (
            f"reloaded: added {event['added'] or '-'}, removed {event['removed'] or '-'}, "
            f"restarted {event['restarted'] or '-'}"
        )
    elif kind == "reload_failed":
        line = f"[red]reload failed, nothing changed:[/red] {event['error']}"
    elif kind == "stopped":
        line = f"stopped {event['child']}" + (" (killed after the timeout)" if event.get("killed") else "")
    elif kind in ("up", "stopping", "down", "exit"):
        line = {"up": "supervising (SIGHUP or `shoal up --reload` re-reads shoal.yaml; Ctrl-C stops)",
                "stopping": f"stopping {event.get('children')} children", "down": "all stopped",
                "exit": f"{event.get('child')} exited ({event.get('exit_code')})"}[kind]  # fmt: skip
    else:
        line = kind
    err_console.print(f"[dim]{at}[/dim] {line}", highlight=False, soft_wrap=True)


def up(
    project: ProjectOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would run, start nothing.")] = False,
    reload: Annotated[
        bool,
        typer.Option(
            "--reload", help="Tell the running supervisor to re-read shoal.yaml (SIGHUP), then exit."
        ),
    ] = False,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Start and supervise everything shoal.yaml declares: pipeline workers, model watchers, syncs,
    scrapers, the server, and scheduled maintenance.

    Crashed children are restarted with backoff (each crash recorded in .shoal/run/events.jsonl);
    SIGTERM/Ctrl-C stops them all gracefully. With --format json the plan, then one JSON line per
    event, go to stdout.
    """
    from shoal.status.runstate import run_dir
    from shoal.supervise.plan import build_plan
    from shoal.supervise.supervisor import Supervisor

    proj = Project.load(project)
    rd = run_dir(proj.dir, proj.settings.up.run_dir)
    if reload:
        pid = rd.supervisor_pid()
        if pid is None:
            raise NotRunning(f"no shoal up is running for {proj.dir} (no live pid in {rd.pid_file})")
        build_plan(proj)  # a broken file is reported here, not only in the supervisor's events
        os.kill(pid, signal.SIGHUP)
        emit({"reloaded": True, "pid": pid, "project": str(proj.dir)}, fmt)
        return
    plan = build_plan(proj)
    described = plan.describe()
    if fmt is OutputFormat.json:
        sys.stdout.write(dumps({"event": "plan", "dry_run": dry_run, **described}) + "\n")
        sys.stdout.flush()
    else:
        emit_rows(
            _plan_rows(described), fmt, columns=["name", "kind", "target", "when", "command"],
            title=f"shoal up: {proj.dir}" + (" (dry run)" if dry_run else ""),
        )  # fmt: skip
    if dry_run:
        return

    def on_event(event: dict[str, Any]) -> None:
        if fmt is OutputFormat.json:
            sys.stdout.write(
                dumps(event if event["event"] != "up" else {"event": "up", "pid": event["pid"]}) + "\n"
            )
            sys.stdout.flush()
        else:
            _print_event(event)

    Supervisor(proj, on_event=on_event).run(plan)


def maintain(
    job: Annotated[str, typer.Argument(help="A maintenance job declared under up.maintenance.")],
    project: ProjectOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Run one maintenance job now (compaction, vacuum with its retention, or checkpoints)."""
    from rich.progress import Progress

    from shoal.supervise.maintain import run_maintenance

    proj = Project.load(project)
    with Progress(console=err_console, transient=True, disable=fmt is not OutputFormat.table) as bar:
        task = bar.add_task(job, total=None)
        rows = run_maintenance(proj, job, progress=lambda t: bar.update(task, description=f"{job}: {t}"))
    emit_rows(rows, fmt, columns=["table", "action", "ok", "detail", "seconds"])

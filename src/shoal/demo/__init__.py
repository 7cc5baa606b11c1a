"""``shoal demo``: a simulated hosting company's lakehouse, on embedded defaults only.

Each installed use case (:mod:`shoal.usecases.registry`) may contribute a step; a step that fails
is reported and the others still run, so one broken use case never hides the rest (the command
still exits non-zero).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Unpack

from rich.console import Console

from shoal.config import init_project
from shoal.errors import ShoalError
from shoal.project import Project
from shoal.usecases.registry import DemoStep, StepContext, StreamSpec, UseCase, discover, load

#: found by name, like the commands the CLI mounts: the demo and the server are sibling packages
SERVE_ADMIN_TOKEN = "shoal.serve.state:admin_token"

console = Console(stderr=True)


class DemoError(ShoalError):
    """A demo step failed."""


@dataclass
class DemoContext:
    """The demo's side of :class:`shoal.usecases.registry.StepContext`, which each step is given."""

    project: Project
    small: bool
    quiet: bool
    notes: dict[str, Any] = field(default_factory=dict)
    #: operational databases given on the command line (``--mysql``, ``--postgres``)
    databases: dict[str, str] = field(default_factory=dict)

    def say(self, text: str) -> None:
        if not self.quiet:
            console.print(text)

    def suggest_sql(self, query: str) -> None:
        """A query the demo's summary offers to try on this project."""
        self.notes.setdefault("queries", []).append(f'shoal sql -p {self.project.dir} "{query}"')

    def stream(self, **spec: Unpack[StreamSpec]) -> dict[str, Any]:
        """Stream through the embedded Kafka (:func:`shoal.demo.kafka_embedded.stream_use_case`)."""
        from shoal.demo.kafka_embedded import stream_use_case

        return stream_use_case(self, **spec)


def _company_step(ctx: StepContext) -> dict[str, Any]:
    from shoal.demo.company import simulate_company

    company = simulate_company(users=2_000 if ctx.small else 100_000)
    lake = ctx.project.lake
    out = {}
    for name, tbl, desc in [
        ("company.regions", company.regions, "Datacenter regions"),
        ("company.products", company.products, "Products and their launch stage"),
        ("company.teams", company.teams, "Customer teams (accounts)"),
        ("company.users", company.users, "Customer users, sign-up and churn dates"),
    ]:
        t = lake.create_table(name, tbl.schema, description=desc, owner="data-team", source="demo simulator")
        t.overwrite(tbl)
        out[name] = tbl.num_rows
    return out


def steps(usecases: Sequence[UseCase]) -> list[tuple[str, DemoStep]]:
    """The company the use cases share, then each use case's own demo step."""
    found: list[tuple[str, DemoStep]] = [("company", _company_step)]
    for usecase in usecases:
        if usecase.demo_step:
            found.append((usecase.title, load(usecase.demo_step, f"demo step of use case {usecase.name}")))
    return found


PROJECT_YAML = """\
# shoal demo project: a simulated cloud hosting company.
name: shoal-demo
description: Simulated hosting company (users, teams, products, regions) and its use cases.
lake:
  root: lake
pipelines_dir: pipelines
models:
{models}
"""


def _serve_hint(project: Project, directory: Path) -> dict[str, Any]:
    """How to start ``shoal serve`` on the demo, with a fresh admin token (shown once)."""
    settings = project.settings.serve
    try:
        token = str(load(SERVE_ADMIN_TOKEN, "the serve token store")(project))
    except ShoalError as exc:
        token = f"(none: {exc}; create one with `shoal tokens create admin --role admin -p {directory}`)"
    return {
        "command": f"shoal serve -p {directory}",
        "dashboard": f"http://{settings.host}:{settings.port}/",
        "admin_token": token,
    }


def run_demo(
    directory: Path,
    *,
    small: bool = False,
    quiet: bool = False,
    databases: dict[str, str] | None = None,
) -> dict[str, Any]:
    started = time.perf_counter()
    existing = directory / "shoal.yaml"
    if existing.exists() and "name: shoal-demo" in existing.read_text():
        # A re-run rebuilds the demo: its embedded Kafka starts empty each time, so offsets kept in
        # an old lake (exactly-once progress) would rightly skip the new events.
        shutil.rmtree(directory / "lake", ignore_errors=True)
    init_project(directory, "shoal-demo", exist_ok=True)
    usecases = discover()
    # The demo project declares every installed use case's models, like a real project would.
    model_modules = [u.models for u in usecases if u.models]
    (directory / "shoal.yaml").write_text(
        PROJECT_YAML.format(models="\n".join(f"  - {m}" for m in model_modules))
    )
    project = Project.load(directory)
    ctx = DemoContext(project=project, small=small, quiet=quiet, databases=dict(databases or {}))
    summary: dict[str, Any] = {"project": str(directory), "steps": {}}
    failed = []
    for label, step in steps(usecases):
        t0 = time.perf_counter()
        ctx.say(f"[bold cyan]▶ {label}[/bold cyan]")
        try:
            result = step(ctx)
        except ShoalError as exc:
            failed.append(label)
            ctx.say(f"[red]  ✗ {label}: {exc}[/red]")
            summary["steps"][label] = {"error": str(exc)}
            continue
        result["seconds"] = round(time.perf_counter() - t0, 1)
        summary["steps"][label] = result
        ctx.say(f"  ✓ {label} ({result['seconds']} s)")
    summary["seconds"] = round(time.perf_counter() - started, 1)
    summary["tables"] = project.lake.table_names()
    summary["try"] = [
        f"shoal tables -p {directory}",
        *ctx.notes.get("queries", []),
        f'shoal sql -p {directory} "select segment, count(*) users from company.users group by 1"',
    ]
    summary["serve"] = _serve_hint(project, directory)
    if not quiet:
        console.print(f"\n[bold green]Demo ready[/bold green] in {summary['seconds']} s at {directory}")
        console.print("Try:")
        for cmd in summary["try"]:
            console.print(f"  {cmd}", highlight=False, soft_wrap=True)
        serve = summary["serve"]
        console.print("Serve it (HTTP SQL API, Postgres wire protocol and the dashboard):")
        console.print(f"  {serve['command']}", highlight=False, soft_wrap=True)
        console.print(f"  then open {serve['dashboard']} and log in with the admin token:", highlight=False)
        console.print(f"  {serve['admin_token']}", highlight=False, soft_wrap=True)
    if failed:
        raise DemoError(f"demo steps failed: {', '.join(failed)} (the others completed; see above)")
    return summary

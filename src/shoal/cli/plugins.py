"""What other packages plug into ``shoal``, found through entry points.

- ``shoal.usecases``: each use case's command group (:class:`shoal.usecases.registry.UseCase`),
  mounted under the use case's name (``shoal infra …``, ``shoal metrics …``).
- ``shoal.commands``: a command (a function with Typer annotations) or a group (a ``typer.Typer``),
  mounted under the entry point's name (``shoal demo``).

Both name import strings, so the CLI depends on no use case and on no command's package.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import entry_points

import typer

from shoal.usecases.registry import UseCaseError, discover, load

COMMANDS_GROUP = "shoal.commands"
_mounted: set[int] = set()  # ids of the apps already given their plugins


def _taken(app: typer.Typer) -> set[str]:
    names = {g.name for g in app.registered_groups if g.name}
    for c in app.registered_commands:
        if c.name:
            names.add(c.name)
        elif c.callback is not None:
            names.add(c.callback.__name__.replace("_", "-"))
    return names


def needed(app: typer.Typer, argv: Sequence[str]) -> bool:
    """Whether running ``argv`` needs the plugins mounted: not for a command of ``app``'s own.
    Loading every use case costs a built-in command ~0.6 s of start-up and ~65 MiB of memory (the
    server's, the status pages' and pandas' imports), which an ingest worker would hold for days."""
    command = next((a for a in argv if not a.startswith("-")), None)
    return command is None or command not in _taken(app)


def mount(app: typer.Typer) -> None:
    """Add every installed use-case group and plugged command to ``app`` (once)."""
    if id(app) in _mounted:
        return
    _mounted.add(id(app))
    taken = _taken(app)

    def claim(name: str, what: str) -> None:
        if name in taken:
            raise UseCaseError(f"{what} would shadow the command 'shoal {name}'")
        taken.add(name)

    for usecase in discover():
        if usecase.cli:
            group = load(usecase.cli, f"CLI group of use case {usecase.name}")
            claim(usecase.name, f"use case {usecase.name}")
            app.add_typer(group, name=usecase.name)
    for ep in entry_points(group=COMMANDS_GROUP):
        command = load(ep.value, f"command entry point {ep.name}")
        claim(ep.name, f"command entry point {ep.name} ({ep.value})")
        if isinstance(command, typer.Typer):
            app.add_typer(command, name=ep.name)
        else:
            app.command(ep.name)(command)

"""The ``shoal demo`` command, plugged into the CLI through the ``shoal.commands`` entry points."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shoal.options import FormatOpt
from shoal.output import OutputFormat, emit


def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Where to create the demo project.")] = Path(
        ".shoal-demo"
    ),
    fmt: FormatOpt = OutputFormat.table,
    small: Annotated[bool, typer.Option("--small", help="A smaller, faster demo (for tests).")] = False,
    mysql: Annotated[
        str | None,
        typer.Option(
            "--mysql",
            help="Put the leads CRM in this MySQL/MariaDB: mysql://user[:pw]@host[:port]/db "
            "(default: an embedded SQLite file).",
        ),
    ] = None,
    postgres: Annotated[
        str | None,
        typer.Option(
            "--postgres",
            help="Put the leads warehouse in this PostgreSQL: "
            "postgresql://user[:pw]@host[:port]/db (default: an embedded SQLite file).",
        ),
    ] = None,
) -> None:
    """Create a demo project for a simulated hosting company and fill its tables (no services needed)."""
    from shoal.demo import run_demo

    given = {k: v for k, v in (("mysql", mysql), ("postgres", postgres)) if v}
    summary = run_demo(directory.resolve(), small=small, quiet=fmt is not OutputFormat.table, databases=given)
    if fmt is OutputFormat.json:
        emit(summary, fmt)

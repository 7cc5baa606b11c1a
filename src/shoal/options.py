"""The options every command takes, wherever its group lives: ``--project`` and ``--format``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shoal.output import OutputFormat

ProjectOpt = Annotated[
    Path | None,
    typer.Option(
        "--project",
        "-p",
        help="Project directory (default: $SHOAL_PROJECT or the current directory).",
        envvar="SHOAL_PROJECT",
        show_default=False,
    ),
]
FormatOpt = Annotated[
    OutputFormat,
    typer.Option("--format", "-f", help="Output format: table for people, csv/json for scripts."),
]

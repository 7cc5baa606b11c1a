"""The ``shoal`` command line run in this process through its real entry point
(:func:`shoal.cli.main.run`): plugged commands mounted, errors one line, exit codes as a user sees them."""

from __future__ import annotations

from collections.abc import Sequence

import click
from click.testing import CliRunner, Result


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}
)
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
def _shoal(argv: tuple[str, ...]) -> None:
    from shoal.cli.main import run

    run(list(argv))


def invoke_shoal(args: Sequence[str]) -> Result:
    """``shoal ARGS``: ``.exit_code`` and ``.output`` (stdout and stderr) as a terminal would show them."""
    return CliRunner().invoke(_shoal, list(args))

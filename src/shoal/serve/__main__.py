"""``python -m shoal.serve serve|tokens ...``: the serve commands without the main CLI."""

from shoal.serve.cli import main_app

main_app()(prog_name="python -m shoal.serve")

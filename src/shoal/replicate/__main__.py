"""``python -m shoal.replicate databases|sync``: the replication commands without the main CLI."""

from shoal.replicate.cli import app

app()

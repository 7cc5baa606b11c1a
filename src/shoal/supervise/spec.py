"""What the supervisor runs: one :class:`ChildSpec` per long-running child, one :class:`JobSpec` per
scheduled maintenance job."""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from shoal.supervise.schedule import Schedule


class Restart(StrEnum):
    always = "always"  # restart whatever the exit (a long-running child should never end by itself)
    on_failure = "on-failure"  # restart after a non-zero exit or a signal only
    never = "never"


def shoal_argv(project_dir: Path, *args: str) -> list[str]:
    """``python -m shoal ARGS --project DIR`` with this interpreter (the supervisor's venv)."""
    return [sys.executable, "-m", "shoal", *args, "--project", str(project_dir)]


@dataclass(frozen=True)
class ChildSpec:
    """One supervised child process.

    ``fingerprint`` changes when what the child runs changes beyond its argv (the pipeline file,
    the database's settings): on reload a child whose argv or fingerprint changed is restarted."""

    name: str
    argv: tuple[str, ...]
    kind: str
    restart: Restart = Restart.always
    fingerprint: str = ""
    #: for status: what the child works for (a pipeline, models, a database)
    target: str = ""
    env: tuple[tuple[str, str], ...] = field(default=())

    @property
    def identity(self) -> str:
        h = hashlib.sha256("\x1f".join([*self.argv, self.restart, self.fingerprint]).encode())
        for k, v in self.env:
            h.update(f"\x1e{k}={v}".encode())
        return h.hexdigest()[:16]

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind,
            "target": self.target,
            "restart": str(self.restart),
            "argv": list(self.argv),
        }


@dataclass(frozen=True)
class JobSpec:
    """A scheduled job: each run is its own short-lived child (``shoal maintain NAME``)."""

    name: str
    argv: tuple[str, ...]
    schedule: Schedule
    timeout_s: float
    action: str
    tables: tuple[str, ...] = ()

    @property
    def identity(self) -> str:
        text = "\x1f".join([*self.argv, self.schedule.expression, str(self.timeout_s)])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": "maintenance",
            "action": self.action,
            "tables": list(self.tables) or "all",
            "schedule": self.schedule.expression,
            "argv": list(self.argv),
        }


def fingerprint_text(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]

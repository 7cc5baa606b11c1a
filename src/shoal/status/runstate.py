"""The files ``shoal up`` keeps under ``<project>/<up.run_dir>`` (default ``.shoal/run``).

* ``up.pid``: the supervisor's pid (``shoal up --reload`` signals it; a second ``shoal up`` refuses);
* ``state.json``: every child now: state, pid, restarts, last exit (rewritten atomically);
* ``events.jsonl``: one JSON line per child start, exit or crash, and per maintenance run (append-only);
* ``logs/<child>.log``: each child's stdout and stderr.

The supervisor writes them and ``shoal status`` reads them, so their format lives here, below both.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoal.jsonsafe import dumps

PID_FILE = "up.pid"
STATE_FILE = "state.json"
EVENTS_FILE = "events.jsonl"
LOG_DIR = "logs"


@dataclass(frozen=True)
class RunDir:
    """Where one project's supervisor keeps its pid, state, events and logs."""

    path: Path

    @property
    def pid_file(self) -> Path:
        return self.path / PID_FILE

    @property
    def state_file(self) -> Path:
        return self.path / STATE_FILE

    @property
    def events_file(self) -> Path:
        return self.path / EVENTS_FILE

    def log_file(self, child: str) -> Path:
        return self.path / LOG_DIR / f"{child}.log"

    def ensure(self) -> RunDir:
        (self.path / LOG_DIR).mkdir(parents=True, exist_ok=True)
        return self

    # -- the pid file ------------------------------------------------------------------------------
    def supervisor_pid(self) -> int | None:
        """The pid of a live supervisor of this project, or None (a stale pid file counts as none)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) and _is_shoal(pid) else None

    def write_pid(self) -> None:
        self.ensure()
        self.pid_file.write_text(f"{os.getpid()}\n")

    def remove_pid(self) -> None:
        with contextlib.suppress(OSError):
            if self.pid_file.read_text().strip() == str(os.getpid()):
                self.pid_file.unlink()

    # -- state and events --------------------------------------------------------------------------
    def write_state(self, state: Mapping[str, Any]) -> None:
        """Replace ``state.json`` atomically: a reader never sees half a file."""
        self.ensure()
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(dumps(dict(state)) + "\n")
        os.replace(tmp, self.state_file)

    def read_state(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def append_event(self, event: Mapping[str, Any]) -> None:
        self.ensure()
        # one write of one line in append mode: lines of concurrent writers never interleave
        with open(self.events_file, "a", encoding="utf-8") as f:
            f.write(dumps(dict(event)) + "\n")

    def events(self, kinds: frozenset[str] | None = None) -> Iterator[dict[str, Any]]:
        """The recorded events, oldest first (a torn last line is skipped)."""
        try:
            f = open(self.events_file, encoding="utf-8")  # noqa: SIM115 (closed below)
        except OSError:
            return
        with f:
            for line in f:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if isinstance(event, dict) and (kinds is None or event.get("event") in kinds):
                    yield event


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie still answers kill(0): it has exited
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def _is_shoal(pid: int) -> bool:
    """A pid file can outlive its process and the pid be reused: check it is a shoal command."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"shoal" in f.read()
    except OSError:
        return True  # no /proc: trust the pid


def run_dir(project_dir: Path, configured: str) -> RunDir:
    path = Path(configured).expanduser()
    return RunDir(path if path.is_absolute() else project_dir / path)

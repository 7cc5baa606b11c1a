"""Helpers for tests and benchmarks of ingestion: a project with one pipeline and worker subprocesses
(``python -m shoal ingest``, as a user runs them). Real processes and real tables only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from shoal.config import init_project
from shoal.project import Project


def write_pipeline_project(
    directory: Path,
    *,
    name: str,
    topic: str,
    brokers: str,
    decode: Mapping[str, Any],
    table: str = "support.ticket_events",
    **fields: Any,
) -> Project:
    """Create (or update) a project at ``directory`` with ``pipelines/<name>.yaml``.

    The consumer group is the topic's own unless given: tests share one broker, and a group left
    with members a test killed (or static members) would hold up the next test's workers.
    """
    fields.setdefault("group_id", f"shoal-test-{topic}")
    if not (directory / "shoal.yaml").exists():
        init_project(directory)
    doc: dict[str, Any] = {
        "name": name,
        "topics": [topic],
        "brokers": brokers,
        "decode": dict(decode),
        "table": table,
        **fields,
    }
    (directory / "pipelines").mkdir(exist_ok=True)
    (directory / "pipelines" / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return Project.load(directory)


class WorkerProcess:
    """``python -m shoal ingest`` as a child process (own session, so kill -9 hits only it)."""

    def __init__(
        self,
        project_dir: Path,
        pipeline: str,
        *,
        client: Mapping[str, Any] | None = None,
        until_drained: bool = False,
        log_path: Path | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.argv = [sys.executable, "-m", "shoal", "ingest", pipeline, "--project", str(project_dir)]
        for k, v in (client or {}).items():
            self.argv += ["--client", f"{k}={v}"]
        if until_drained:
            self.argv.append("--until-drained")
        self.argv += list(extra_args)
        self.log_path = log_path or project_dir / f"worker-{pipeline}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout: float = 30) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def wait_first_commit(self, timeout: float = 90) -> None:
        """Until the worker has logged its first flush (a commit): start-up (interpreter, proto
        compile, group join) takes from 1 s to many on a loaded machine, and a kill before any
        commit would test nothing."""
        deadline = time.monotonic() + timeout
        while '"msg":"flushed"' not in self.log_tail(400):
            assert self.running, f"worker exited early:\n{self.log_tail()}"
            assert time.monotonic() < deadline, f"no commit in {timeout} s:\n{self.log_tail()}"
            time.sleep(0.1)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

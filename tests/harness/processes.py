"""Child processes for test services, always reaped: by their owner, else at interpreter exit."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

_LIVE: set[ManagedProcess] = set()
_LOCK = threading.Lock()
_SETPRIV = shutil.which("setpriv")


def _die_with_parent(argv: list[str]) -> list[str]:
    """Prefix `setpriv --pdeathsig=KILL` so the service gets SIGKILL if pytest itself is killed.

    The death signal fires when the *thread* that started the child exits, so only the main thread
    asks for it. Fixture finalizers and atexit do the normal cleanup; this is the safety net."""
    if _SETPRIV is None or threading.current_thread() is not threading.main_thread():
        return argv
    if Path(argv[0]).name == "setpriv":
        return argv  # the caller's setpriv sets it (it must: a uid change clears the signal)
    return [_SETPRIV, "--pdeathsig=KILL", *argv]


class ManagedProcess:
    """One service process in its own process group, output appended to `log_path`."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> subprocess.Popen[bytes]:
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== start: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                _die_with_parent(self.argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,  # own process group: signals reach helpers it forks
            )
        with _LOCK:
            _LIVE.add(self)
        return self.proc

    def send_signal(self, sig: signal.Signals) -> None:
        if self.running and self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Send `sig` to the group and wait; SIGKILL if it is still alive after `timeout`."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.send_signal(signal.SIGKILL)
                self.proc.wait(10)
        # Children that outlived the leader (same group) go too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with _LOCK:
            _LIVE.discard(self)
        return self.proc.returncode

    def kill(self) -> int | None:
        """SIGKILL at once (crash simulation)."""
        return self.stop(signal.SIGKILL, timeout=10.0)


def stop_all() -> None:
    """Kill every process still registered (atexit safety net)."""
    with _LOCK:
        live = list(_LIVE)
    for p in live:
        with contextlib.suppress(Exception):
            p.stop(signal.SIGTERM, timeout=5.0)


atexit.register(stop_all)

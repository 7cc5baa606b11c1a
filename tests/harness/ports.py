"""Free-port picking and wait-for-port helpers (127.0.0.1 only)."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

HOST = "127.0.0.1"


class ServiceStartError(RuntimeError):
    """A test service did not come up in time; the message carries its log tail."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports (all held open together while picking, so no duplicates)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def port_is_open(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def log_tail(path: Path | None, lines: int = 30) -> str:
    """The last `lines` lines of a service log, or a note that there is none."""
    if path is None or not path.exists():
        return "(no log)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:]) or "(log is empty)"


def wait_until(
    predicate: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    proc: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
    interval: float = 0.1,
) -> None:
    """Poll `predicate` until true; fail with the service's log tail on timeout or early exit."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise ServiceStartError(
                f"{what}: process exited with code {proc.returncode} before it was ready; "
                f"log {log_path}:\n{log_tail(log_path)}"
            )
        if time.monotonic() >= deadline:
            raise ServiceStartError(
                f"{what}: not ready after {timeout:.0f} s; log {log_path}:\n{log_tail(log_path)}"
            )
        time.sleep(interval)


def wait_for_port(
    port: int,
    *,
    timeout: float = 30.0,
    what: str = "service",
    proc: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
    host: str = HOST,
) -> None:
    """Wait until host:port accepts TCP connections."""
    wait_until(
        lambda: port_is_open(port, host),
        timeout=timeout,
        what=f"{what} on {host}:{port}",
        proc=proc,
        log_path=log_path,
    )


def wait_for_http(
    url: str,
    *,
    timeout: float = 30.0,
    what: str = "service",
    proc: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
) -> None:
    """Wait until `url` answers an HTTP GET with a status below 500."""
    import httpx

    def ok() -> bool:
        try:
            return httpx.get(url, timeout=2.0).status_code < 500
        except httpx.HTTPError:
            return False

    wait_until(ok, timeout=timeout, what=f"{what} at {url}", proc=proc, log_path=log_path, interval=0.2)

"""Prometheus and node_exporter from Debian, run as the `prometheus` user on free ports."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import tempfile
from pathlib import Path

from .ports import HOST, free_port, wait_for_http
from .processes import ManagedProcess

PROMETHEUS = Path("/usr/bin/prometheus")
NODE_EXPORTER = Path("/usr/bin/prometheus-node-exporter")


def missing_reason() -> str | None:
    """Why the tools cannot run here, or None when they can."""
    for binary in (PROMETHEUS, NODE_EXPORTER):
        if not binary.exists():
            return f"{binary} is not installed (run scripts/bootstrap.sh as root)"
    try:
        pwd.getpwnam("prometheus")
    except KeyError:
        return "no `prometheus` user (Debian's prometheus package creates it)"
    if os.geteuid() != 0:
        return "starting Prometheus as the prometheus user via setpriv needs root"
    if shutil.which("setpriv") is None:
        return "setpriv (util-linux) is missing"
    return None


class PrometheusTools:
    """Starts node_exporter / Prometheus servers on demand; `stop()` ends them all and removes dirs."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._procs: list[ManagedProcess] = []
        self._dirs: list[Path] = []
        user = pwd.getpwnam("prometheus")
        self._uid, self._gid = user.pw_uid, user.pw_gid

    def _as_prometheus(self, argv: list[str]) -> list[str]:
        # --pdeathsig: the uid change clears the death signal set before exec, so ask setpriv again.
        return [
            "setpriv",
            "--reuid=prometheus",
            "--regid=prometheus",
            "--init-groups",
            "--pdeathsig=KILL",
            *argv,
        ]

    def _owned_dir(self, prefix: str) -> Path:
        # Not under pytest's tmp dir: that is root-only (0700), the prometheus user cannot enter it.
        d = Path(tempfile.mkdtemp(prefix=prefix))
        os.chown(d, self._uid, self._gid)
        self._dirs.append(d)
        return d

    def _start(self, name: str, argv: list[str], url: str, timeout: float) -> None:
        n = len(self._procs)
        log = self.log_dir / f"{name}-{n}.log"
        p = ManagedProcess(name, self._as_prometheus(argv), log)
        self._procs.append(p)
        proc = p.start()
        wait_for_http(url, timeout=timeout, what=name, proc=proc, log_path=log)

    def start_node_exporter(self, *extra_args: str, timeout: float = 30.0) -> str:
        """Start a node_exporter; returns its metrics URL (http://127.0.0.1:PORT/metrics)."""
        port = free_port()
        url = f"http://{HOST}:{port}/metrics"
        argv = [
            str(NODE_EXPORTER),
            f"--web.listen-address={HOST}:{port}",
            "--no-collector.systemd",
            *extra_args,
        ]
        self._start("node_exporter", argv, url, timeout)
        return url

    def start_prometheus(self, config_yaml_text: str, *extra_args: str, timeout: float = 60.0) -> str:
        """Start Prometheus with this config; returns its base URL (http://127.0.0.1:PORT)."""
        d = self._owned_dir("shoal-prometheus-")
        config = d / "prometheus.yml"
        config.write_text(config_yaml_text)
        os.chown(config, self._uid, self._gid)
        data = d / "data"
        data.mkdir()
        os.chown(data, self._uid, self._gid)
        port = free_port()
        base = f"http://{HOST}:{port}"
        argv = [
            str(PROMETHEUS),
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address={HOST}:{port}",
            *extra_args,
        ]
        self._start("prometheus", argv, f"{base}/-/ready", timeout)
        return base

    def stop(self) -> None:
        for p in reversed(self._procs):
            p.stop(signal.SIGTERM, timeout=15.0)
        self._procs.clear()
        for d in self._dirs:
            shutil.rmtree(d, ignore_errors=True)
        self._dirs.clear()

"""Serve the simulated fleet's current values as many Prometheus targets from one HTTP server.

``GET /targets/<id>/metrics`` returns the text exposition of one target (a PDU: outlet power, phase
current and voltage; or a hypervisor: CPU, power, memory and its disks' SMART values) at the current
5-minute step; ``GET /targets`` lists the ids. :meth:`ExporterServer.write_file_sd` writes a
Prometheus file_sd JSON file with one group per target (``__metrics_path__``, ``job``, ``instance`` =
target id), so a scrape yields the same series ids as :mod:`shoal.usecases.infra.history`. Binds
127.0.0.1 by default.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shoal.usecases.infra.catalog import MetricFamily, metric_families
from shoal.usecases.infra.faults import STEP_S
from shoal.usecases.infra.simulator import FleetSimulator

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: listen backlog: a scraper opens ``concurrency`` connections at once; with the stdlib's default of
#: 5 the kernel drops the SYNs beyond it and each dropped one waits a 1 s+ retransmit (200 targets
#: at concurrency 64 took 14.5 s instead of 0.7 s)
LISTEN_BACKLOG = 1024


class _Server(ThreadingHTTPServer):
    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True


class FleetExporter:
    """Renders targets of ``simulator`` at the step ``clock()`` falls in."""

    def __init__(self, simulator: FleetSimulator, clock: Callable[[], float] = time.time) -> None:
        self.simulator = simulator
        self.clock = clock
        self.families: list[MetricFamily] = metric_families(simulator.topology)
        rows: dict[str, dict[int, list[int]]] = {}
        self.jobs: dict[str, str] = {}
        for fi, fam in enumerate(self.families):
            for row, target in enumerate(fam.targets):
                rows.setdefault(target, {}).setdefault(fi, []).append(row)
                self.jobs[target] = fam.job
        self._rows = {t: {fi: np.asarray(r) for fi, r in by.items()} for t, by in rows.items()}
        self._label_names = [
            [k for k in fam.labels[0] if k not in ("job", "instance")] if fam.labels else []
            for fam in self.families
        ]

    def targets(self) -> list[str]:
        return list(self._rows)

    def current_step(self) -> int:
        return int(self.clock()) // STEP_S

    def render(self, target: str, step: int | None = None) -> bytes | None:
        """The exposition text of ``target`` (None if there is no such target)."""
        found = self._rows.get(target)
        if found is None:
            return None
        by_family = found
        block = self.simulator.at(self.current_step() if step is None else step)
        exporter = self

        class _Target(Collector):
            def collect(self) -> Iterator[GaugeMetricFamily]:
                for fi, rows in by_family.items():
                    fam = exporter.families[fi]
                    names = exporter._label_names[fi]
                    g = GaugeMetricFamily(fam.name, fam.help, labels=names)
                    values = fam.values(block)[rows, 0]
                    for row, value in zip(rows, values, strict=True):
                        if math.isnan(value):  # a failed disk reports nothing
                            continue
                        lab = fam.labels[int(row)]
                        g.add_metric([lab[n] for n in names], float(value))
                    yield g

        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Target())
        return generate_latest(registry)

    def file_sd(self, address: str) -> list[dict[str, Any]]:
        return [
            {
                "targets": [address],
                "labels": {"__metrics_path__": f"/targets/{t}/metrics", "job": self.jobs[t], "instance": t},
            }
            for t in self._rows
        ]


class ExporterServer:
    """A running HTTP server for a :class:`FleetExporter` (context manager; stops on exit)."""

    def __init__(self, exporter: FleetExporter, host: str = "127.0.0.1", port: int = 0) -> None:
        self.exporter = exporter
        handler = _make_handler(exporter)
        self.httpd = _Server((host, port), handler)
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="infra-exporter", daemon=True)

    @property
    def address(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"{host!s}:{port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def start(self) -> ExporterServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    def write_file_sd(self, path: Path) -> Path:
        """Write the file_sd targets file atomically (the scraper re-reads it on change)."""
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.exporter.file_sd(self.address), indent=1))
        tmp.replace(path)
        return path

    def __enter__(self) -> ExporterServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _make_handler(exporter: FleetExporter) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = [unquote(p) for p in self.path.split("?", 1)[0].strip("/").split("/")]
            if parts == ["targets"]:
                self._send(200, json.dumps(exporter.targets()).encode(), "application/json")
                return
            if len(parts) == 3 and parts[0] == "targets" and parts[2] == "metrics":
                body = exporter.render(parts[1])
                if body is not None:
                    self._send(200, body, CONTENT_TYPE)
                    return
            self._send(404, b"not found\n", "text/plain")

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # quiet: scrapes are frequent
            return

    return Handler

"""``shoal status`` as Prometheus gauges: a collector the server registers on its ``/metrics``.

The report is computed at scrape time, at most once per ``ttl_s`` (a broker probe per pipeline is
not free), and the previous one is served while it is fresh."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shoal.status.collect import SEVERITY


class StatusCollector(Collector):
    def __init__(self, report: Callable[[], dict[str, Any]], ttl_s: float = 15.0) -> None:
        self._report = report
        self._ttl_s = ttl_s
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def _get(self) -> dict[str, Any]:
        with self._lock:
            if self._cached is None or time.monotonic() - self._cached[0] > self._ttl_s:
                self._cached = (time.monotonic(), self._report())
            return self._cached[1]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            report = self._get()
        except Exception:  # a scrape must not fail because a table could not be read
            report = {}
        problems = GaugeMetricFamily("shoal_status_problems", "items not ok, by status", labels=["status"])
        counts = dict.fromkeys(("failing", "late", "warning"), 0)
        for p in report.get("problems", []):
            counts[p["status"]] = counts.get(p["status"], 0) + 1
        for status, n in counts.items():
            problems.add_metric([status], n)
        yield problems

        state = GaugeMetricFamily(
            "shoal_status_item", "worst-first status of each item: 0 failing, 1 late, 2 warning, 3 ok",
            labels=["section", "name"],
        )  # fmt: skip
        for section in ("pipelines", "models", "tables", "children", "jobs"):
            for item in report.get(section, []):
                state.add_metric([section, str(item.get("name"))], SEVERITY.get(item.get("status", "ok"), 3))
        yield state

        lag = GaugeMetricFamily("shoal_status_pipeline_lag", "events behind per partition",
                                labels=["pipeline", "topic", "partition"])  # fmt: skip
        workers = GaugeMetricFamily(
            "shoal_status_pipeline_workers_running", "running workers", labels=["pipeline"]
        )
        dead = GaugeMetricFamily(
            "shoal_status_pipeline_dead_letters_last_hour",
            "dead letters in the last hour",
            labels=["pipeline"],
        )
        rate = GaugeMetricFamily("shoal_status_pipeline_rows_per_second", "rows committed per second (5 min)",
                                 labels=["pipeline"])  # fmt: skip
        for p in report.get("pipelines", []):
            name = str(p.get("name"))
            for part in p.get("partitions", []):
                if part.get("lag") is not None:
                    lag.add_metric([name, str(part["topic"]), str(part["partition"])], part["lag"])
            workers.add_metric([name], (p.get("workers") or {}).get("running", 0))
            dead.add_metric([name], (p.get("dead_letters") or {}).get("last_hour", 0))
            rate.add_metric([name], (p.get("throughput") or {}).get("rows_per_s", 0.0))
        yield from (lag, workers, dead, rate)

        behind = GaugeMetricFamily("shoal_status_model_versions_behind", "input versions not yet consumed",
                                   labels=["model"])  # fmt: skip
        for m in report.get("models", []):
            behind.add_metric([str(m.get("name"))], m.get("versions_behind") or 0)
        yield behind

        files = GaugeMetricFamily("shoal_status_table_files", "data files", labels=["table"])
        small = GaugeMetricFamily("shoal_status_table_small_files", "small data files", labels=["table"])
        size = GaugeMetricFamily("shoal_status_table_size_bytes", "table size", labels=["table"])
        for t in report.get("tables", []):
            table = str(t.get("name"))
            files.add_metric([table], t.get("files") or 0)
            small.add_metric([table], t.get("small_files") or 0)
            size.add_metric([table], t.get("size_bytes") or 0)
        yield from (files, small, size)

        restarts = GaugeMetricFamily("shoal_status_child_restarts", "restarts of each child of shoal up",
                                     labels=["child"])  # fmt: skip
        up = GaugeMetricFamily("shoal_status_child_up", "1 when the child runs", labels=["child"])
        for c in report.get("children", []):
            restarts.add_metric([str(c["name"])], c.get("restarts") or 0)
            up.add_metric([str(c["name"])], 1 if c.get("state") == "running" else 0)
        yield from (restarts, up)

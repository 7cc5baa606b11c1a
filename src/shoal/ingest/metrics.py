"""Prometheus metrics of one ingest worker (its own registry, served on ``--metrics-port``)."""

from __future__ import annotations

import json
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_SECONDS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_ROWS = (10, 100, 1_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000)


class IngestMetrics:
    """Counters, gauges and histograms of one pipeline worker."""

    def __init__(self, pipeline: str, registry: CollectorRegistry | None = None) -> None:
        self.pipeline = pipeline
        self.registry = registry or CollectorRegistry()
        r = self.registry
        lbl = ["pipeline"]
        self.consumed = Counter("shoal_ingest_records_consumed", "Kafka records consumed", lbl, registry=r)
        self.committed = Counter(
            "shoal_ingest_rows_committed", "rows committed to the table", lbl, registry=r
        )
        self.dead = Counter(
            "shoal_ingest_records_dead_lettered", "records committed to the DLQ", lbl, registry=r
        )
        self.skipped = Counter(
            "shoal_ingest_records_skipped",
            "records dropped as already committed (replay, zombie)",
            lbl,
            registry=r,
        )
        self.commits = Counter("shoal_ingest_commits", "lake commits", [*lbl, "table"], registry=r)
        self.commit_retries = Counter("shoal_ingest_commit_retries", "retried lake commits", lbl, registry=r)
        self.kafka_errors = Counter(
            "shoal_ingest_kafka_errors", "Kafka client errors", [*lbl, "code"], registry=r
        )
        self.lag = Gauge(
            "shoal_ingest_lag", "consumer lag (records)", [*lbl, "topic", "partition"], registry=r
        )
        self.buffered = Gauge(
            "shoal_ingest_buffered_rows", "rows waiting for the next flush", lbl, registry=r
        )
        self.assigned = Gauge("shoal_ingest_assigned_partitions", "partitions assigned", lbl, registry=r)
        self.batch_rows = Histogram(
            "shoal_ingest_flush_rows", "rows per flush", lbl, buckets=_ROWS, registry=r
        )
        self.consume_s = Histogram(
            "shoal_ingest_consume_seconds", "time in consume() per call", lbl, buckets=_SECONDS, registry=r
        )
        self.decode_s = Histogram(
            "shoal_ingest_decode_seconds", "decode time per batch", lbl, buckets=_SECONDS, registry=r
        )
        self.build_s = Histogram(
            "shoal_ingest_build_seconds",
            "Arrow build + transform per batch",
            lbl,
            buckets=_SECONDS,
            registry=r,
        )
        self.write_s = Histogram(
            "shoal_ingest_write_seconds",
            "lake write+commit per flush",
            [*lbl, "table"],
            buckets=_SECONDS,
            registry=r,
        )
        self.kafka_commit_s = Histogram(
            "shoal_ingest_kafka_commit_seconds",
            "Kafka offset commit per flush",
            lbl,
            buckets=_SECONDS,
            registry=r,
        )
        self.refresh_s = Histogram(
            "shoal_ingest_refresh_seconds",
            "refresh cycle of the models the pipeline refreshes in its commits (pipeline `refresh:`)",
            lbl,
            buckets=_SECONDS,
            registry=r,
        )
        self.refresh_errors = Counter(
            "shoal_ingest_refresh_errors",
            "failed refresh cycles of the pipeline's models (retried after the next commit)",
            lbl,
            registry=r,
        )
        self._server: Any = None

    def timings(self) -> dict[str, float]:
        """Total seconds spent per stage so far (sums of the histograms), for benchmarks and RunStats."""
        out: dict[str, float] = {}
        for key, hist in (
            ("consume", self.consume_s),
            ("decode", self.decode_s),
            ("build", self.build_s),
            ("write_commit", self.write_s),
            ("kafka_commit", self.kafka_commit_s),
            ("refresh", self.refresh_s),
        ):
            total = 0.0
            for metric in hist.collect():
                total += sum(s.value for s in metric.samples if s.name.endswith("_sum"))
            out[key] = round(total, 4)
        return out

    def serve(self, port: int, addr: str = "127.0.0.1") -> int:
        """Start /metrics on ``port`` (0 = any free port); returns the bound port."""
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        self._server = server
        return int(server.server_address[1])

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def on_stats(self, stats_json: str) -> None:
        """librdkafka statistics callback: per-partition consumer lag."""
        try:
            stats = json.loads(stats_json)
        except ValueError:
            return
        for topic, t in (stats.get("topics") or {}).items():
            for part, p in (t.get("partitions") or {}).items():
                if part == "-1" or not isinstance(p, dict):
                    continue
                lag = p.get("consumer_lag", -1)
                if lag is not None and lag >= 0:
                    self.lag.labels(self.pipeline, topic, part).set(lag)

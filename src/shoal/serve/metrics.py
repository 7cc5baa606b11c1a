"""Prometheus metrics of the server itself (``GET /metrics``), on a registry per server."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "shoal_serve_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "shoal_serve_http_request_seconds",
            "HTTP request latency (to the first byte of the body)",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queries = Counter(
            "shoal_serve_queries",
            "served queries by protocol and outcome (ok, refused, denied, error, timeout, ...)",
            ["protocol", "outcome"],
            registry=self.registry,
        )
        self.query_seconds = Histogram(
            "shoal_serve_query_seconds",
            "served query duration including streaming",
            ["protocol"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.running = Gauge("shoal_serve_queries_running", "queries running now", registry=self.registry)
        self.wire_connections = Gauge(
            "shoal_serve_wire_connections", "open Postgres wire protocol connections", registry=self.registry
        )

    def track_running(self, running: Callable[[], int]) -> None:
        self.running.set_function(lambda: float(running()))

    def observe_query(self, protocol: str, outcome: str, seconds: float) -> None:
        self.queries.labels(protocol, outcome).inc()
        self.query_seconds.labels(protocol).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

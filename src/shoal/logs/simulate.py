"""Realistic log lines for benchmarks, tests and demos: services, levels, ids, paths and errors.

Deterministic for a seed. :func:`lines_table` builds rows of ``logs.lines`` directly (fast, for
the 10M-line benchmark); :func:`json_lines` gives the same kind of lines as JSON text, the way an
application would send them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shoal.logs.schema import LINES_SCHEMA, conform

SERVICES = ("billing", "api", "auth", "storage", "compute", "network", "scheduler", "support")
LEVELS = ("debug", "info", "warn", "error")
_LEVEL_P = (0.10, 0.70, 0.12, 0.08)
_PATHS = ("/v1/invoices", "/v1/users/{u}", "/v1/volumes/{v}/attach", "/v1/servers", "/healthz", "/v1/tokens")
_ERRORS = (
    "connection refused",
    "deadline exceeded",
    "timeout waiting for lock",
    "disk quota exceeded",
    "invalid signature",
    "card declined",
    "no route to host",
    "out of memory",
)
#: templates per level; {u} user id, {v} volume id, {p} path, {e} error, {ms} duration, {n} a count
_TEMPLATES = {
    "debug": ("cache hit for user {u}", "resolved {p} in {ms}ms", "retry budget {n} remaining"),
    "info": (
        "GET {p} 200 in {ms}ms",
        "POST {p} 201 in {ms}ms",
        "invoice generated for user {u} amount {n}.00 EUR",
        "volume {v} attached to server srv-{n}",
        "user {u} logged in",
        "job compaction finished in {ms}ms",
    ),
    "warn": (
        "slow request GET {p} took {ms}ms",
        "retrying payment for user {u}: {e}",
        "volume {v} latency above threshold ({ms}ms)",
    ),
    "error": (
        "GET {p} 500: {e}",
        "payment failed for user {u}: {e}",
        "volume {v} attach failed: {e}",
        "worker crashed: {e}",
    ),
}


def _messages(rng: np.random.Generator, levels: np.ndarray) -> list[str]:
    n = len(levels)
    users = rng.integers(10_000, 99_999, n)
    vols = rng.integers(1, 1 << 24, n)
    ms = rng.gamma(2.0, 40.0, n).astype(np.int64)
    counts = rng.integers(1, 5000, n)
    paths = rng.integers(0, len(_PATHS), n)
    errs = rng.integers(0, len(_ERRORS), n)
    picks = rng.random(n)
    out: list[str] = []
    for i in range(n):
        temps = _TEMPLATES[LEVELS[levels[i]]]
        t = temps[int(picks[i] * len(temps))]
        u = f"u-{users[i]}"
        out.append(
            t.format(
                u=u,
                v=f"vol-{vols[i]:06x}",
                p=_PATHS[paths[i]].format(u=u, v=f"vol-{vols[i]:06x}"),
                e=_ERRORS[errs[i]],
                ms=ms[i],
                n=counts[i],
            )
        )
    return out


def lines_table(
    n: int, *, seed: int = 0, start: datetime | None = None, span_s: float = 86_400.0, id_prefix: str = "sim"
) -> pa.Table:
    """``n`` rows of ``logs.lines`` spread evenly over ``span_s`` seconds from ``start``."""
    rng = np.random.default_rng(seed)
    t0 = start or datetime(2026, 1, 1, tzinfo=UTC)
    levels = rng.choice(len(LEVELS), n, p=_LEVEL_P)
    services = rng.integers(0, len(SERVICES), n)
    offsets_us = np.sort(rng.random(n) * span_s * 1e6).astype(np.int64)
    base_us = int(t0.timestamp() * 1e6)
    ts = pa.array(offsets_us + base_us, pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    trace = rng.integers(0, 1 << 62, n)
    table = pa.table(
        {
            "id": pa.array([f"{id_prefix}:{seed}:{i}" for i in range(n)], pa.string()),
            "ts": ts,
            "service": pa.array(np.array(SERVICES, dtype=object)[services], pa.string()),
            "level": pa.array(np.array(LEVELS, dtype=object)[levels], pa.string()),
            "message": pa.array(_messages(rng, levels), pa.string()),
            "host": pa.array([f"node-{h:03d}" for h in rng.integers(0, 200, n)], pa.string()),
            "trace_id": pa.array([f"{t:016x}" for t in trace], pa.string()),
            "day": pc.cast(ts, pa.date32()),
        }
    )
    return conform(table).cast(LINES_SCHEMA)


def json_lines(n: int, *, seed: int = 0, start: datetime | None = None, span_s: float = 60.0) -> list[bytes]:
    """``n`` JSON log lines as an application would send them (with an extra attribute)."""
    t = lines_table(n, seed=seed, start=start or datetime.now(UTC) - timedelta(seconds=span_s), span_s=span_s)
    out = []
    for row in t.select(["ts", "service", "level", "message", "host", "trace_id"]).to_pylist():
        row["ts"] = row["ts"].isoformat()
        row["region"] = "eu-west"
        out.append(json.dumps(row).encode())
    return out

"""The front door's overhead: the same queries in-process, over HTTP (JSON, Arrow) and over the
Postgres wire protocol, against one `shoal serve` subprocess; then N concurrent HTTP clients.

    .venv/bin/python bench/bench_serve.py [--repeats 30] [--rows 1000000] [--clients 32] [--duration 60]

- small: a filtered count over ``support.tickets`` (the sample project of shoal.serve.testing):
  p50/p99 latency per path; the baseline is the same query on an in-process locked-down engine
  (what the server runs), so the difference is the protocol's overhead.
- large: ``--rows`` rows of three columns streamed to the client: rows/s per path against the
  in-process Arrow read.
- concurrent: ``--clients`` threads each sending the small query over HTTP (JSON) for
  ``--duration`` seconds: throughput, p50/p99, errors (must be 0), server RSS.

Wall times (the server is another process); on a shared 2-core machine they include the
neighbours. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import pyarrow as pa

from shoal.project import Project
from shoal.serve.state import ServeState
from shoal.serve.testing import sample_project

SMALL = "select count(*) as n from support.tickets where team = 'emea' and csat > 0.4"


def large_sql(rows: int) -> str:
    return f"select range as id, range * 2.5 as amount, 'row ' || range as label from range({rows})"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(fn: Callable[[], object], repeats: int) -> dict[str, float]:
    fn()  # warm (engine per access profile, connections)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": round(statistics.median(times), 3), "p99_ms": round(pct(times, 0.99), 3)}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--duration", type=float, default=60.0)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    sample = sample_project(work / "project", customers=1000, tickets=100_000)
    project = sample.project
    (project.dir / "shoal.yaml").write_text(
        (project.dir / "shoal.yaml").read_text()
        + f"serve:\n  limits:\n    max_rows: {args.rows + 1}\n    max_bytes: {2**40}\n"
        + "    max_concurrent: 4\n    queue_timeout_s: 60\n"
    )
    project = Project.load(project.dir)  # with the raised limits
    http_port, pg_port = free_port(), free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shoal.serve",
            "serve",
            "-p",
            str(project.dir),
            "--port",
            str(http_port),
            "--pg-port",
            str(pg_port),
            "--format",
            "json",
        ],
        stdout=subprocess.PIPE,
        stderr=(work / "server.log").open("w"),
        text=True,
    )
    out: dict[str, Any] = {"rows_large": args.rows, "clients": args.clients, "duration_s": args.duration}
    try:
        base = f"http://127.0.0.1:{http_port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        headers = {"Authorization": f"Bearer {sample.admin}"}
        http = httpx.Client(base_url=base, headers=headers, timeout=600)
        pg = psycopg.connect(
            host="127.0.0.1",
            port=pg_port,
            user="bench",
            password=sample.admin,
            dbname="lake",
            autocommit=True,
        )

        with ServeState(project) as state:
            token = state.tokens.authenticate(sample.admin)

            def inproc(sql: str) -> pa.Table:
                with state.executor.query(token, sql) as result:
                    return pa.Table.from_batches(list(result.batches()), schema=result.schema)

            def http_json(sql: str) -> Any:
                r = http.post("/v1/query", json={"sql": sql})
                r.raise_for_status()
                return r.json()

            def http_arrow(sql: str) -> pa.Table:
                r = http.post("/v1/query", json={"sql": sql, "format": "arrow"})
                r.raise_for_status()
                return pa.ipc.open_stream(r.content).read_all()

            def wire(sql: str) -> list[Any]:
                return pg.execute(sql).fetchall()

            small = {
                "in_process": timed(lambda: inproc(SMALL), args.repeats),
                "http_json": timed(lambda: http_json(SMALL), args.repeats),
                "http_arrow": timed(lambda: http_arrow(SMALL), args.repeats),
                "pg_wire": timed(lambda: wire(SMALL), args.repeats),
            }
            for name in ("http_json", "http_arrow", "pg_wire"):
                small[name]["overhead_p50_ms"] = round(
                    small[name]["p50_ms"] - small["in_process"]["p50_ms"], 3
                )
            out["small"] = small

            big = large_sql(args.rows)
            large: dict[str, Any] = {}
            for name, fn in (
                ("in_process", inproc),
                ("http_arrow", http_arrow),
                ("http_json", http_json),
                ("pg_wire", wire),
            ):
                t0 = time.perf_counter()
                fn(big)
                secs = time.perf_counter() - t0
                large[name] = {"seconds": round(secs, 3), "rows_per_s": round(args.rows / secs)}
            for name in ("http_arrow", "http_json", "pg_wire"):
                large[name]["ratio_to_in_process"] = round(
                    large[name]["rows_per_s"] / large["in_process"]["rows_per_s"], 3
                )
            out["large"] = large

        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        stop_at = time.monotonic() + args.duration
        peak_rss = 0

        def client() -> None:
            with httpx.Client(base_url=base, headers=headers, timeout=120) as c:
                while time.monotonic() < stop_at:
                    t0 = time.perf_counter()
                    try:
                        r = c.post("/v1/query", json={"sql": SMALL})
                        ok = r.status_code == 200 and r.json()["error"] is None
                    except (httpx.HTTPError, ValueError) as exc:
                        ok, r = False, exc  # type: ignore[assignment]
                    with lock:
                        if ok:
                            latencies.append((time.perf_counter() - t0) * 1000)
                        else:
                            errors.append(str(getattr(r, "status_code", r)))

        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        started = time.monotonic()
        for t in threads:
            t.start()
        proc = psutil.Process(server.pid)
        while any(t.is_alive() for t in threads):
            peak_rss = max(peak_rss, proc.memory_info().rss)
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        out["concurrent"] = {
            "queries": len(latencies),
            "qps": round(len(latencies) / elapsed, 1),
            "p50_ms": round(pct(latencies, 0.5), 2) if latencies else None,
            "p99_ms": round(pct(latencies, 0.99), 2) if latencies else None,
            "errors": len(errors),
            "error_kinds": sorted(set(errors))[:5],
            "server_peak_rss_mb": round(peak_rss / 2**20, 1),
        }
        pg.close()
        http.close()
    finally:
        server.terminate()
        server.communicate(timeout=60)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

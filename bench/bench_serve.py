"""The front door's overhead: the same queries in-process, over HTTP (JSON, Arrow) and over the
Postgres wire protocol, against one `shoal serve` subprocess; then N concurrent HTTP clients.

    .venv/bin/python bench/bench_serve.py [--rounds 6] [--repeats 30] [--rows 1000000] [--clients 32]
        [--duration 60]
    shoal demo --dir /tmp/demo && .venv/bin/python bench/bench_serve.py --project /tmp/demo   # the demo lake

- small: a filtered count over ``support.tickets`` (the sample project of tests/harness/serve_sample.py):
  p50/p99 latency per path; the baseline is the same query on an in-process locked-down engine
  (what the server runs), so the difference is the protocol's overhead. Paths alternate in rounds
  (order reversed every other round); CPU per query is the server process's (remote paths) or this
  process's (in-process), so a busy neighbour shows less in it than in wall time.
- large: ``--rows`` rows of three columns streamed to the client: rows/s per path against the
  in-process Arrow read.
- concurrent: ``--clients`` threads each sending the small query over HTTP (JSON) for
  ``--duration`` seconds: throughput, p50/p99, errors (must be 0), server RSS.

With ``--project DIR`` (a lake the demo built) the server serves that project (an admin token is
added to its token file) and the small and concurrent queries are the dashboard's over the demo's
tables (``DEMO_QUERIES``; the concurrent clients take them in turn).

Wall times (the server is another process); on a shared 2-core machine they include the
neighbours. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
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
from shoal.serve.state import ServeState, tokens_path
from shoal.serve.tokens import Role, TokenStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the sample project
from harness.serve_sample import sample_project

SMALL = "select count(*) as n from support.tickets where team = 'emea' and csat > 0.4"


#: what the dashboard's pages ask of the demo lake (the revenue, CSAT and infrastructure pages)
DEMO_QUERIES = [
    "select product, region, sum(revenue) as revenue from billing.revenue_hourly group by all order by all",
    "select * from billing.revenue_daily order by billing_date desc limit 30",
    "select team, count(*) as tickets from support.tickets group by team order by team",
    "select * from infra.anomalies order by 1 desc limit 50",
]


def large_sql(rows: int) -> str:
    return f"select range as id, range * 2.5 as amount, 'row ' || range as label from range({rows})"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def small_rounds(
    paths: dict[str, Callable[[], object]], server_pid: int, rounds: int, repeats: int
) -> dict[str, Any]:
    """``rounds`` rounds of ``repeats`` queries per path, the paths' order reversed every other round
    (neighbours' load falls on all of them alike): latency p50/p99 over every query, the median of
    the rounds' p50s, and CPU per query (the server's for remote paths, this process's for the
    in-process one), each against the in-process baseline of the same run."""
    server = psutil.Process(server_pid)
    for fn in paths.values():
        fn()  # warm (engine per access profile, connections)
    times: dict[str, list[float]] = {name: [] for name in paths}
    round_p50: dict[str, list[float]] = {name: [] for name in paths}
    cpu: dict[str, list[float]] = {name: [] for name in paths}
    for r in range(rounds):
        for name in list(paths) if r % 2 == 0 else list(paths)[::-1]:
            fn = paths[name]
            local = name == "in_process"
            cpu0 = time.process_time() if local else sum(server.cpu_times()[:2])
            got = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn()
                got.append((time.perf_counter() - t0) * 1000)
            cpu1 = time.process_time() if local else sum(server.cpu_times()[:2])
            times[name] += got
            round_p50[name].append(statistics.median(got))
            cpu[name].append((cpu1 - cpu0) * 1000 / repeats)
    out: dict[str, Any] = {}
    for name in paths:
        out[name] = {
            "p50_ms": round(statistics.median(times[name]), 3),
            "p99_ms": round(pct(times[name], 0.99), 3),
            "round_p50s_ms": [round(x, 2) for x in round_p50[name]],
            "cpu_ms_per_query": round(statistics.median(cpu[name]), 3),
        }
    base = out["in_process"]
    for name in paths:
        if name != "in_process":
            out[name]["overhead_p50_ms"] = round(out[name]["p50_ms"] - base["p50_ms"], 3)
            out[name]["cpu_overhead_ms"] = round(out[name]["cpu_ms_per_query"] - base["cpu_ms_per_query"], 3)
    out["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return out


class RawHttp:
    """A minimal keep-alive HTTP/1.1 client (one socket, Content-Length bodies only): the server's
    share of the HTTP overhead, without httpx's own per-request cost in the client."""

    def __init__(self, port: int, token: str) -> None:
        import socket

        self.sock = socket.create_connection(("127.0.0.1", port))
        self.head = f"POST /v1/query HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"

    def post(self, body: dict[str, Any]) -> bytes:
        data = json.dumps(body).encode()
        self.sock.sendall(
            f"{self.head}Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += self.sock.recv(65536)
        head, _, rest = buf.partition(b"\r\n\r\n")
        status = head.split(b" ", 2)[1]
        lengths = [h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")]
        if status != b"200" or not lengths:
            raise RuntimeError(f"raw HTTP client: status {status.decode()}, or a chunked body it cannot read")
        size = int(lengths[0].split(b":")[1])
        while len(rest) < size:
            rest += self.sock.recv(65536)
        return rest

    def close(self) -> None:
        self.sock.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=30, help="small queries per path and round")
    ap.add_argument("--rounds", type=int, default=6, help="alternating rounds of the small queries")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument(
        "--project", type=Path, help="serve this project (e.g. a demo lake) instead of the sample"
    )
    args = ap.parse_args()
    # limits for the large result and the queue of the concurrent clients, for this process's engine
    # and the server's (settings from the environment: the project's shoal.yaml is left as it is)
    os.environ |= {
        "SHOAL_SERVE__LIMITS__MAX_ROWS": str(args.rows + 1),
        "SHOAL_SERVE__LIMITS__MAX_BYTES": str(2**40),
        "SHOAL_SERVE__LIMITS__MAX_CONCURRENT": "4",
        "SHOAL_SERVE__LIMITS__QUEUE_TIMEOUT_S": "60",
        # the large result over the slow paths (wire text, JSON) takes over 30 s on a loaded machine
        "SHOAL_SERVE__LIMITS__TIMEOUT_S": "600",
    }

    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    small_sql, concurrent_sql = SMALL, [SMALL]
    if args.project is not None:
        project = Project.load(args.project)
        _, admin = TokenStore(tokens_path(project)).create(f"bench-{os.getpid()}", Role.admin)
        known = {t.name for t in project.lake.list_tables()}
        concurrent_sql = [q for q in DEMO_QUERIES if any(f" {t} " in f" {q} " for t in known)]
        if not concurrent_sql:
            raise SystemExit(f"{args.project}: none of the demo's tables is there (run shoal demo --dir)")
        small_sql = concurrent_sql[0]
    else:
        sample = sample_project(work / "project", customers=1000, tickets=100_000)
        project, admin = sample.project, sample.admin
    assert project.settings.serve.limits.max_rows == args.rows + 1
    http_port, pg_port = free_port(), free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shoal",
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
    out["project"] = str(args.project) if args.project else "sample (tests/harness/serve_sample.py)"
    out["small_sql"], out["concurrent_sql"] = small_sql, concurrent_sql
    try:
        base = f"http://127.0.0.1:{http_port}"
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start: see {work / 'server.log'}")
            try:
                if httpx.get(f"{base}/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        headers = {"Authorization": f"Bearer {admin}"}
        http = httpx.Client(base_url=base, headers=headers, timeout=600)
        pg = psycopg.connect(
            host="127.0.0.1",
            port=pg_port,
            user="bench",
            password=admin,
            dbname="lake",
            autocommit=True,
        )

        # the in-process baseline records each query in the log as the server does, but flushes it
        # only at the end: a lake commit every 5 s in this process would slow the HTTP clients here
        with ServeState(project, log_flush_s=3600) as state:
            token = state.tokens.authenticate(admin)

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

            raw = RawHttp(http_port, admin)

            def http_json_raw(sql: str) -> Any:
                return json.loads(raw.post({"sql": sql}))

            def wire(sql: str) -> list[Any]:
                return pg.execute(sql).fetchall()

            paths: dict[str, Callable[[], object]] = {
                "in_process": lambda: inproc(small_sql),
                "http_json": lambda: http_json(small_sql),
                "http_arrow": lambda: http_arrow(small_sql),
                "http_json_raw_client": lambda: http_json_raw(small_sql),
                "pg_wire": lambda: wire(small_sql),
            }
            out["small"] = small_rounds(paths, server.pid, args.rounds, args.repeats)

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

        def client(offset: int) -> None:
            with httpx.Client(base_url=base, headers=headers, timeout=120) as c:
                n = offset
                while time.monotonic() < stop_at:
                    t0 = time.perf_counter()
                    n += 1
                    try:
                        r = c.post("/v1/query", json={"sql": concurrent_sql[n % len(concurrent_sql)]})
                        ok = r.status_code == 200 and r.json()["error"] is None
                    except (httpx.HTTPError, ValueError) as exc:
                        ok, r = False, exc  # type: ignore[assignment]
                    with lock:
                        if ok:
                            latencies.append((time.perf_counter() - t0) * 1000)
                        else:
                            errors.append(str(getattr(r, "status_code", r)))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
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
        raw.close()
    finally:
        server.terminate()
        server.communicate(timeout=60)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

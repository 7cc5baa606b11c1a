"""Two builds of `shoal serve` side by side: the same small query over HTTP (JSON, Arrow) and the
wire protocol against a server from each source tree, in alternating rounds (the order flips every
round, so neighbours' load falls on both alike). Reports per build and path the median of the
rounds' p50 latency and the server's CPU per query, and the B/A ratios.

    shoal demo --dir /tmp/demo && cp -a /tmp/demo /tmp/demo-b
    .venv/bin/python bench/bench_serve_ab.py --a-src /work/main/src --a-project /tmp/demo-b \\
        --b-src src --b-project /tmp/demo [--rounds 8] [--per-round 40]

Each server gets its own copy of the lake (both append to their query log). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg

SQL = "select product, region, sum(revenue) as revenue from billing.revenue_hourly group by all order by all"
PATHS = ("http_json", "http_arrow", "pg_wire")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """A `shoal serve` subprocess of one source tree, with an admin token and clients."""

    def __init__(self, src: Path, project: Path, log: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(src.resolve())}
        self.token = subprocess.check_output(
            [
                sys.executable,
                "-c",
                "import sys; from shoal.project import Project; from shoal.serve.state import admin_token; "
                "print(admin_token(Project.load(sys.argv[1]), 'bench-ab'))",
                str(project),
            ],
            env=env,
            text=True,
        ).strip()
        self.http_port, self.pg_port = free_port(), free_port()
        cmd = [sys.executable, "-m", "shoal", "serve", "-p", str(project)]
        cmd += ["--port", str(self.http_port), "--pg-port", str(self.pg_port)]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server of {src} did not start: see {log}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.http_port}/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{self.http_port}", headers={"Authorization": f"Bearer {self.token}"}
        )
        self.pg = psycopg.connect(
            host="127.0.0.1",
            port=self.pg_port,
            user="bench",
            password=self.token,
            dbname="lake",
            autocommit=True,
        )
        self.ps = psutil.Process(self.proc.pid)

    def cpu(self) -> float:
        return float(sum(self.ps.cpu_times()[:2]))

    def path(self, name: str) -> Callable[[], object]:
        if name == "pg_wire":
            return lambda: self.pg.execute(SQL).fetchall()
        fmt = "arrow" if name == "http_arrow" else "json"

        def post() -> bytes:
            r = self.http.post("/v1/query", json={"sql": SQL, "format": fmt})
            r.raise_for_status()
            return r.content

        return post

    def close(self) -> None:
        self.pg.close()
        self.http.close()
        self.proc.terminate()
        self.proc.wait(60)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--a-src", type=Path, required=True)
    ap.add_argument("--a-project", type=Path, required=True)
    ap.add_argument("--b-src", type=Path, required=True)
    ap.add_argument("--b-project", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--per-round", type=int, default=40)
    args = ap.parse_args()
    logs = Path(os.environ.get("TMPDIR", "/tmp"))
    builds = {
        "a": Served(args.a_src, args.a_project, logs / "bench-ab-a.log"),
        "b": Served(args.b_src, args.b_project, logs / "bench-ab-b.log"),
    }
    out: dict[str, Any] = {
        "sql": SQL,
        "a": str(args.a_src),
        "b": str(args.b_src),
        "load_before": os.getloadavg(),
    }
    p50: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    try:
        for b in builds.values():
            for name in PATHS:
                for _ in range(3):
                    b.path(name)()  # warm
        for r in range(args.rounds):
            order = ["a", "b"] if r % 2 == 0 else ["b", "a"]
            for name in PATHS:
                for key in order:
                    build = builds[key]
                    fn = build.path(name)
                    c0 = build.cpu()
                    times = []
                    for _ in range(args.per_round):
                        t0 = time.perf_counter()
                        fn()
                        times.append((time.perf_counter() - t0) * 1000)
                    cpu.setdefault((key, name), []).append((build.cpu() - c0) * 1000 / args.per_round)
                    p50.setdefault((key, name), []).append(statistics.median(times))
    finally:
        for b in builds.values():
            b.close()
    for name in PATHS:
        row: dict[str, Any] = {}
        for key in ("a", "b"):
            row[key] = {
                "p50_ms": round(statistics.median(p50[(key, name)]), 2),
                "server_cpu_ms_per_query": round(statistics.median(cpu[(key, name)]), 2),
                "round_p50s_ms": [round(x, 1) for x in p50[(key, name)]],
            }
        row["p50_ratio_b_to_a"] = round(row["b"]["p50_ms"] / row["a"]["p50_ms"], 2)
        row["cpu_ratio_b_to_a"] = round(
            row["b"]["server_cpu_ms_per_query"] / row["a"]["server_cpu_ms_per_query"], 2
        )
        out[name] = row
    out["load_after"] = os.getloadavg()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

"""How long a watcher takes to start a cycle after its source commits (``shoal.models.watching``).

A fake source commits every 1 s ± 0.3 s (as the ingest worker does), each cycle takes 0.45 s (a
quiet revenue cycle), ``--interval 0.2`` (the revenue watcher's); the delay from each commit to the
start of the cycle that takes it is reported, with the watcher's CPU. No lake: only the loop is
measured. Run it from each checkout to compare (issue 18, ADR 0049)::

    PYTHONPATH=$PWD/src .venv/bin/python bench/bench_watch_detect.py
"""

from __future__ import annotations

import argparse
import json
import random
import time

from shoal.models.context import RefreshResult
from shoal.models.watching import watch


def run(commits: int, seed: int, interval_s: float, cycle_s: float) -> list[float]:
    rng = random.Random(seed)
    at: list[float] = []
    t = time.monotonic() + 0.5
    for _ in range(commits):
        t += 1.0 + rng.uniform(-0.3, 0.3)
        at.append(t)
    end = at[-1] + 1.5
    delays: list[float] = []
    taken = [0]

    def versions() -> dict[str, int | None]:
        now = time.monotonic()
        return {"s": sum(1 for c in at if c <= now)}

    def refresh() -> list[RefreshResult]:
        now = time.monotonic()
        seen = sum(1 for c in at if c <= now)
        delays.extend(now - c for c in at[taken[0] : seen])
        taken[0] = seen
        time.sleep(cycle_s)
        return []

    watch(versions, refresh, interval_s=interval_s, should_stop=lambda: time.monotonic() > end)
    return delays


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commits", type=int, default=60)
    ap.add_argument("--interval-s", type=float, default=0.2)
    ap.add_argument("--cycle-s", type=float, default=0.45)
    args = ap.parse_args()
    c0 = time.process_time()
    delays = sorted(run(args.commits, 1, args.interval_s, args.cycle_s))
    cpu = time.process_time() - c0

    def q(p: float) -> float:
        return round(delays[min(len(delays) - 1, int(p * len(delays)))], 3)

    out = {"commits": len(delays), "p50_s": q(0.5), "p90_s": q(0.9), "p99_s": q(0.99), "max_s": q(1.0)}
    print(json.dumps({**out, "watcher_cpu_s": round(cpu, 3)}))


if __name__ == "__main__":
    main()

"""How ingest scales with workers, and how many Delta commits per second one table takes.

    .venv/bin/python bench/bench_scaling.py ingest --events 400000 --workers 1,2,4     # docs/scaling.md
    .venv/bin/python bench/bench_scaling.py commits --seconds 20 --writers 1,2,4     # local disk + SeaweedFS

``ingest``: support-ticket events (~165 B) are produced once to a ``--partitions`` topic; then for each
worker count W a fresh project (its own table and consumer group) runs W ``shoal ingest --until-drained``
processes at once, as ``shoal up`` runs N workers of a pipeline. Reported per W: rows (must equal the
events: nothing lost or duplicated), seconds from the workers' start to the table's last commit, the
rate, and the commits made. The machine's core count is printed: with 2 cores, more than two busy
processes share them.

``commits``: W writer processes append small batches (``--rows`` rows each) to ONE table as fast as they
can for ``--seconds``, on local disk and on SeaweedFS (S3 API, ``conditional_put=etag``). Every append is
one Delta commit through ``shoal.lake.Table.append``. Reported: commits/s for the table, rows/s,
commit latency p50/p99, and how often a commit lost the race for its version: delta-rs then re-tries
a blind append at the next version itself (appends never conflict), its commitInfo counts those;
other conflicts reach shoal's ``retry_conflicts`` (backoff, ``COMMIT_RETRIES``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the harness starts the broker and SeaweedFS

from harness.ingest import WorkerProcess, write_pipeline_project  # noqa: E402
from harness.kafka import start_broker  # noqa: E402
from harness.s3 import SeaweedS3, weed_binary  # noqa: E402
from shoal.lake import Lake  # noqa: E402
from shoal.sources.kafka.producer import produce_events  # noqa: E402
from shoal.usecases.support import MESSAGE, PROTO_FILE  # noqa: E402
from shoal.usecases.support.simulator import SupportSimulator  # noqa: E402

TABLE = "support.ticket_events"


# -- ingest: 1, 2, 4 workers on one topic ---------------------------------------------------------
def ingest(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="shoal-bench-scaling-"))
    services: list[Any] = []
    try:
        broker = start_broker(args.broker, work, services)
        topic = broker.create_topic("scaling-tickets", args.partitions)
        sim = SupportSimulator(
            42, datetime(2026, 1, 5), days=args.events // 60_000 + 1, tickets_per_day=10_000
        )
        produced = produce_events(broker.bootstrap, topic, islice(sim.encoded(), args.events))
        assert produced == args.events
        runs = []
        for workers in [int(w) for w in args.workers.split(",")]:
            project = write_pipeline_project(
                work / f"proj-{workers}",
                name=f"scaling{workers}",  # its own consumer group
                topic=topic,
                brokers=broker.bootstrap,
                decode={"format": "protobuf", "proto_file": str(PROTO_FILE), "message": MESSAGE},
                partition_by=[{"column": "event_date", "from": "occurred_at", "transform": "day"}],
                flush={"max_rows": args.max_rows, "max_latency_s": 5},
            )
            procs = [
                WorkerProcess(
                    project.dir,
                    f"scaling{workers}",
                    client=dict(broker.consumer_overrides),
                    until_drained=True,
                    log_path=work / f"worker-{workers}-{i}.log",
                    extra_args=["--drain-idle-s", "3", "--log-level", "WARNING"],
                )
                for i in range(workers)
            ]
            bproc = psutil.Process(broker.pid) if broker.pid else None
            b0 = sum(bproc.cpu_times()[:2]) if bproc else 0.0
            c0 = os.times()
            t0 = time.time()
            for p in procs:
                p.start()
            codes = [p.wait(args.timeout) for p in procs]
            wall = time.time() - t0
            c1 = os.times()
            workers_cpu = c1.children_user + c1.children_system - c0.children_user - c0.children_system
            broker_cpu = sum(bproc.cpu_times()[:2]) - b0 if bproc else None
            if any(codes):
                tails = "\n---\n".join(p.log_tail(20) for p in procs)
                raise SystemExit(f"a worker failed ({codes}):\n{tails}")
            table = project.lake.table(TABLE)
            rows = table.count()
            history = table.history()
            last = max(h["timestamp"] for h in history) / 1000
            commits = sum(1 for h in history if h.get("operation") != "CREATE TABLE")
            runs.append(
                {
                    "workers": workers,
                    "rows": rows,
                    "exact": rows == args.events,
                    "start_to_last_commit_s": round(last - t0, 2),
                    "ev_s": round(rows / (last - t0)),
                    "wall_s_with_drain_wait": round(wall, 2),
                    "commits": commits,
                    # CPU seconds of all workers together and of the broker: with 2 cores, their sum
                    # over the run's seconds shows how close the machine was to saturation
                    "workers_cpu_s": round(workers_cpu, 1),
                    "broker_cpu_s": None if broker_cpu is None else round(broker_cpu, 1),
                }
            )
            print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
        base = runs[0]["ev_s"]
        for r in runs:
            r["speedup"] = round(r["ev_s"] / base, 2)
        return {
            "mode": "ingest",
            "events": args.events,
            "partitions": args.partitions,
            "broker": args.broker,
            "max_rows": args.max_rows,
            "runs": runs,
            "cpus": os.cpu_count(),
            "loadavg_1m": round(os.getloadavg()[0], 1),
        }
    finally:
        for s in services:
            s.stop()


# -- commits: W writers appending to one table ----------------------------------------------------
WRITER = r"""
import json, sys, time
import pyarrow as pa
from shoal.lake import Lake
root, opts, seconds = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3])
rows, wid = int(sys.argv[4]), sys.argv[5]
t = Lake(root, opts).table("bench.commits")
n = 0; lat = []
batch = pa.table({"writer": [wid] * rows, "seq": list(range(rows)), "at": [time.time()] * rows})
end = time.perf_counter() + seconds
while time.perf_counter() < end:
    s = time.perf_counter()
    t.append(batch)
    lat.append(time.perf_counter() - s)
    n += 1
print(json.dumps({"commits": n, "latencies": lat}))
"""


def commits(args: argparse.Namespace) -> dict[str, Any]:
    import pyarrow as pa

    work = Path(tempfile.mkdtemp(prefix="shoal-bench-commits-"))
    s3 = SeaweedS3(weed_binary(), work / "weed", work / "weed.log")  # type: ignore[arg-type]
    s3.start()
    results = []
    try:
        bucket = s3.create_bucket("lake")
        stores = {
            "local": (str(work / "lake"), {}),
            "seaweedfs": (f"s3://{bucket}/lake", s3.storage_options()),
        }
        for store, (root, opts) in stores.items():
            if store not in args.stores.split(","):
                continue
            for writers in [int(w) for w in args.writers.split(",")]:
                lake = Lake(f"{root}-{writers}", opts)
                schema = pa.schema([("writer", pa.string()), ("seq", pa.int64()), ("at", pa.float64())])
                table = lake.create_table("bench.commits", schema)
                argv = [
                    sys.executable,
                    "-c",
                    WRITER,
                    f"{root}-{writers}",
                    json.dumps(opts),
                    str(args.seconds),
                    str(args.rows),
                ]
                procs = [
                    subprocess.Popen([*argv, str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                    for i in range(writers)
                ]
                outs = []
                for p in procs:
                    out, err = p.communicate(timeout=args.seconds + 300)
                    if p.returncode:
                        raise SystemExit(f"writer failed:\n{err.decode()[-2000:]}")
                    outs.append(json.loads(out.decode().strip().splitlines()[-1]))
                made = sum(o["commits"] for o in outs)
                lat = [x for o in outs for x in o["latencies"]]
                version = table.version
                assert version == made, f"{made} appends but version {version}"
                assert table.count() == made * args.rows
                results.append(
                    {
                        "store": store,
                        "writers": writers,
                        "commits": made,
                        "commits_s": round(made / args.seconds, 1),
                        "rows_s": round(made * args.rows / args.seconds),
                        # delta-rs re-tries a blind append that lost the race at the next version
                        # itself (no conflict between appends): its commitInfo counts the retries
                        "commit_retries": sum(
                            int((h.get("operationMetrics") or {}).get("num_retries", 0) or 0)
                            for h in table.history()
                        ),
                        "commit_p50_ms": round(statistics.median(lat) * 1000, 1),
                        "commit_p99_ms": round(sorted(lat)[int(len(lat) * 0.99)] * 1000, 1),
                    }
                )
                print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    finally:
        s3.stop()
    return {
        "mode": "commits",
        "seconds": args.seconds,
        "rows_per_commit": args.rows,
        "runs": results,
        "cpus": os.cpu_count(),
        "loadavg_1m": round(os.getloadavg()[0], 1),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    a = sub.add_parser("ingest", help="throughput with 1, 2, 4 workers on one topic")
    a.add_argument("--events", type=int, default=400_000)
    a.add_argument("--partitions", type=int, default=12)
    a.add_argument("--workers", default="1,2,4")
    a.add_argument("--broker", choices=["noida", "tansu"], default="noida")
    a.add_argument("--max-rows", type=int, default=50_000, help="flush size per partition buffer")
    a.add_argument("--timeout", type=float, default=900)
    c = sub.add_parser("commits", help="Delta commits per second on one table")
    c.add_argument("--seconds", type=float, default=20)
    c.add_argument("--writers", default="1,2,4")
    c.add_argument("--rows", type=int, default=100)
    c.add_argument("--stores", default="local,seaweedfs")
    args = ap.parse_args()
    summary = ingest(args) if args.mode == "ingest" else commits(args)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

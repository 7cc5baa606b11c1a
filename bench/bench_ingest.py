"""End-to-end ingest throughput of one worker vs a bare confluent-kafka consumer on the same topic.

    .venv/bin/python bench/bench_ingest.py --events 2000000 --broker tansu      # the reference run
    .venv/bin/python bench/bench_ingest.py --events 200000 --broker noida       # quick

Produces realistic support-ticket events (SupportSimulator, ~165 B each) to a fresh 6-partition topic,
then, one after the other, in child processes (so peak RSS is per phase):
  raw    a bare confluent-kafka consumer, consume(10000) until every event was seen
  ingest ``python -m shoal ingest --until-drained`` into a local lake (produced → committed and queryable)
  quix   (with --quix-python) a Quix Streams application, the most used Python stream processor, on
         the same topic: its ProtobufDeserializer and LocalFileSink in Parquet, at-least-once, for
         reference (no exactly-once commit into a table). Quix pins an older confluent-kafka, so it
         runs from a venv of its own:
             python3.11 -m venv .venv-quix && .venv-quix/bin/pip install quixstreams grpcio-tools pyarrow
             .venv/bin/python bench/bench_ingest.py --events 2000000 --quix-python .venv-quix/bin/python
``--profile FILE`` samples the worker with py-spy (its Python threads; delta-rs's Rust threads are not
seen) for a per-stage breakdown of where its CPU goes. The script prints one JSON summary: rates,
the worker's per-stage seconds, peak RSS of each child, the worker's CPU seconds per million
events, and the broker's CPU seconds during each phase (noida-db and tansu both cost CPU, the
machine has 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the test harness starts brokers (and SeaweedFS for tansu)

from harness.ingest import write_pipeline_project  # noqa: E402
from harness.kafka import start_broker  # noqa: E402
from shoal.sources.kafka.producer import produce_events  # noqa: E402
from shoal.usecases.support import MESSAGE, PROTO_FILE  # noqa: E402
from shoal.usecases.support.simulator import SupportSimulator  # noqa: E402

RAW_CONSUMER = r"""
import json, sys, time
from confluent_kafka import Consumer
conf = json.loads(sys.argv[1]); n = int(sys.argv[2]); topic = sys.argv[3]
c = Consumer(conf); c.subscribe([topic])
seen = 0; t0 = None; nbytes = 0
while seen < n:
    for m in c.consume(10000, 1.0):
        if m.error():
            continue
        if t0 is None:
            t0 = time.perf_counter()
        seen += 1; nbytes += len(m.value())
dt = time.perf_counter() - t0
c.close()
print(json.dumps({"events": seen, "seconds": dt, "bytes": nbytes}))
"""


QUIX_PEER = r"""
import json, os, sys, tempfile, time, importlib, pathlib
from grpc_tools import protoc
import grpc_tools
from quixstreams import Application
from quixstreams.models.serializers.protobuf import ProtobufDeserializer
from quixstreams.sinks.community.file.local import LocalFileSink
from quixstreams.sinks.community.file.formats.parquet import ParquetFormat
import pyarrow.parquet as pq

conf = json.loads(sys.argv[1]); n = int(sys.argv[2]); topic = sys.argv[3]
proto = pathlib.Path(sys.argv[4]); message = sys.argv[5]; out = pathlib.Path(sys.argv[6])
gen = pathlib.Path(tempfile.mkdtemp())
wkt = pathlib.Path(grpc_tools.__file__).parent / "_proto"
assert protoc.main(["protoc", f"-I{proto.parent}", f"-I{wkt}", f"--python_out={gen}", str(proto)]) == 0
sys.path.insert(0, str(gen))
cls = getattr(importlib.import_module(proto.stem + "_pb2"), message.rsplit(".", 1)[1])

extra = {k: v for k, v in conf.items() if k not in ("bootstrap.servers", "group.id", "auto.offset.reset")}
app = Application(
    broker_address=conf["bootstrap.servers"], consumer_group="bench-quix", auto_offset_reset="earliest",
    processing_guarantee="at-least-once", loglevel="WARNING", consumer_extra_config=extra,
    use_changelog_topics=False,
)
t = app.topic(topic, value_deserializer=ProtobufDeserializer(msg_type=cls, preserving_proto_field_name=True),
              key_deserializer="bytes")
seen = {"n": 0, "first": None, "last": None}
def mark(value):
    now = time.perf_counter()
    if seen["first"] is None:
        seen["first"] = now
    seen["n"] += 1; seen["last"] = now
    return value
sdf = app.dataframe(t).update(mark)
out.mkdir(parents=True, exist_ok=True)
os.chdir(out)  # the sink takes only [A-Za-z0-9 ._] in its directory name
sdf.sink(LocalFileSink(directory="sink", format=ParquetFormat()))
idle = 3.0
app.run(timeout=idle)
done = time.perf_counter()
rows = sum(pq.ParquetFile(f).metadata.num_rows for f in out.rglob("*.parquet"))
print(json.dumps({"events": seen["n"], "rows_written": rows, "seconds": done - seen["first"] - idle,
                  "seconds_to_last_record": seen["last"] - seen["first"]}))
"""


def run_child(argv: list[str], broker_pid: int | None, env: dict[str, str] | None = None) -> dict[str, Any]:
    bproc = psutil.Process(broker_pid) if broker_pid else None
    b0 = sum(bproc.cpu_times()[:2]) if bproc else 0.0
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, env=env)
        out = proc.stdout.read() if proc.stdout else b""
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace")[-2000:]
            raise SystemExit(f"child failed ({status}): {' '.join(argv[:2])}\n{tail}")
    return {
        "result": json.loads([ln for ln in out.decode().splitlines() if ln.startswith("{")][-1]),
        "wall_s": round(wall, 2),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "broker_cpu_s": round(sum(bproc.cpu_times()[:2]) - b0, 2) if bproc else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--broker", choices=["noida", "tansu"], default="tansu")
    ap.add_argument("--max-rows", type=int, default=100_000, help="flush size")
    ap.add_argument("--consume-batch", type=int, help="the pipeline's consume_batch (default: the spec's)")
    ap.add_argument(
        "--profile",
        metavar="FILE",
        help="sample the worker with py-spy (pip install '.[bench]') into FILE (collapsed stacks); "
        "the run's worker figures then include py-spy",
    )
    ap.add_argument("--quix-python", help="python of a venv with quixstreams: adds the Quix Streams peer")
    ap.add_argument(
        "--client", action="append", default=[], metavar="K=V", help="extra librdkafka setting for the worker"
    )
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="shoal-bench-ingest-"))
    services: list[Any] = []
    try:
        broker = start_broker(args.broker, work, services)
        topic = broker.create_topic("bench-tickets", args.partitions)

        sim = SupportSimulator(
            42, datetime(2026, 1, 5), days=max(1, args.events // 60_000 + 1), tickets_per_day=10_000
        )
        t0 = time.perf_counter()
        produced = produce_events(broker.bootstrap, topic, islice(sim.encoded(), args.events))
        produce_s = time.perf_counter() - t0
        assert produced == args.events, f"the simulator made only {produced} events"

        overrides = dict(broker.consumer_overrides)
        raw_conf = {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "bench-raw",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **overrides,
        }
        raw = run_child(
            [sys.executable, "-c", RAW_CONSUMER, json.dumps(raw_conf), str(args.events), topic], broker.pid
        )

        project = write_pipeline_project(
            work / "proj",
            name="bench",
            topic=topic,
            brokers=broker.bootstrap,
            decode={"format": "protobuf", "proto_file": str(PROTO_FILE), "message": MESSAGE},
            partition_by=[{"column": "event_date", "from": "occurred_at", "transform": "day"}],
            flush={"max_rows": args.max_rows, "max_latency_s": 5},
            **({"consume_batch": args.consume_batch} if args.consume_batch else {}),
        )
        argv = [
            sys.executable,
            "-m",
            "shoal",
            "ingest",
            "bench",
            "--project",
            str(project.dir),
            "--until-drained",
        ]
        argv += ["--drain-idle-s", "1", "--log-level", "WARNING", "--format", "json"]
        for k, v in overrides.items():
            argv += ["--client", f"{k}={v}"]
        for kv in args.client:
            argv += ["--client", kv]
        if args.profile:
            spy = str(Path(sys.executable).with_name("py-spy"))
            argv = [
                spy,
                "record",
                "--nonblocking",
                "--threads",
                "--rate",
                "250",
                "--format",
                "raw",
                "-o",
                args.profile,
                "--",
                *argv,
            ]
        ingest = run_child(argv, broker.pid)
        stats = ingest["result"]
        table = project.lake.table("support.ticket_events")
        rows = table.count()
        assert rows == args.events, f"table has {rows} rows, produced {args.events}"

        quix = None
        if args.quix_python:
            quix_conf = dict(raw_conf, **{"group.id": "bench-quix"})
            quix = run_child(
                [
                    args.quix_python,
                    "-c",
                    QUIX_PEER,
                    json.dumps(quix_conf),
                    str(args.events),
                    topic,
                    str(PROTO_FILE),
                    MESSAGE,
                    str(work / "quix-out"),
                ],
                broker.pid,
            )
            assert quix["result"]["rows_written"] >= args.events, f"quix wrote {quix['result']}"

        raw_rate = raw["result"]["events"] / raw["result"]["seconds"]
        # end to end: from the worker's start to its last commit (includes interpreter start, proto
        # compile and the final drain wait of --drain-idle-s)
        e2e_rate = rows / ingest["wall_s"]
        loop_rate = rows / stats["active_s"]  # first record consumed → last commit done
        summary = {
            "events": args.events,
            "partitions": args.partitions,
            "broker": args.broker,
            "avg_event_bytes": round(raw["result"]["bytes"] / raw["result"]["events"], 1),
            "produce_ev_s": round(produced / produce_s),
            "raw_consumer": {
                "ev_s": round(raw_rate),
                "peak_rss_mib": raw["peak_rss_mib"],
                "cpu_s_per_million": round(raw["cpu_s"] / args.events * 1e6, 2),
                "broker_cpu_s": raw["broker_cpu_s"],
            },
            "ingest": {
                "ev_s_end_to_end": round(e2e_rate),
                "ev_s_first_record_to_last_commit": round(loop_rate),
                "share_of_raw": round(loop_rate / raw_rate, 3),
                "wall_s": ingest["wall_s"],
                "stage_seconds": stats["timings"],
                "flushes": stats["flushes"],
                "peak_rss_mib": ingest["peak_rss_mib"],
                "worker_cpu_s": ingest["cpu_s"],
                "worker_cpu_s_per_million": round(ingest["cpu_s"] / rows * 1e6, 2),
                "broker_cpu_s": ingest["broker_cpu_s"],
                "table_rows": rows,
                "table_version": table.version,
            },
            "quix_streams": None
            if quix is None
            else {
                "ev_s_first_record_to_last_flush": round(
                    quix["result"]["events"] / quix["result"]["seconds"]
                ),
                "share_of_raw": round(quix["result"]["events"] / quix["result"]["seconds"] / raw_rate, 3),
                "shoal_over_quix": round(
                    loop_rate / (quix["result"]["events"] / quix["result"]["seconds"]), 2
                ),
                "rows_written": quix["result"]["rows_written"],
                "peak_rss_mib": quix["peak_rss_mib"],
                "cpu_s": quix["cpu_s"],
                "cpu_s_per_million": round(quix["cpu_s"] / args.events * 1e6, 2),
                "broker_cpu_s": quix["broker_cpu_s"],
            },
            "cpus": os.cpu_count(),
            "loadavg_1m": os.getloadavg()[0],
        }
        print(json.dumps(summary, indent=2))
    finally:
        for s in services:
            s.stop()


if __name__ == "__main__":
    main()

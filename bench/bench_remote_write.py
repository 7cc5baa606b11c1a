"""Prometheus remote_write samples/s ingested by ONE shoal receiver process, against its floor.

    .venv/bin/python bench/bench_remote_write.py --samples 10000000      # the reference run
    .venv/bin/python bench/bench_remote_write.py --samples 1000000       # quick

Builds realistic WriteRequests first (not timed): node_exporter-like series (cpu x mode counters,
disk/network counters per device, filesystem, memory, load, hwmon gauges) of ``--instances`` hosts
with ``job``/``instance`` labels; each request carries ``--series-per-request`` series x
``--samples-per-series`` samples 15 s apart, snappy block-compressed (cramjam, as Prometheus does).
Then, one after the other:

  receiver   shoal's receiver (``remote_write.serve``: uvicorn + Starlette) in a child process over a
             fresh local lake; the parent POSTs every body over real HTTP with ``--concurrency``
             requests in flight (Prometheus' queue shards). The receiver answers 204 only once the
             flush holding the samples is committed, so first request -> last 204 is
             "sent -> committed in the lake"; the row count of ``metrics.samples`` is checked after.
  floor      the baseline: snappy-decompress + protobuf-parse (upb) of the same bodies, nothing else:
             the floor of any Python receiver (CPU seconds of this process).
  breakdown  in this process, on the same bodies: shoal's ``decode_write_request`` (CPU s), then
             ``MetricsWriter.write`` of the decoded samples in receiver-sized batches into a second
             fresh lake (wall s), and, as a second baseline, writing the same batches as plain Parquet
             files with pyarrow (wall s).

Prints one JSON object: rates, the ratio to the floor, the receiver's CPU seconds and peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cramjam
import httpx
import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq

from shoal.lake import Lake
from shoal.sources.prometheus import (
    MetricsWriter,
    SampleBatch,
    decode_write_request,
    ensure_metrics_tables,
    write_request_class,
)
from shoal.sources.prometheus.tables import SAMPLES

RECEIVER = r"""
import sys
from shoal.lake import Lake
from shoal.sources.prometheus import MetricsWriter, ReceiverConfig
from shoal.usecases.metrics.receiver import serve
root, port, batch, delay = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
config = ReceiverConfig(max_batch_samples=batch, max_batch_delay_s=delay)
serve(MetricsWriter(Lake(root)), port=port, config=config, log_level="warning")
"""

START_MS = 1_767_600_000_000  # 2026-01-05 08:00 UTC: a default run stays within one day partition
STEP_MS = 15_000


def node_series(instances: int) -> tuple[list[list[tuple[str, str]]], np.ndarray]:
    """Label sets (``__name__`` first, then sorted) of node_exporter-like series, and which are counters."""
    per_host: list[tuple[str, dict[str, str], bool]] = []
    modes = ("user", "system", "idle", "iowait", "irq", "softirq", "steal", "nice")
    for cpu in range(8):
        for mode in modes:
            per_host.append(("node_cpu_seconds_total", {"cpu": str(cpu), "mode": mode}, True))
    for dev in ("sda", "sdb", "nvme0n1", "nvme1n1"):
        for m in ("read_bytes", "written_bytes", "reads_completed", "writes_completed", "io_time_seconds"):
            per_host.append((f"node_disk_{m}_total", {"device": dev}, True))
    for dev in ("eth0", "eth1", "lo"):
        for m in ("receive_bytes", "transmit_bytes", "receive_packets", "transmit_packets"):
            per_host.append((f"node_network_{m}_total", {"device": dev}, True))
    for dev, mnt in (
        ("/dev/sda1", "/"),
        ("/dev/sda2", "/var"),
        ("/dev/nvme0n1p1", "/data"),
        ("tmpfs", "/run"),
    ):
        fstype = "tmpfs" if dev == "tmpfs" else "ext4"
        for m in ("avail_bytes", "size_bytes", "free_bytes", "files_free"):
            per_host.append(
                (f"node_filesystem_{m}", {"device": dev, "fstype": fstype, "mountpoint": mnt}, False)
            )
    memory = "MemTotal MemFree MemAvailable Buffers Cached SwapTotal SwapFree Active Inactive Dirty Slab"
    for m in (*memory.split(), "PageTables", "Shmem", "HugePages_Total", "Committed_AS"):
        per_host.append((f"node_memory_{m}_bytes", {}, False))
    for m in ("load1", "load5", "load15", "procs_running", "procs_blocked"):
        per_host.append((f"node_{m}", {}, False))
    for chip in ("platform_coretemp_0", "platform_coretemp_1"):
        for sensor in range(5):
            per_host.append(("node_hwmon_temp_celsius", {"chip": chip, "sensor": f"temp{sensor + 1}"}, False))
    labels: list[list[tuple[str, str]]] = []
    counters: list[bool] = []
    for h in range(instances):
        base = {"job": "node", "instance": f"host-{h:04d}.dc1.example:9100", "datacenter": f"dc{h % 3 + 1}"}
        for name, extra, counter in per_host:
            labels.append([("__name__", name), *sorted({**base, **extra}.items())])
            counters.append(counter)
    return labels, np.asarray(counters)


def build_bodies(args: argparse.Namespace) -> tuple[list[bytes], int, int, int]:
    """Snappy-compressed WriteRequests: series in chunks, consecutive time windows per pass."""
    labels, counters = node_series(args.instances)
    n_series, per_req, k = len(labels), args.series_per_request, args.samples_per_series
    rng = np.random.default_rng(5)
    # counters grow by a per-series rate; gauges wander around a per-series level
    level = rng.uniform(1.0, 1e9, n_series)
    rate = rng.uniform(0.01, 1e5, n_series)
    cls: Any = write_request_class()
    bodies: list[bytes] = []
    total = raw_bytes = 0
    window = 0
    while total < args.samples:
        for lo in range(0, n_series, per_req):
            if total >= args.samples:
                break
            hi = min(lo + per_req, n_series)
            steps = window * k + np.arange(k)
            stamps = (START_MS + steps * STEP_MS).tolist()
            noise = rng.normal(0.0, 1.0, (hi - lo, k))
            vals = np.where(
                counters[lo:hi, None],
                np.floor(rate[lo:hi, None] * steps[None, :] + level[lo:hi, None] * 1e-3),
                level[lo:hi, None] * (1.0 + 0.01 * noise),
            ).tolist()
            req = cls()
            for i in range(hi - lo):
                ts = req.timeseries.add()
                for name, value in labels[lo + i]:
                    ts.labels.add(name=name, value=value)
                for t, v in zip(stamps, vals[i], strict=True):
                    ts.samples.add(timestamp=t, value=v)
            raw = req.SerializeToString()
            raw_bytes += len(raw)
            bodies.append(bytes(cramjam.snappy.compress_raw(raw)))
            total += (hi - lo) * k
        window += 1
    return bodies, total, n_series, raw_bytes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def post_all(url: str, bodies: list[bytes], concurrency: int) -> tuple[float, float]:
    """POST every body (``concurrency`` in flight); returns (first send, last 204) perf_counter times."""
    headers = {
        "Content-Encoding": "snappy",
        "Content-Type": "application/x-protobuf",
        "X-Prometheus-Remote-Write-Version": "0.1.0",
    }
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    last = 0.0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=300.0) as client:

        async def sender() -> None:
            nonlocal last
            while not queue.empty():
                body = queue.get_nowait()
                resp = await client.post(url, content=body, headers=headers)
                if resp.status_code != 204:
                    raise SystemExit(f"receiver answered {resp.status_code}: {resp.text.strip()}")
                last = time.perf_counter()

        first = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
    return first, last


def run_receiver(args: argparse.Namespace, bodies: list[bytes], total: int, work: Path) -> dict[str, Any]:
    root = work / "lake-receiver"
    ensure_metrics_tables(Lake(str(root)))  # table creation is not part of the measured phase
    port = free_port()
    argv = [
        sys.executable,
        "-c",
        RECEIVER,
        str(root),
        str(port),
        str(args.max_batch_samples),
        str(args.max_batch_delay),
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/-/healthy", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise SystemExit(f"receiver did not start: {err[-2000:]}")
            time.sleep(0.2)
        ps = psutil.Process(proc.pid)
        cpu0 = sum(ps.cpu_times()[:2])
        first, last = asyncio.run(post_all(f"http://127.0.0.1:{port}/api/v1/write", bodies, args.concurrency))
        cpu_s = sum(ps.cpu_times()[:2]) - cpu0
    finally:
        proc.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully (flushes whatever is pending)
        _pid, _status, usage = os.wait4(proc.pid, 0)
    samples_t = Lake(str(root)).table(SAMPLES)
    committed = samples_t.count()
    if committed != total:
        raise SystemExit(f"lake holds {committed} samples, {total} were sent")
    seconds = last - first
    return {
        "samples_committed": committed,
        "seconds": round(seconds, 2),
        "samples_per_s": round(total / seconds),
        "commits": samples_t.version,
        "receiver_cpu_s": round(cpu_s, 2),
        "receiver_cpu_per_wall": round(cpu_s / seconds, 2),
        "receiver_peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
    }


def run_floor(bodies: list[bytes]) -> tuple[float, int]:
    cls: Any = write_request_class()
    n = 0
    t0 = time.process_time()
    for body in bodies:
        msg = cls()
        msg.ParseFromString(bytes(cramjam.snappy.decompress_raw(body)))
        n += len(msg.timeseries)
    return time.process_time() - t0, n


def run_breakdown(bodies: list[bytes], batch_samples: int, work: Path) -> dict[str, float]:
    """decode (CPU s), MetricsWriter.write (wall s) and plain Parquet writes (wall s) of the same samples."""
    lake = Lake(str(work / "lake-inproc"))
    ensure_metrics_tables(lake)
    writer = MetricsWriter(lake)
    writer.known_series()
    pq_dir = work / "parquet"
    pq_dir.mkdir()
    decode_s = write_s = parquet_s = 0.0
    pending = SampleBatch()

    def flush() -> None:
        nonlocal write_s, parquet_s, pending
        t0 = time.perf_counter()
        writer.write(pending, first_seen_ms=START_MS)
        t1 = time.perf_counter()
        table = pa.table(
            {
                "series_id": pa.array(pending.series_ids, pa.int64()),
                "ts": pa.array(pending.ts_ms, pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
                "value": pa.array(pending.values, pa.float64()),
            }
        )
        pq.write_table(table, pq_dir / f"part-{int(t1 * 1e6)}.parquet")
        parquet_s += time.perf_counter() - t1
        write_s += t1 - t0
        pending = SampleBatch()

    for body in bodies:
        t0 = time.process_time()
        batch = decode_write_request(body)
        decode_s += time.process_time() - t0
        pending.extend(batch)
        if len(pending) >= batch_samples:
            flush()
    if len(pending):
        flush()
    return {"decode_cpu_s": decode_s, "write_s": write_s, "parquet_s": parquet_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--samples", type=int, default=10_000_000, help="samples to send (rounded up to a request)"
    )
    ap.add_argument("--instances", type=int, default=100, help="hosts; ~150 node_exporter series each")
    ap.add_argument("--series-per-request", type=int, default=2000)
    ap.add_argument("--samples-per-series", type=int, default=10, help="samples per series per request")
    ap.add_argument("--concurrency", type=int, default=8, help="requests in flight (Prometheus shards)")
    ap.add_argument("--max-batch-samples", type=int, default=100_000, help="receiver flush size")
    ap.add_argument("--max-batch-delay", type=float, default=1.0, help="receiver flush delay (s)")
    ap.add_argument("--no-breakdown", action="store_true", help="skip the in-process decode/write breakdown")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="shoal-bench-rw-"))
    try:
        t0 = time.perf_counter()
        bodies, total, n_series, raw_bytes = build_bodies(args)
        build_s = time.perf_counter() - t0
        receiver = run_receiver(args, bodies, total, work)
        floor_s, _ = run_floor(bodies)
        out: dict[str, Any] = {
            "samples": total,
            "requests": len(bodies),
            "series": n_series,
            "avg_samples_per_request": round(total / len(bodies)),
            "avg_body_bytes": round(sum(map(len, bodies)) / len(bodies)),
            "avg_uncompressed_bytes": round(raw_bytes / len(bodies)),
            "concurrency": args.concurrency,
            "max_batch_samples": args.max_batch_samples,
            "build_requests_s": round(build_s, 1),
            "receiver": receiver,
            "baseline_floor": {
                "what": "snappy decompress + protobuf parse of the same bodies (upb), per CPU second",
                "cpu_s": round(floor_s, 2),
                "samples_per_cpu_s": round(total / floor_s),
            },
            "ratio_receiver_to_floor": round((total / receiver["seconds"]) / (total / floor_s), 3),
        }
        if not args.no_breakdown:
            bd = run_breakdown(bodies, args.max_batch_samples, work)
            out["breakdown"] = {
                "decode_samples_per_cpu_s": round(total / bd["decode_cpu_s"]),
                "metrics_writer_samples_per_s": round(total / bd["write_s"]),
                "baseline_plain_parquet_samples_per_s": round(total / bd["parquet_s"]),
                "decode_cpu_s": round(bd["decode_cpu_s"], 2),
                "write_s": round(bd["write_s"], 2),
                "parquet_s": round(bd["parquet_s"], 2),
            }
        out["loadavg"] = [round(x, 2) for x in os.getloadavg()]
        print(json.dumps(out, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

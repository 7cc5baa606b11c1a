"""Time of one scrape round of 1,000 simulated targets (into the lake) vs bare HTTP GETs of the same URLs.

    .venv/bin/python bench/bench_scrape.py --rounds 5          # the reference run (1,000 targets)
    .venv/bin/python bench/bench_scrape.py --rounds 3 --racks-per-podlet 2   # quick (400 targets)

The fleet simulator's exporter (``FleetExporter`` + ``ExporterServer``) runs in a child process and
serves every target from ONE HTTP server by path (``/targets/<id>/metrics``); its file_sd file lists
one target per PDU and per hypervisor. Default fleet: 1 region x 2 DCs x 5 podlets x 5 racks x
18 hypervisors = 100 PDU + 900 hypervisor targets = 1,000. Then, ``--rounds`` times, one after the
other in this process (same httpx client settings, ``--concurrency`` requests in flight, no jitter):

  get       the baseline: concurrent GETs of the same 1,000 URLs with the scraper's httpx client
            settings (limits, Accept header), bodies read, nothing parsed: the floor of any scraper
            against this exporter.
  nowrite   shoal's ``Scraper.scrape_round`` without a writer: GET + parse into a SampleBatch.
  scrape    shoal's ``Scraper.scrape_round`` with a ``MetricsWriter`` on a fresh local lake: GET, parse,
            and commit samples, new series and target health (one round = one commit per table).

Also the CPU seconds of parsing every body once (``iter_samples``, parse-only). The first full
round also creates the series (a first scrape of the fleet), so it is reported apart; the median is
over the following rounds. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from shoal.lake import Lake
from shoal.sources.prometheus import MetricsWriter, ScrapeConfig, Scraper, Target, TargetsFile
from shoal.sources.prometheus.exposition import iter_samples
from shoal.sources.prometheus.scraper import ACCEPT_OPENMETRICS
from shoal.sources.prometheus.tables import SAMPLES

EXPORTER = r"""
import json, sys
from pathlib import Path
from shoal.usecases.infra.exporter import ExporterServer, FleetExporter
from shoal.usecases.infra.simulator import FleetSimulator
from shoal.usecases.infra.topology import TopologyConfig, build_topology
cfg = TopologyConfig(**json.loads(sys.argv[1]))
exporter = FleetExporter(FleetSimulator(build_topology(cfg)))
exporter.render(exporter.targets()[0])  # simulate today's block before the first scrape
server = ExporterServer(exporter).start()
server.write_file_sd(Path(sys.argv[2]))
print(server.address, flush=True)
sys.stdin.read()  # serve until the parent closes our stdin
server.stop()
"""


async def bare_gets(targets: list[Target], cfg: ScrapeConfig) -> tuple[float, list[tuple[bytes, str | None]]]:
    """GET every target like the scraper's client does, read the bodies, parse nothing."""
    sem = asyncio.Semaphore(cfg.concurrency)
    limits = httpx.Limits(max_connections=cfg.concurrency, max_keepalive_connections=cfg.concurrency)
    headers = {"Accept": ACCEPT_OPENMETRICS}

    async def one(client: httpx.AsyncClient, t: Target) -> tuple[bytes, str | None]:
        async with sem:
            resp = await client.get(t.url, timeout=cfg.timeout_s)
            resp.raise_for_status()
            return resp.content, resp.headers.get("content-type")

    t0 = time.perf_counter()
    async with httpx.AsyncClient(limits=limits, headers=headers, follow_redirects=True) as client:
        bodies = list(await asyncio.gather(*(one(client, t) for t in targets)))
    return time.perf_counter() - t0, bodies


def med(xs: list[float]) -> float:
    return round(statistics.median(xs), 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=64, help="requests in flight (ScrapeConfig default)")
    ap.add_argument("--timeout", type=float, default=10.0, help="per-target timeout (s)")
    ap.add_argument("--datacenters", type=int, default=2)
    ap.add_argument("--podlets-per-datacenter", type=int, default=5)
    ap.add_argument("--racks-per-podlet", type=int, default=5)
    ap.add_argument("--hypervisors-per-rack", type=int, default=18)
    ap.add_argument("--disks-per-hypervisor", type=int, default=2)
    args = ap.parse_args()
    topo = {
        "datacenters_per_region": args.datacenters,
        "podlets_per_datacenter": args.podlets_per_datacenter,
        "racks_per_podlet": args.racks_per_podlet,
        "hypervisors_per_rack": args.hypervisors_per_rack,
        "disks_per_hypervisor": args.disks_per_hypervisor,
    }

    work = Path(tempfile.mkdtemp(prefix="shoal-bench-scrape-"))
    sd = work / "targets.json"
    child = subprocess.Popen(
        [sys.executable, "-c", EXPORTER, json.dumps(topo), str(sd)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert child.stdout is not None
        address = child.stdout.readline().decode().strip()
        if not address:
            raise SystemExit("the exporter did not start")
        cfg = ScrapeConfig(job="fleet", jitter_s=0, concurrency=args.concurrency, timeout_s=args.timeout)
        targets = TargetsFile(sd, default_job="fleet").current()
        lake = Lake(str(work / "lake"))
        scraper = Scraper(targets, MetricsWriter(lake), cfg)
        no_writer = Scraper(targets, None, cfg)
        slot = scraper.slot_ms()

        get_s: list[float] = []
        nowrite_s: list[float] = []
        scrape_s: list[float] = []
        samples: list[int] = []
        down = 0
        bodies: list[tuple[bytes, str | None]] = []
        for i in range(args.rounds):
            g, bodies = asyncio.run(bare_gets(targets, cfg))
            get_s.append(g)
            nw = asyncio.run(no_writer.scrape_round(slot + i * 300_000))
            nowrite_s.append(nw.duration_s)
            r = asyncio.run(scraper.scrape_round(slot + i * 300_000))
            if r.write is None or r.write.samples != r.samples:
                raise SystemExit(f"round not fully written: {r.summary()}")
            scrape_s.append(r.duration_s)
            samples.append(r.samples)
            down += r.down + nw.down

        t0 = time.process_time()
        parsed = sum(sum(1 for _ in iter_samples(body, ctype)) for body, ctype in bodies)
        parse_cpu = time.process_time() - t0
        committed = lake.table(SAMPLES).count()
        steady = scrape_s[1:] or scrape_s
        out: dict[str, Any] = {
            "targets": len(targets),
            "exporter": f"one ThreadingHTTPServer (child process), {len(targets)} targets by path",
            "concurrency": args.concurrency,
            "rounds": args.rounds,
            "samples_per_round": statistics.median(samples),
            "exposition_samples_per_round": parsed,
            "avg_body_bytes": round(sum(len(b) for b, _ in bodies) / len(bodies)),
            "baseline_bare_get_s": med(get_s),
            "scrape_no_write_s": med(nowrite_s),
            "scrape_round_s": med(steady),
            "scrape_first_round_s": round(scrape_s[0], 3),
            "ratio_scrape_to_get": round(statistics.median(steady) / statistics.median(get_s), 2),
            "share_of_5min_interval": round(statistics.median(steady) / 300.0, 4),
            "parse_only_cpu_s": round(parse_cpu, 3),
            "samples_committed": committed,
            "down_targets_total": down,
            "all_rounds": {
                "get_s": [round(x, 3) for x in get_s],
                "nowrite_s": [round(x, 3) for x in nowrite_s],
                "scrape_s": [round(x, 3) for x in scrape_s],
            },
            "loadavg": [round(x, 2) for x in os.getloadavg()],
        }
        print(json.dumps(out, indent=2))
    finally:
        if child.stdin:
            child.stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

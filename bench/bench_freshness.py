"""Billing freshness: produced → visible in ``billing.revenue_hourly``, at a sustained produce rate.

    .venv/bin/python bench/bench_freshness.py --rate 20000 --seconds 60      # the reference run
    .venv/bin/python bench/bench_freshness.py --rate 5000 --seconds 20 --users 5000   # quick

What runs, all on this machine (a real Kafka-protocol broker from the test harness; by default
tansu keeping its log in memory: like Apache Kafka it answers a fetch with at most what was asked
for, where noida-db (``--broker noida``) returns nearly the whole remaining log, which took 0.7 of
this 2-core machine's cores and took the worker's CPU up 3–4× at 20k events/s, see docs/benchmarks.md):

1. history: a simulated customer base (``--users``) is produced and ingested (``run_pipeline``,
   until drained) and the billing models are built once, so the live phase runs on a lake that
   already holds ``--history-hours`` of usage;
2. live: the pipeline's worker (``python -m shoal ingest billing_usage``) and the model watcher(s)
   (``shoal refresh --watch``; with ``--watchers split`` one for charges (with its month-to-date
   state) → revenue_hourly → run rate and one for the other models) run as child processes, as an
   operator would run them, while this process produces the rest of the simulated stream
   (encoded beforehand) at ``--rate`` events/s for ``--seconds``;
3. probes: every ``--probe-every-s`` one extra usage event (its own region ``probe-<n>``, copied
   from the event before it, for an hour in 2020 so the pollers read small partitions) is
   produced in line with the stream. A poller thread queries, through shoal's SQL engine
   (``shoal.connect``, the engine behind ``shoal sql``), when each probe's row appears in
   ``billing.revenue_hourly`` and — the baseline — in the raw ``billing.usage_events``.
   Delay = first seen − handed to the producer.

Prints one JSON object: delay percentiles (model and raw-table baseline), the CPU seconds of the
worker and of the watcher (the cost of keeping the models fresh) per wall second and per million
events, the watcher's cycle times, how many refreshes took their upstream's changes from the same
cycle's commit (a handoff, ADR 0020), and the wall time of one ``shoal sql`` CLI call (process
start-up, the constant a human or script adds on top).

CPU seconds (process CPU time) hold up on a busy machine far better than the delays, which grow by
whole watcher cycles when the watcher gets less CPU: compare delays only between runs on a quiet
machine.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

import psutil

import shoal

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the test harness starts the broker

from harness.kafka import start_broker  # noqa: E402
from harness.ports import free_port  # noqa: E402
from shoal.config import init_project  # noqa: E402
from shoal.ingest import run_pipeline  # noqa: E402
from shoal.models import ModelRunner  # noqa: E402
from shoal.project import Project  # noqa: E402
from shoal.sources.kafka.producer import produce_events  # noqa: E402
from shoal.usecases.billing import BillingSimulator, models  # noqa: E402
from shoal.usecases.billing.demo_step import PIPELINE  # noqa: E402
from shoal.usecases.billing.events import PROTO_PATH, BillingEvent, encode_events  # noqa: E402

PIPELINE_NAME = "billing_usage"
# The models on the path to billing.revenue_hourly (and the run rate read from it): with
# --watchers split they get a watcher of their own, so they never wait behind the daily rollups.
PROBE_DAY = datetime(2020, 1, 1, tzinfo=UTC)  # probe n is for the hour PROBE_DAY + n h: dates of their own
PROBE_END = "2021-01-01"
FAST_PATH = (
    "billing.charges_hourly",
    "billing.invoice_lines",  # charges_hourly's state: refreshed with it
    "billing.revenue_hourly",
    "billing.run_rate",
)


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def summary(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_s": round(pct(values, 50), 3),
        "p90_s": round(pct(values, 90), 3),
        "p99_s": round(pct(values, 99), 3),
        "max_s": round(max(values), 3),
    }


def make_project(work: Path, bootstrap: str, topic: str, flush_latency_s: float) -> Project:
    d = work / "proj"
    init_project(d, "freshness")
    (d / "protos").mkdir()
    (d / "protos" / PROTO_PATH.name).write_bytes(PROTO_PATH.read_bytes())
    pipeline = PIPELINE.replace("max_latency_s: 5", f"max_latency_s: {flush_latency_s}")
    assert pipeline != PIPELINE, "the demo pipeline's flush policy changed: update this benchmark"
    (d / "pipelines" / f"{PIPELINE_NAME}.yaml").write_text(pipeline)
    cfg = d / "shoal.yaml"
    cfg.write_text(cfg.read_text().replace("models: []", "models: [shoal.usecases.billing.models]"))
    os.environ["KAFKA_BROKERS"] = bootstrap
    os.environ["BILLING_TOPIC"] = topic
    return Project.load(d)


class Probes:
    """Probe events interleaved with the stream, and when each was handed to the producer."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.sent: dict[str, float] = {}

    def interleave(
        self, events: list[BillingEvent], encoded: list[tuple[bytes, bytes]]
    ) -> Iterator[tuple[bytes, bytes]]:
        # the stream is encoded beforehand: the load generator shares the CPU it measures
        for i, (ev, pair) in enumerate(zip(events, encoded, strict=True), start=1):
            yield pair
            if i % self.every == 0:
                n = len(self.sent)
                # a late usage event for an hour of its own in PROBE_DAY: it travels with the stream
                # (same topic, partitions, commits and model cycles) but lands in date partitions
                # the pollers can read cheaply; a poller scanning the live table would compete for
                # the very CPU it measures
                hour = PROBE_DAY + timedelta(hours=n)
                probe = ev._replace(
                    event_id=str(uuid.uuid4()),
                    event_type="EVENT_TYPE_USAGE",
                    region=f"probe-{n}",
                    resource_id=f"probe-{n}",
                    user_id="probe",
                    team_id="probe",
                    currency="USD",
                    occurred_at=hour,
                    billing_hour=hour,
                    billing_month=hour.strftime("%Y-%m"),
                )
                (probe_pair,) = encode_events([probe])
                self.sent[probe.region] = time.monotonic()
                yield probe_pair


class Poller(threading.Thread):
    """Polls one table for probe regions; records when each is first seen."""

    def __init__(self, project: Project, table: str, date_column: str, interval_s: float) -> None:
        super().__init__(daemon=True, name=f"poll {table}")
        self.project = project
        self.table = table
        self.date_column = date_column
        self.interval_s = interval_s
        self.seen: dict[str, float] = {}
        self.queries = 0
        self.query_s: list[float] = []
        self.stop = threading.Event()
        self.errors: queue.Queue[str] = queue.Queue()

    def run(self) -> None:
        con = shoal.connect(self.project.dir)
        handle = self.project.lake.table(self.table)
        queried_at: int | None = None
        try:
            while not self.stop.is_set():
                t0 = time.monotonic()
                # query only when the table has a new version (a read of new Delta log entries):
                # what becomes visible becomes visible at a commit, and an idle poller would
                # otherwise take CPU from what it measures
                version = handle.version
                if version == queried_at:
                    self.stop.wait(max(0.0, self.interval_s - (time.monotonic() - t0)))
                    continue
                queried_at = version
                try:
                    # each query reads the table's current Delta log, as any `shoal sql` query does
                    rows = con.sql(
                        f"SELECT DISTINCT region FROM {self.table} "
                        f"WHERE {self.date_column} < DATE '{PROBE_END}' AND region LIKE 'probe-%'"
                    ).fetchall()
                except shoal.errors.ShoalError as exc:
                    self.errors.put(str(exc).splitlines()[0])
                    con.refresh()
                    rows = []
                now = time.monotonic()
                self.queries += 1
                self.query_s.append(now - t0)
                for (region,) in rows:
                    self.seen.setdefault(region, now)
                self.stop.wait(max(0.0, self.interval_s - (now - t0)))
        finally:
            con.close()


def scrape_refresh(port: int) -> dict[str, float]:
    """The worker's refresh cycles so far, from its Prometheus /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        for key in ("count", "sum"):
            if line.startswith(f"shoal_ingest_refresh_seconds_{key}"):
                out[key] = float(line.rsplit(" ", 1)[1])
    if out.get("count"):
        out["mean_s"] = round(out["sum"] / out["count"], 3)
    return out


def cpu_s(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


def by_tenth(values: list[float]) -> list[float]:
    """The median of each tenth of ``values`` in order (fewer parts with fewer than 10 values)."""
    parts = min(10, len(values))
    return [
        round(statistics.median(values[len(values) * i // parts : len(values) * (i + 1) // parts]), 3)
        for i in range(parts)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=20_000, help="produce rate of the live phase (events/s)")
    ap.add_argument("--seconds", type=float, default=60, help="length of the live phase")
    ap.add_argument("--users", type=int, default=20_000, help="simulated customer base")
    ap.add_argument("--history-hours", type=int, default=24, help="simulated hours ingested before")
    ap.add_argument("--probe-every-s", type=float, default=0.5)
    ap.add_argument("--poll-interval-s", type=float, default=0.25, help="resolution of the delays")
    ap.add_argument("--flush-latency-s", type=float, default=1.0, help="the pipeline's max_latency_s")
    ap.add_argument("--watch-interval-s", type=float, default=0.2, help="shoal refresh --watch --interval")
    ap.add_argument(
        "--rest-interval-s",
        type=float,
        default=10.0,
        help="with --watchers split: the --interval of the watcher of the other (daily) models",
    )
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument(
        "--watchers",
        choices=["one", "split", "inline"],
        default="split",
        help="one `shoal refresh --watch` for all models, or one for the revenue path, one for the rest, "
        "or (inline) the revenue path refreshed by the ingest worker in its commits (pipeline option "
        "`refresh:`, ADR 0038) and one watcher for the rest",
    )
    ap.add_argument("--broker", choices=["noida", "tansu", "tansu-memory"], default="tansu-memory")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (project and lake)")
    ap.add_argument(
        "--cycles-out", default="", help="write every live cycle's JSON line (and its watcher) to this file"
    )
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="shoal-bench-fresh-"))
    services: list[Any] = []
    children: list[subprocess.Popen[bytes]] = []
    try:
        broker = start_broker(args.broker, work, services)
        topic = broker.create_topic("billing-usage", args.partitions)
        overrides = dict(broker.consumer_overrides)
        project = make_project(work, broker.bootstrap, topic, args.flush_latency_s)

        # ---- history ------------------------------------------------------------------------
        live_events = int(args.rate * args.seconds)
        days = args.history_hours // 24 + 2
        sim = BillingSimulator(7, datetime(2026, 11, 1, tzinfo=UTC), days=days, users=args.users)
        stream = sim.events()
        t0 = time.perf_counter()
        history: list[BillingEvent] = []
        cutoff = sim.start.timestamp() + args.history_hours * 3600
        for ev in stream:
            history.append(ev)
            if ev.billing_hour.timestamp() >= cutoff:
                break
        live = list(islice(stream, live_events))
        if len(live) < live_events:
            raise SystemExit(f"the simulator made only {len(live)} live events: raise --users")
        sim_s = time.perf_counter() - t0
        produce_events(broker.bootstrap, topic, encode_events(history), client_config=broker.client_overrides)
        t0 = time.perf_counter()
        stats = run_pipeline(project, PIPELINE_NAME, until_drained=True, extra_client_config=overrides)
        backfill_ingest_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        with ModelRunner(project.lake, models()) as runner:
            runner.refresh()
        backfill_models_s = time.perf_counter() - t0
        assert stats.committed_rows == len(history)

        # ---- live ---------------------------------------------------------------------------
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        worker_argv = [sys.executable, "-m", "shoal", "ingest", PIPELINE_NAME, "--project", str(project.dir)]
        worker_argv += ["--log-level", "WARNING"]
        for k, v in overrides.items():
            worker_argv += ["--client", f"{k}={v}"]
        worker_metrics = None
        if args.watchers == "inline":
            # the revenue path in the worker's commits (invoice_lines comes with it: the state
            # charges_hourly reads); set after the backfill, so the history phase is the same
            pipeline_file = project.dir / "pipelines" / f"{PIPELINE_NAME}.yaml"
            inline = [m for m in FAST_PATH if m != "billing.invoice_lines"]
            pipeline_file.write_text(pipeline_file.read_text() + f"refresh: [{', '.join(inline)}]\n")
            worker_metrics = free_port()
            worker_argv += ["--metrics-port", str(worker_metrics)]
        worker = subprocess.Popen(worker_argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        children.append(worker)
        groups: list[list[str]] = [[]] if args.watchers == "one" else [list(FAST_PATH), []]
        if args.watchers != "one":
            groups[1] = [m.name for m in models() if m.name not in FAST_PATH]
        watchers: list[subprocess.Popen[bytes]] = []
        cycles: list[dict[str, Any]] = []  # every watcher's cycles, tagged by watcher index
        for i, names in enumerate(groups):
            if args.watchers == "inline" and i == 0:
                continue  # the worker keeps the revenue path fresh
            argv = [sys.executable, "-m", "shoal", "refresh", *names, "--watch", "-p", str(project.dir)]
            interval = args.watch_interval_s if i == 0 else args.rest_interval_s
            argv += ["--interval", str(interval), "--format", "json"]
            w = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            children.append(w)
            watchers.append(w)

            def read_cycles(w: subprocess.Popen[bytes] = w, i: int = i) -> None:
                assert w.stdout is not None
                for line in w.stdout:
                    cycles.append({"t": time.monotonic(), "watcher": i, **json.loads(line)})

            threading.Thread(target=read_cycles, daemon=True).start()
        deadline = time.monotonic() + 120
        # each watcher's first look (every model unchanged) = ready
        while len({c["watcher"] for c in cycles}) < len(watchers):
            if any(w.poll() is not None for w in watchers) or time.monotonic() > deadline:
                raise SystemExit("a model watcher did not start")
            time.sleep(0.05)
        time.sleep(2)  # let the worker join its group and settle

        tables = (("billing.revenue_hourly", "billing_date"), ("billing.usage_events", "event_date"))
        pollers = [Poller(project, t, d, args.poll_interval_s) for t, d in tables]
        for p in pollers:
            p.start()
        pids = {"worker": worker.pid, "broker": broker.pid, "bench (producer, pollers)": os.getpid()}
        first = 1 if args.watchers == "inline" else 0  # watcher indexes as in `groups`
        pids.update({f"watcher{i}": w.pid for i, w in enumerate(watchers, start=first)})
        procs = {k: psutil.Process(pid) for k, pid in pids.items()}
        cpu0 = {k: cpu_s(p) for k, p in procs.items()}
        cycles_before = len(cycles)
        probes = Probes(max(1, int(args.rate * args.probe_every_s)))
        encoded = list(encode_events(live))
        t_live = time.monotonic()
        produced = produce_events(
            broker.bootstrap,
            topic,
            probes.interleave(live, encoded),
            client_config=broker.client_overrides,
            rate_per_s=args.rate * (1 + 1 / probes.every),
        )
        produce_wall = time.monotonic() - t_live
        deadline = time.monotonic() + 120
        while len(pollers[0].seen) < len(probes.sent) and time.monotonic() < deadline:
            time.sleep(0.1)
        live_wall = time.monotonic() - t_live
        cpu1 = {k: cpu_s(p) for k, p in procs.items()}
        inline_refresh = scrape_refresh(worker_metrics) if worker_metrics else None
        for p in pollers:
            p.stop.set()
            p.join(10)
        for child in (worker, *watchers):
            child.send_signal(signal.SIGTERM)
        for child in (worker, *watchers):
            child.wait(60)

        # ---- the CLI view --------------------------------------------------------------------
        t0 = time.perf_counter()
        cli = subprocess.run(
            [sys.executable, "-m", "shoal", "sql", "-p", str(project.dir), "--format", "json",
             "SELECT count(DISTINCT region) AS probes FROM billing.revenue_hourly "
             "WHERE region LIKE 'probe-%'"],
            capture_output=True, text=True, check=True, env=env,
        )  # fmt: skip
        cli_s = time.perf_counter() - t0
        cli_probes = json.loads(cli.stdout)[0]["probes"]

        def delays(p: Poller) -> list[float]:
            return [p.seen[r] - t for r, t in probes.sent.items() if r in p.seen]

        model_delays, raw_delays = delays(pollers[0]), delays(pollers[1])
        live_cycles = [c for c in cycles[cycles_before:] if c["t"] >= t_live]
        cycle_s = [sum(m["seconds"] for m in c["models"]) for c in live_cycles if c["watcher"] == 0]
        rev_s = [
            m["seconds"] for c in live_cycles for m in c["models"] if m["model"] == "billing.revenue_hourly"
        ]
        per_model: dict[str, list[float]] = {}
        folds = 0
        for c in live_cycles:
            for m in c["models"]:
                if m["mode"] == "fold":  # a fold of the model's small files (ADR 0053), not a refresh
                    folds += 1
                elif m["mode"] != "unchanged":
                    per_model.setdefault(m["model"], []).append(m["seconds"])
        # refreshes that took their upstream's changes from its commit in the same cycle (ADR 0020)
        handed_off = {
            k: sum(1 for c in live_cycles for m in c["models"] if m["model"] == k and m.get("handed_off"))
            for k in per_model
        }
        used = {k: cpu1[k] - cpu0[k] for k in cpu0}
        result = {
            "rate_target_ev_s": args.rate,
            "rate_achieved_ev_s": round(produced / produce_wall),
            "live_events": produced,
            "live_wall_s": round(live_wall, 1),
            "users": args.users,
            "history_events": len(history),
            "simulate_s": round(sim_s, 1),
            "backfill": {
                "ingest_s": round(backfill_ingest_s, 1),
                "models_full_s": round(backfill_models_s, 1),
            },
            "probes_sent": len(probes.sent),
            "visible_in_revenue_hourly": summary(model_delays),
            "baseline_visible_in_usage_events": summary(raw_delays),
            "probes_never_seen": len(probes.sent) - len(model_delays),
            "shoal_sql_cli": {"wall_s": round(cli_s, 2), "probes_visible": cli_probes},
            "poll_query_s_median": round(statistics.median(pollers[0].query_s), 3),
            "watchers": args.watchers,
            "watch_interval_s": [args.watch_interval_s, args.rest_interval_s],
            "watcher0": {
                "models": groups[0] or "all",
                "cycles": sum(1 for c in live_cycles if c["watcher"] == 0),
                "cycle_s_median": round(statistics.median(cycle_s), 2) if cycle_s else None,
                "cycle_s_max": round(max(cycle_s), 2) if cycle_s else None,
                "revenue_hourly_s_median": round(statistics.median(rev_s), 2) if rev_s else None,
                # whether cycles grow as the run goes on (each commit adds a file until folded)
                "cycle_s_median_by_tenth": by_tenth(cycle_s),
                "folds": folds,
                "charges_hourly_files_at_end": len(project.lake.table("billing.charges_hourly").files()),
            },
            "watcher1_cycles": sum(1 for c in live_cycles if c["watcher"] == 1),
            # --watchers inline: the worker's refresh cycles (count, seconds in all) since it started
            "worker_refresh": inline_refresh,
            # each model's refresh seconds (cycles where it had something to do)
            "model_s_median": {k: round(statistics.median(v), 3) for k, v in per_model.items()},
            "model_refreshes": {k: len(v) for k, v in per_model.items()},
            "model_refreshes_handed_off": handed_off,
            "cpu_s": {k: round(v, 1) for k, v in used.items()},
            "cores_used": {k: round(v / live_wall, 2) for k, v in used.items()},
            "cpu_s_per_million_events": {k: round(v / produced * 1e6, 1) for k, v in used.items()},
            "poller_errors": sorted({p.errors.get() for p in pollers for _ in range(p.errors.qsize())}),
            "cpus": os.cpu_count(),
            "loadavg_1m": os.getloadavg()[0],
        }
        if args.cycles_out:
            Path(args.cycles_out).write_text("".join(json.dumps(c) + "\n" for c in live_cycles))
        print(json.dumps(result, indent=2))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
        for s in services:
            s.stop()
        if args.keep:
            print(f"kept {work} (the lake: {work / 'proj'})", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

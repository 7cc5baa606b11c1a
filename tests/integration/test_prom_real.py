"""Real components: Debian's node_exporter + Prometheus, shoal's remote_write receiver and scraper.

Prometheus scrapes node_exporter every second (job ``node-prom``) and remote-writes to shoal's
receiver; at the same time shoal's own scraper scrapes the same node_exporter (job
``node-shoal``). Every raw sample Prometheus holds for ``node-prom`` in a window must be in
``metrics.samples`` with exactly the same timestamp (ms) and value, and shoal's own scrapes must
agree with Prometheus's (constant gauges equal, counters monotonic and bracketed in time).
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import httpx
import pyarrow as pa
import pytest
from prom_servers import uvicorn_server

from harness.prometheus import PrometheusTools
from shoal.lake import Lake
from shoal.query import connect_lake
from shoal.sources.prometheus import (
    MetricsWriter,
    ReceiverConfig,
    RoundResult,
    ScrapeConfig,
    Scraper,
    TargetsFile,
    create_app,
)
from shoal.usecases.metrics.receiver import RemoteWriteReceiver

pytestmark = pytest.mark.integration

PROM_JOB = "node-prom"
SHOAL_JOB = "node-shoal"
ROUNDS = 4
ROUND_GAP_MS = 2500
# series the brief singles out; each must be present and match exactly
CHOSEN: list[tuple[str, dict[str, str]]] = [
    ("node_cpu_seconds_total", {"cpu": "0", "mode": "idle"}),
    ("node_memory_MemTotal_bytes", {}),
    ("up", {}),
    ("scrape_duration_seconds", {}),
]
# Prometheus-only synthetic series (shoal's scraper adds up / scrape_duration / samples_scraped)
PROM_ONLY = {"scrape_samples_post_metric_relabeling", "scrape_series_added"}

SeriesKey = tuple[str, frozenset[tuple[str, str]]]
# (ts ms, repr(value)): repr keeps NaN comparable and is exact for every other float
Points = list[tuple[int, str]]


def _key(metric: str, labels: dict[str, str]) -> SeriesKey:
    return metric, frozenset(labels.items())


def _poll(what: str, timeout: float, check: Callable[[], str | None], every: float = 0.5) -> None:
    """Call ``check`` until it returns None (done); fail with its last message after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        msg = check()
        if msg is None:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}: {msg}")
        time.sleep(every)


def prom_raw_samples(base: str, selector: str, hi_ms: int, range_ms: int) -> dict[SeriesKey, Points]:
    """Raw samples of ``selector`` in (hi - range, hi] via an instant query of a range selector."""
    r = httpx.get(
        f"{base}/api/v1/query",
        params={"query": f"{selector}[{range_ms}ms]", "time": f"{hi_ms / 1000:.3f}"},
        timeout=30,
    )
    r.raise_for_status()
    data = r.json()
    assert data["status"] == "success", data
    assert data["data"]["resultType"] == "matrix", data
    out: dict[SeriesKey, Points] = {}
    for s in data["data"]["result"]:
        labels = dict(s["metric"])
        name = labels.pop("__name__")
        out[_key(name, labels)] = [(round(float(t) * 1000), repr(float(v))) for t, v in s["values"]]
    return out


def lake_samples(lake: Lake, job: str) -> dict[SeriesKey, Points]:
    """Every sample in the lake of series with this job, sorted by time."""
    if not lake.exists("metrics.samples"):
        return {}
    series = lake.table("metrics.series").to_arrow().to_pylist()
    keys: dict[int, SeriesKey] = {}
    for row in series:
        labels = dict(row["labels"])
        if labels.get("job") != job:
            continue
        assert row["series_id"] not in keys, f"series_id {row['series_id']} twice in metrics.series"
        keys[row["series_id"]] = _key(row["metric"], labels)
    samples = lake.table("metrics.samples").to_arrow(columns=["series_id", "ts", "value"])
    ids = samples["series_id"].to_pylist()
    # Delta stores timestamps in microseconds: back to ms before comparing with Prometheus
    stamps = samples["ts"].cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64()).to_pylist()
    values = samples["value"].to_pylist()
    out: dict[SeriesKey, Points] = defaultdict(list)
    for sid, ts, v in zip(ids, stamps, values, strict=True):
        k = keys.get(sid)
        if k is not None:
            out[k].append((ts, repr(v)))
    for pts in out.values():
        pts.sort()
    return dict(out)


async def _shoal_rounds(scraper: Scraper, first_ms: int) -> list[RoundResult]:
    results = []
    for i in range(ROUNDS):
        round_ms = first_ms + i * ROUND_GAP_MS
        await asyncio.sleep(max(0.0, round_ms / 1000 - time.time()))
        results.append(await scraper.scrape_round(round_ms))
    return results


def test_prometheus_remote_write_and_shoal_scraper_agree(
    prometheus_tools: PrometheusTools, tmp_path: Path
) -> None:
    exporter_url = prometheus_tools.start_node_exporter()
    address = exporter_url.removeprefix("http://").removesuffix("/metrics")
    lake = Lake(str(tmp_path / "lake"))
    # one writer for both paths, like one shoal process: it serialises the commits
    writer = MetricsWriter(lake)
    receiver = RemoteWriteReceiver(writer, ReceiverConfig(max_batch_delay_s=0.2))
    with uvicorn_server(create_app(receiver)) as port:
        config = f"""
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: {PROM_JOB}
    static_configs:
      - targets: ["{address}"]
remote_write:
  - url: http://127.0.0.1:{port}/api/v1/write
    queue_config:
      batch_send_deadline: 1s
"""
        started_ms = int(time.time() * 1000)
        prom = prometheus_tools.start_prometheus(config)

        inst = {"job": PROM_JOB, "instance": address}
        selector = f'{{job="{PROM_JOB}"}}'

        def prometheus_scraped() -> str | None:
            now_ms = int(time.time() * 1000)
            got = prom_raw_samples(prom, selector, now_ms, now_ms - started_ms + 5000)
            return None if _key("up", inst) in got else "no `up` sample yet"

        # Prometheus applies discovered targets only every 5 s: wait for its first scrape, so
        # shoal's rounds below are bracketed by Prometheus samples
        _poll("Prometheus's first scrape of node_exporter", 30, prometheus_scraped)

        # shoal's own scraper on the same exporter, while Prometheus scrapes and forwards
        targets_file = tmp_path / "targets.yml"
        targets_file.write_text(f'- targets: ["{address}"]\n  labels: {{job: {SHOAL_JOB}}}\n')
        scraper = Scraper(
            TargetsFile(targets_file, default_job=SHOAL_JOB),
            writer,
            ScrapeConfig(job=SHOAL_JOB, interval_s=ROUND_GAP_MS / 1000, jitter_s=0, timeout_s=10),
        )
        first_ms = int(time.time() * 1000) + 500
        rounds = asyncio.run(_shoal_rounds(scraper, first_ms))

        # Prometheus's raw samples up to `hi` (a couple of seconds back: scrapes up to it committed)
        hi_ms = int(time.time() * 1000) - 2000
        range_ms = hi_ms - started_ms + 5000
        expected = prom_raw_samples(prom, selector, hi_ms, range_ms)
        assert len(expected) > 100, f"only {len(expected)} node-prom series in Prometheus"
        for metric, labels in CHOSEN:
            n = len(expected.get(_key(metric, {**labels, **inst}), []))
            assert n >= 3, f"Prometheus has {n} samples of {metric}{labels} up to hi"

        # A shard sends a series' samples in order and waits for each 2xx (given only after the
        # commit), so once a series' last sample <= hi is in the lake, all earlier ones are too.
        landed: dict[SeriesKey, Points] = {}

        def lake_caught_up() -> str | None:
            nonlocal landed
            landed = lake_samples(lake, PROM_JOB)
            behind = [k for k, pts in expected.items() if not landed.get(k) or landed[k][-1][0] < pts[-1][0]]
            return (
                f"{len(behind)} of {len(expected)} series behind, e.g. {sorted(behind)[:3]}"
                if behind
                else None
            )

        _poll("remote_write to deliver every sample <= hi", 40, lake_caught_up, every=1.0)
        # a scrape stamped <= hi but committed late (loaded machine) would show up now
        again = prom_raw_samples(prom, selector, hi_ms, range_ms)
        if again != expected:
            expected = again
            _poll("remote_write to deliver late samples <= hi", 20, lake_caught_up, every=1.0)

    lo_ms = hi_ms - range_ms
    window = {k: [p for p in pts if lo_ms < p[0] <= hi_ms] for k, pts in landed.items()}
    window = {k: pts for k, pts in window.items() if pts}
    for metric, labels in CHOSEN:
        k = _key(metric, {**labels, **inst})
        assert window.get(k) == expected[k], (
            f"{metric}{labels}: lake {window.get(k)} != prometheus {expected[k]}"
        )
    # ... and every other series of the job, sample for sample
    assert window.keys() == expected.keys(), (
        f"series only in lake: {sorted(window.keys() - expected.keys())[:5]}, "
        f"only in Prometheus: {sorted(expected.keys() - window.keys())[:5]}"
    )
    diff = [k for k in expected if window[k] != expected[k]]
    assert not diff, (
        f"{len(diff)} series differ, e.g. {diff[0]}: lake {window[diff[0]]} != {expected[diff[0]]}"
    )
    n_samples = sum(len(p) for p in expected.values())
    assert n_samples >= 3 * len(expected)

    check_sql_view(lake, address, expected, lo_ms, hi_ms)
    check_shoal_scraper(lake, rounds, address, expected)


def check_sql_view(lake: Lake, address: str, prom: dict[SeriesKey, Points], lo_ms: int, hi_ms: int) -> None:
    """The same samples through shoal's SQL layer (series labels are a MAP)."""
    inst = {"job": PROM_JOB, "instance": address}
    with connect_lake(lake) as con:
        for metric, labels in CHOSEN:
            where = " AND ".join(f"r.labels['{k}'] = ?" for k in labels)
            rows = con.query_arrow(
                "SELECT epoch_ms(s.ts) AS ts, s.value FROM metrics.samples s "
                "JOIN metrics.series r USING (series_id) "
                "WHERE r.metric = ? AND r.labels['job'] = ? AND r.labels['instance'] = ? "
                f"{'AND ' + where if where else ''} "
                "AND epoch_ms(s.ts) > ? AND epoch_ms(s.ts) <= ? ORDER BY s.ts",
                [metric, PROM_JOB, address, *labels.values(), lo_ms, hi_ms],
            ).to_pylist()
            got = [(r["ts"], repr(r["value"])) for r in rows]
            assert got == prom[_key(metric, {**labels, **inst})], f"SQL view of {metric}{labels}"


def check_shoal_scraper(
    lake: Lake, rounds: list[RoundResult], address: str, prom: dict[SeriesKey, Points]
) -> None:
    """shoal's own scrapes of the same exporter agree with Prometheus's."""
    assert [r.up for r in rounds] == [1] * ROUNDS, [r.summary() for r in rounds]
    assert lake.table("metrics.samples").app_version(f"scrape:{SHOAL_JOB}") == rounds[-1].round_ms

    health = lake.table("metrics.targets").to_arrow(filter=f"job = '{SHOAL_JOB}'").to_pylist()
    assert len(health) == ROUNDS
    for row in health:
        assert (row["instance"], row["up"], row["error"]) == (address, True, None), row
        assert row["url"] == f"http://{address}/metrics"
        assert row["samples"] > 100
    scraped_at = sorted(int(row["scraped_at"].timestamp() * 1000) for row in health)
    assert scraped_at == [r.targets[0].scraped_ms for r in rounds]

    mine = lake_samples(lake, SHOAL_JOB)

    def strip(k: SeriesKey) -> SeriesKey:
        return k[0], frozenset((n, v) for n, v in k[1] if n != "job")

    # same exporter, same metric names (bar Prometheus's extra synthetic series)
    assert {k[0] for k in mine} == {k[0] for k in prom} - PROM_ONLY
    prom_by = {strip(k): v for k, v in prom.items()}

    # a constant gauge: identical values from both scrapers
    mem = _key("node_memory_MemTotal_bytes", {"instance": address})
    mem_values = {v for _, v in prom_by[mem]}
    assert len(mem_values) == 1
    mine_mem = mine[_key("node_memory_MemTotal_bytes", {"instance": address, "job": SHOAL_JOB})]
    assert len(mine_mem) == ROUNDS
    assert {v for _, v in mine_mem} == mem_values

    # counters that move: monotonic over the rounds, stamped at the scrape times, and bracketed
    # by Prometheus's samples taken before / after shoal's read (Prometheus reads within 1 s)
    durations = {r.targets[0].scraped_ms: r.targets[0].duration_s for r in rounds}
    compared = 0
    cpu = [k for k in mine if k[0] == "node_cpu_seconds_total"]
    assert cpu, "no node_cpu_seconds_total scraped by shoal"
    for k in cpu:
        pts = mine[k]
        assert [t for t, _ in pts] == sorted(durations), k
        vals = [float(v) for _, v in pts]
        assert vals == sorted(vals), f"{k} not monotonic: {vals}"
        ref = prom_by[strip(k)]
        stamps = [t for t, _ in ref]
        for t, v in zip((t for t, _ in pts), vals, strict=True):
            before = bisect.bisect_right(stamps, t - 1000) - 1
            if before >= 0:
                assert float(ref[before][1]) <= v, (k, t, v, ref[before])
                compared += 1
            after = bisect.bisect_left(stamps, t + int(durations[t] * 1000) + 1)
            if after < len(stamps):
                assert v <= float(ref[after][1]), (k, t, v, ref[after])
                compared += 1
    assert compared >= len(cpu) * ROUNDS, f"only {compared} bracket checks for {len(cpu)} cpu series"
    up = mine[_key("up", {"instance": address, "job": SHOAL_JOB})]
    assert [v for _, v in up] == ["1.0"] * ROUNDS

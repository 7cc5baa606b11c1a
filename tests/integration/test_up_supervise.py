"""``shoal up`` supervising real processes against a real broker: two workers of a pipeline and a
model watcher; a worker killed with SIGKILL comes back (crash recorded, backoff) and every event
lands once; ``--reload`` after adding a pipeline starts it and leaves the first one running (no
duplicate); a maintenance job runs on its every-second schedule and ``shoal status --format json``
shows the failing job first; SIGTERM stops every child with everything committed."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

import httpx
import pyarrow.compute as pc
import pytest
import yaml
from click.testing import Result
from deltalake import DeltaTable

from harness.cli import invoke_shoal
from harness.ingest import write_pipeline_project
from harness.ports import free_port
from harness.processes import ManagedProcess
from shoal.config import init_project
from shoal.project import Project
from shoal.serve.state import admin_token
from shoal.sources.kafka.producer import produce_events
from shoal.status.runstate import pid_alive
from shoal.usecases.support import MESSAGE, PROTO_FILE
from shoal.usecases.support.simulator import SupportSimulator

pytestmark = pytest.mark.integration

DECODE = {"format": "protobuf", "proto_file": str(PROTO_FILE), "message": MESSAGE}
MODEL = {
    "name": "support.events_by_partition",
    "sql": "select _kafka_partition as part, count(*) as n from support.ticket_events group by 1",
    "unique_key": ["part"],
    "upstream": ["support.ticket_events"],
}


def _events(seed: int, n: int) -> list[tuple[bytes, bytes]]:
    sim = SupportSimulator(seed, datetime(2026, 3, 1), days=3, tickets_per_day=1500)
    out = list(islice(sim.encoded(), n))
    assert len(out) == n
    return out


def _wait(cond: Callable[[], Any], timeout: float, what: str, log: Path) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:]) if log.exists() else ""
            raise AssertionError(f"timed out waiting for {what}\n{tail}")
        time.sleep(0.2)


def _count(project: Project, table: str) -> int:
    return project.lake.table(table).count() if project.lake.exists(table) else 0


def _state(run: Path) -> dict[str, Any]:
    try:
        return json.loads((run / "state.json").read_text())
    except (OSError, ValueError):
        return {}


def _child(run: Path, name: str) -> dict[str, Any]:
    return next((c for c in _state(run).get("children", []) if c["name"] == name), {})


def _events_of(run: Path, kind: str) -> list[dict[str, Any]]:
    try:
        lines = (run / "events.jsonl").read_text().splitlines()
    except OSError:
        return []
    return [e for e in map(json.loads, lines) if e.get("event") == kind]


def _shoal(*args: str) -> Result:
    """The CLI in this process (spares an interpreter start on a busy machine)."""
    return invoke_shoal(list(args))


def _assert_exactly_once(project: Project, table: str, n: int) -> None:
    data = project.lake.table(table).to_arrow(columns=["event_id", "_kafka_partition", "_kafka_offset"])
    assert data.num_rows == n
    assert len(pc.unique(data.column("event_id"))) == n
    assert data.group_by(["_kafka_partition", "_kafka_offset"]).aggregate([]).num_rows == n


def test_up_restarts_reloads_and_stops_without_loss(kafka_broker, kafka_topic, tmp_path: Path) -> None:
    topic, topic2 = kafka_topic(partitions=2), kafka_topic(partitions=1)
    first, second, third, other = 2000, 1500, 1000, 800
    events = _events(31, first + second + third)
    produce_events(kafka_broker.bootstrap, topic, events[:first])
    client = dict(kafka_broker.consumer_overrides)  # noida-db ignores fetch limits (test server quirk)
    project = write_pipeline_project(
        tmp_path / "proj", name="tickets", topic=topic, brokers=kafka_broker.bootstrap, decode=DECODE,
        client=client, flush={"max_rows": 500, "max_latency_s": 0.5}, consume_batch=500,
    )  # fmt: skip
    (project.dir / "models.yaml").write_text(yaml.safe_dump({"models": [MODEL]}))
    settings = yaml.safe_load((project.dir / "shoal.yaml").read_text())
    settings["models"] = ["models.yaml"]
    settings["up"] = {
        "workers": 2,
        "watchers": {"models": {"interval_s": 0.5}},
        "maintenance": {
            "ckpt": {"action": "checkpoint", "schedule": "* * * * * *", "tables": ["support.ticket_events"]},
            "broken": {"action": "vacuum", "schedule": "*/5 * * * * *", "tables": ["nope.missing"]},
        },
        "backoff": {"base_s": 0.5, "max_delay_s": 5},
        "stop_timeout_s": 20,
    }
    (project.dir / "shoal.yaml").write_text(yaml.safe_dump(settings))
    table, table2 = "support.ticket_events", "support.other_events"
    run = project.dir / ".shoal" / "run"
    log = tmp_path / "up.log"

    dry = _shoal("up", "--dry-run", "--format", "json", "--project", str(project.dir))
    assert dry.exit_code == 0, dry.output
    plan = json.loads(dry.output.splitlines()[0])
    assert [c["name"] for c in plan["children"]] == ["ingest-tickets-0", "ingest-tickets-1", "watch-models"]
    assert not run.exists() or not (run / "up.pid").exists(), "a dry run starts nothing"

    argv = [sys.executable, "-m", "shoal", "up", "--format", "json", "--project", str(project.dir)]
    up = ManagedProcess("shoal-up", argv, log, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    up.start()
    pids: set[int] = set()
    try:
        _wait(lambda: _count(project, table) == first, 90, "the first events", log)
        victim = _wait(lambda: _child(run, "ingest-tickets-0").get("pid"), 10, "the worker's pid", log)
        survivor = _child(run, "ingest-tickets-1")["pid"]
        pids |= {victim, survivor}

        # kill -9 one worker while more events arrive: it comes back, nothing lost or doubled
        os.kill(victim, signal.SIGKILL)
        produce_events(kafka_broker.bootstrap, topic, events[first : first + second])
        crash = _wait(lambda: _events_of(run, "crash"), 20, "the crash record", log)[0]
        assert crash["child"] == "ingest-tickets-0"
        assert crash["pid"] == victim
        assert crash["signal"] == "SIGKILL"
        assert crash["restart_in_s"] == pytest.approx(0.5)
        assert crash["consecutive_crashes"] == 1

        def restarted() -> dict[str, Any] | None:
            c = _child(run, "ingest-tickets-0")
            return c if c.get("state") == "running" and c.get("restarts") == 1 else None

        back = _wait(restarted, 20, "the restart", log)
        assert back["pid"] != victim
        pids.add(back["pid"])
        _wait(lambda: _count(project, table) == first + second, 90, "the events after the kill", log)

        # add a pipeline and reload: it starts; the first pipeline's workers keep running
        write_pipeline_project(
            project.dir, name="others", topic=topic2, brokers=kafka_broker.bootstrap, decode=DECODE,
            # the last 300 events stay buffered until SIGTERM makes the worker flush them
            table=table2, client=client, flush={"max_rows": 500, "max_latency_s": 3600},
        )  # fmt: skip
        produce_events(kafka_broker.bootstrap, topic2, _events(77, other))
        # one worker for it (a second member joining later would rebalance and flush early)
        settings["up"]["pipelines"] = {"others": 1}
        (project.dir / "shoal.yaml").write_text(yaml.safe_dump(settings))
        reload = _shoal("up", "--reload", "--project", str(project.dir))
        assert reload.exit_code == 0, reload.output
        done = _wait(lambda: _events_of(run, "reloaded"), 30, "the reload", log)[0]
        assert done["added"] == ["ingest-others-0"]
        assert done["removed"] == []
        assert done["restarted"] == []
        assert _child(run, "ingest-tickets-1")["pid"] == survivor
        produce_events(kafka_broker.bootstrap, topic, events[first + second :])
        _wait(lambda: _count(project, table2) == 500, 90, "the added pipeline's first flush", log)
        _wait(lambda: _count(project, table) == len(events), 90, "the events after the reload", log)
        pids |= {c["pid"] for c in _state(run)["children"] if c.get("pid")}

        # maintenance ran on its schedule; status shows the failing job first
        _wait(lambda: any(e["job"] == "ckpt" and e["outcome"] == "ok" for e in _events_of(run, "job")),
              20, "a checkpoint run", log)  # fmt: skip
        _wait(lambda: any(e["job"] == "broken" for e in _events_of(run, "job")), 20, "the broken job", log)
        _wait(lambda: _count(project, MODEL["name"]) == 2, 30, "the watcher's model", log)
        status = _shoal("status", "--format", "json", "--project", str(project.dir))
        assert status.exit_code == 0, status.output
        report = json.loads(status.output)
        assert report["problems"][0]["section"] == "jobs"
        assert report["problems"][0]["name"] == "broken"
        assert "nope.missing" in report["problems"][0]["why"]
        assert report["jobs"][0]["name"] == "broken"
        assert report["jobs"][0]["status"] == "failing"
        ckpt = next(j for j in report["jobs"] if j["name"] == "ckpt")
        assert ckpt["status"] == "ok"
        assert ckpt["last_run"]["outcome"] == "ok"
        tables = {t["name"]: t for t in report["tables"]}
        assert tables[table]["last_checkpoint"] is not None
        pipes = {p["name"]: p for p in report["pipelines"]}
        assert pipes["tickets"]["workers"]["running"] == 2
        assert pipes["tickets"]["lag"] == 0
        assert {p["partition"] for p in pipes["tickets"]["partitions"]} == {0, 1}
        restarted = next(c for c in report["children"] if c["name"] == "ingest-tickets-0")
        assert restarted["restarts"] == 1
        assert restarted["status"] == "warning"
        assert report["supervisor"]["running"] is True
        assert _count(project, table2) == 500, "the rest is buffered, not committed"
    finally:
        # SIGTERM: every child stops gracefully (flushing what it buffered), the supervisor exits 0
        up.send_signal(signal.SIGTERM)
        assert up.proc is not None
        code = up.proc.wait(60)
        up.stop()
    assert code == 0, log.read_text()[-3000:]
    assert pids
    assert not [p for p in pids if pid_alive(p)], "children outlived shoal up"
    assert not (run / "up.pid").exists()
    printed = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    stops = {e["child"]: e for e in printed if e["event"] == "stopped"}
    workers = {"ingest-tickets-0", "ingest-tickets-1", "ingest-others-0", "watch-models"}
    assert workers <= set(stops)
    assert not [n for n in workers if stops[n]["killed"] or stops[n]["exit_code"] != 0], stops
    stopped = {e["child"] for e in _events_of(run, "crash")}
    assert stopped == {"ingest-tickets-0"}, "only the killed worker crashed"
    _assert_exactly_once(project, table, len(events))
    _assert_exactly_once(project, table2, other)
    flushes = [
        json.loads(line)
        for path in run.glob("logs/ingest-others-*.log")
        for line in path.read_text().splitlines()
        if line.startswith("{") and '"flushed"' in line
    ]
    assert [f["rows"] for f in flushes if f["reason"] == "shutdown"] == [other - 500]
    counts = project.lake.table(MODEL["name"]).to_arrow().to_pylist()
    assert sum(r["n"] for r in counts) <= len(events)


def test_serve_flushes_its_query_log_on_sigterm(tmp_path: Path) -> None:
    """`shoal serve` as a child of `shoal up` is stopped with SIGTERM: it exits 0 after flushing the
    query log (uvicorn re-raises the signal after its shutdown; that must not kill the process
    before the flush)."""

    init_project(tmp_path / "proj")
    project = Project.load(tmp_path / "proj")
    token = admin_token(project)
    port = free_port()
    log = tmp_path / "serve.log"
    argv = [sys.executable, "-m", "shoal", "serve", "--no-pg", "--port", str(port), "-p", str(project.dir)]
    server = ManagedProcess("shoal-serve", argv, log, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    server.start()
    try:

        def answers() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        _wait(answers, 30, "the server", log)
        got = httpx.get(
            f"http://127.0.0.1:{port}/v1/query",
            params={"sql": "select 42 as answer"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert got.json()["rows"] == [[42]]
        server.send_signal(signal.SIGTERM)  # within the log's 5 s flush period
        assert server.proc is not None
        assert server.proc.wait(30) == 0, log.read_text()[-2000:]
    finally:
        server.stop()
    logged = DeltaTable(str(project.dir / "lake" / "_shoal" / "query_log")).to_pyarrow_table(
        columns=["query"]
    )
    assert logged.column("query").to_pylist() == ["select 42 as answer"]


def test_sync_stops_on_sigterm_while_retrying(tmp_path: Path) -> None:
    """`shoal sync --follow` against a database that is down backs off between retries (~30 s in
    all); SIGTERM from `shoal up` cuts the wait short instead of waiting the retries out."""
    init_project(tmp_path / "proj")
    settings = yaml.safe_load((tmp_path / "proj" / "shoal.yaml").read_text())
    port = free_port()  # nothing listens there
    settings["databases"] = {"crm": {"kind": "mysql", "port": port, "database": "crm", "user": "ro"}}
    (tmp_path / "proj" / "shoal.yaml").write_text(yaml.safe_dump(settings))
    log = tmp_path / "sync.log"
    argv = [sys.executable, "-m", "shoal", "sync", "crm", "--follow", "-p", str(tmp_path / "proj")]
    sync = ManagedProcess("shoal-sync", argv, log, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    sync.start()
    try:
        _wait(lambda: "retrying" in log.read_text(errors="replace"), 60, "a retry", log)
        sent = time.monotonic()
        sync.send_signal(signal.SIGTERM)
        assert sync.proc is not None
        code = sync.proc.wait(30)
        took = time.monotonic() - sent
    finally:
        sync.stop()
    assert took < 10, f"stopped {took:.1f} s after SIGTERM"
    assert code == 1  # the last error, one line: it never got to sync anything
    assert "Can't connect" in log.read_text()

"""shoal up's pure logic (schedules, backoff, the plan) and its supervisor loop over real, trivial
child processes (``python -c 'sleep'``): crash → backoff → restart, reload diffs, graceful stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.cli import invoke_shoal
from shoal.config import init_project
from shoal.config.settings import Settings, UpBackoff
from shoal.errors import ConfigError, NotFoundError
from shoal.project import Project
from shoal.status.runstate import pid_alive, run_dir
from shoal.supervise import ChildSpec, Supervisor, build_plan
from shoal.supervise.backoff import consecutive_crashes, restart_delay
from shoal.supervise.schedule import Schedule


def _ts(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


# -- schedules ------------------------------------------------------------------------------------------
def test_schedule_five_fields_nicknames_and_seconds_first() -> None:
    t = _ts(2026, 5, 1, 10, 7, 30)
    assert Schedule("0 3 * * *").next_after(t) == _ts(2026, 5, 2, 3, 0, 0)
    assert Schedule("*/15 * * * *").next_after(t) == _ts(2026, 5, 1, 10, 15, 0)
    assert Schedule("@hourly").next_after(t) == _ts(2026, 5, 1, 11, 0, 0)
    # six fields: seconds come first
    assert Schedule("*/10 * * * * *").next_after(t) == _ts(2026, 5, 1, 10, 7, 40)
    assert Schedule("* * * * * *").next_after(t) == t + 1
    # strictly after: a run at its due time does not fire again at once
    assert Schedule("0 3 * * *").next_after(_ts(2026, 5, 2, 3, 0, 0)) == _ts(2026, 5, 3, 3, 0, 0)


def test_bad_schedule_is_one_line_naming_the_field() -> None:
    with pytest.raises(ConfigError, match="not a cron expression"):
        Schedule("every day")
    with pytest.raises(ValueError, match=r"up\.maintenance\.nightly\.schedule"):
        Settings(up={"maintenance": {"nightly": {"action": "vacuum", "schedule": "61 * * * *"}}})


# -- backoff --------------------------------------------------------------------------------------------
def test_restart_delay_doubles_and_is_capped() -> None:
    b = UpBackoff(base_s=0.5, max_delay_s=5, reset_after_s=30)
    assert [restart_delay(b, n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_crash_count_resets_after_a_healthy_run() -> None:
    b = UpBackoff(base_s=1, max_delay_s=60, reset_after_s=30)
    assert consecutive_crashes(0, 0.2, b) == 1
    assert consecutive_crashes(3, 0.2, b) == 4
    assert consecutive_crashes(3, 31.0, b) == 1


# -- the plan ---------------------------------------------------------------------------------------------
def _project(tmp_path: Path, up: dict[str, Any] | None = None, **extra: Any) -> Project:
    init_project(tmp_path, exist_ok=True)
    doc = yaml.safe_load((tmp_path / "shoal.yaml").read_text())
    doc.update(extra)
    if up is not None:
        doc["up"] = up
    (tmp_path / "shoal.yaml").write_text(yaml.safe_dump(doc))
    for name in ("orders", "clicks"):
        (tmp_path / "pipelines" / f"{name}.yaml").write_text(
            yaml.safe_dump(
                {
                    "topics": [name],
                    "brokers": "b:9092",
                    "decode": {"format": "json", "infer": True},
                    "table": f"x.{name}",
                }
            )
        )
    return Project.load(tmp_path)


def test_plan_follows_what_the_project_declares(tmp_path: Path) -> None:
    project = _project(
        tmp_path,
        up={
            "workers": 2,
            "pipelines": {"clicks": 1},
            "serve": True,
            "scrape": {"fleet": {"targets_file": "t.yaml"}},
        },
        models=["shoal.usecases.support.models"],
        databases={"crm": {"kind": "mysql", "database": "crm", "user": "ro"}},
    )
    plan = build_plan(project)
    names = [c.name for c in plan.children]
    workers = ["ingest-clicks-0", "ingest-orders-0", "ingest-orders-1"]
    assert names == [*workers, "sync-crm", "scrape-fleet", "watch-models", "serve"]
    worker = plan.children[1]
    assert worker.argv[1:5] == ("-m", "shoal", "ingest", "orders")
    instance = f"group.instance.id=shoal-{socket.gethostname()}-ingest-orders-0"
    assert instance in "".join(worker.argv).replace(tmp_path.name, "shoal")
    assert plan.children[3].argv[3:6] == ("sync", "crm", "--follow")
    assert [j.name for j in plan.jobs] == ["compact", "checkpoint", "vacuum"]  # the defaults
    assert build_plan(_project(tmp_path, up={"maintenance": {}})).jobs == ()


def test_plan_runs_the_log_receiver_consumer_and_indexer_when_declared(tmp_path: Path) -> None:
    assert not [c for c in build_plan(_project(tmp_path, up={})).children if c.kind == "logs"]
    logs = {"receive": True, "port": 9311, "topics": ["app-logs"], "brokers": "127.0.0.1:9092"}
    plan = build_plan(_project(tmp_path, up={"logs": logs}))
    children = {c.name: c for c in plan.children if c.kind == "logs"}
    assert list(children) == ["logs-receive", "logs-consume", "logs-index"]
    assert children["logs-receive"].argv[3:9] == ("logs", "receive", "--host", "127.0.0.1", "--port", "9311")
    consume = children["logs-consume"].argv
    assert consume[3:5] == ("logs", "consume")
    assert "--topic" in consume
    assert consume[consume.index("--topic") + 1] == "app-logs"
    assert children["logs-index"].argv[3:6] == ("logs", "index", "--follow")
    with pytest.raises(ConfigError, match=r"up\.logs: topics given without brokers"):
        build_plan(_project(tmp_path, up={"logs": {"topics": ["app-logs"]}}))


def test_models_a_pipeline_refreshes_in_its_commits_get_no_watcher(tmp_path: Path) -> None:
    def refreshing(up: dict[str, Any]) -> Project:
        _project(tmp_path, up=up, models=["shoal.usecases.billing.models"])
        pipeline = tmp_path / "pipelines" / "orders.yaml"
        doc = yaml.safe_load(pipeline.read_text())
        doc.update(table="billing.usage_events", refresh=["billing.charges_hourly", "billing.revenue_hourly"])
        pipeline.write_text(yaml.safe_dump(doc))
        return Project.load(tmp_path)

    plan = build_plan(refreshing({}))
    (watcher,) = [c for c in plan.children if c.kind == "watcher"]
    watched = set(watcher.argv[watcher.argv.index("refresh") + 1 : watcher.argv.index("--watch")])
    # the rest of the billing models, without the worker's models and the state they read
    assert "billing.revenue_daily" in watched
    assert watched.isdisjoint({"billing.charges_hourly", "billing.revenue_hourly", "billing.invoice_lines"})
    project = refreshing({"watchers": {"fast": {"models": ["billing.charges_hourly"]}}})
    with pytest.raises(
        ConfigError, match=r"up\.watchers\.fast: billing\.charges_hourly, billing\.invoice_lines already"
    ):
        build_plan(project)


def test_plan_refuses_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"up\.pipelines: no pipeline file for nope"):
        build_plan(_project(tmp_path, up={"pipelines": {"nope": 1}}))
    with pytest.raises(ConfigError, match=r"up\.syncs: no database warehouse"):
        build_plan(_project(tmp_path, up={"syncs": ["warehouse"]}))


def test_plan_refuses_a_broken_pipeline_file_or_unknown_model(tmp_path: Path) -> None:
    project = _project(tmp_path, up={"watchers": {"w": {"models": ["support.nope"]}}})
    with pytest.raises(NotFoundError, match=r"no model named support\.nope"):
        build_plan(project)
    project = _project(tmp_path, up={})
    (tmp_path / "pipelines" / "orders.yaml").write_text("topics: [orders]\n")
    with pytest.raises(ConfigError, match=r"orders\.yaml: .*brokers"):
        build_plan(project)


def test_dry_run_prints_the_plan_and_starts_nothing(tmp_path: Path) -> None:
    project = _project(tmp_path, up={"maintenance": {"c": {"action": "compact", "schedule": "@daily"}}})
    result = invoke_shoal(["up", "--dry-run", "--format", "json", "--project", str(project.dir)])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert [c["name"] for c in plan["children"]] == ["ingest-clicks-0", "ingest-orders-0"]
    assert plan["jobs"][0]["schedule"] == "@daily"
    assert not (tmp_path / ".shoal" / "run" / "up.pid").exists()
    result = invoke_shoal(["up", "--reload", "--project", str(project.dir)])
    assert result.exit_code == 1
    assert "no shoal up is running" in result.output


# -- the supervisor loop over real processes ------------------------------------------------------------
SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]


def _sleepers(project: Project) -> list[ChildSpec]:
    """Children from children.json: {name: tag}; the tag goes in the argv (a changed tag is a change)."""
    wanted = json.loads((project.dir / "children.json").read_text())
    return [ChildSpec(name, (*SLEEPER, tag), kind="test") for name, tag in wanted.items()]


def _until(cond: Callable[[], Any], timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := cond()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return got


def test_supervisor_restarts_reloads_and_stops(tmp_path: Path) -> None:
    project = _project(tmp_path, up={"maintenance": {}, "backoff": {"base_s": 0.2}, "stop_timeout_s": 5})
    (tmp_path / "children.json").write_text(json.dumps({"a": "1", "b": "1", "c": "1"}))
    rd = run_dir(project.dir, project.settings.up.run_dir)
    events: list[dict[str, Any]] = []
    sup = Supervisor(project, on_event=events.append, builders=(_sleepers,))
    seen: dict[str, Any] = {}

    def pids() -> dict[str, int]:
        state = rd.read_state() or {}
        return {c["name"]: c["pid"] for c in state.get("children", []) if c["state"] == "running"}

    def drive() -> None:
        try:
            first = _until(lambda: len(p := pids()) == 3 and p)
            seen["first"] = first
            os.kill(first["a"], signal.SIGKILL)
            _until(lambda: pids().get("a") not in (None, first["a"]))
            (tmp_path / "children.json").write_text("{")  # broken: the reload changes nothing
            sup.request_reload()
            seen["failed"] = _until(lambda: next((e for e in events if e["event"] == "reload_failed"), None))
            seen["kept"] = pids()
            (tmp_path / "children.json").write_text(json.dumps({"a": "1", "b": "2", "d": "1"}))
            sup.request_reload()
            seen["reloaded"] = _until(lambda: next((e for e in events if e["event"] == "reloaded"), None))
            seen["after"] = _until(lambda: set(p := pids()) == {"a", "b", "d"} and p)
        finally:
            sup.request_stop()

    thread = threading.Thread(target=drive)
    thread.start()
    assert sup.run() == 0
    thread.join()
    first, after = seen["first"], seen["after"]
    crash = next(e for e in events if e["event"] == "crash")
    assert crash["child"] == "a"
    assert crash["signal"] == "SIGKILL"
    assert crash["restart_in_s"] == pytest.approx(0.2)
    assert seen["failed"]["error"].startswith("up: _sleepers:")
    assert seen["kept"]["b"] == first["b"]
    assert seen["kept"]["c"] == first["c"]
    assert seen["reloaded"]["added"] == ["d"]
    assert seen["reloaded"]["removed"] == ["c"]
    assert seen["reloaded"]["restarted"] == ["b"]
    assert seen["reloaded"]["unchanged"] == ["a"]
    assert after["b"] != first["b"]  # restarted: its argv changed
    assert not pid_alive(first["c"])  # removed
    every = {*first.values(), *after.values()}
    assert not [p for p in every if pid_alive(p)], "a child outlived the supervisor"
    recorded = [e for e in rd.events() if e["event"] == "crash"]
    assert [(e["child"], e["pid"]) for e in recorded] == [("a", first["a"])]
    assert not rd.pid_file.exists()
    assert (rd.read_state() or {})["supervisor"]["running"] is False

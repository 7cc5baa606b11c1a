"""``shoal status`` over a real lake and broker: worst first with a one-line why, the same report
as ``GET /v1/status`` (filtered by the token's grants) and as gauges on ``/metrics``."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pytest
import yaml
from confluent_kafka import Producer

from harness import NoidaBroker, free_port
from harness.cli import invoke_shoal
from harness.serve_sample import SampleProject, auth, http_client, sample_project
from shoal.project import Project
from shoal.status.collect import SEVERITY, collect_status
from shoal.status.runstate import run_dir

MODEL = {
    "name": "billing.daily_revenue",
    "sql": "select day, sum(amount) as revenue from billing.invoices group by 1",
    "unique_key": ["day"],
    "upstream": ["billing.invoices"],
}


@pytest.fixture(scope="module")
def supervisor_stand_in() -> Iterator[int]:
    """A live process whose command line names shoal, standing in for a running `shoal up`."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", "shoal-up-stand-in"])
    yield proc.pid
    proc.kill()
    proc.wait(10)


@pytest.fixture(scope="module")
def sample(
    tmp_path_factory: pytest.TempPathFactory, _kafka_broker_session: NoidaBroker, supervisor_stand_in: int
) -> SampleProject:
    broker = _kafka_broker_session
    s = sample_project(tmp_path_factory.mktemp("status"))
    topic = f"status-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, partitions=2)
    producer = Producer(broker.config())
    for partition, count in ((0, 30), (1, 20)):
        for i in range(count):
            producer.produce(topic, value=b'{"id": %d}' % i, partition=partition)
    assert producer.flush(30) == 0
    d = s.project.dir
    (d / "pipelines").mkdir(exist_ok=True)
    (d / "pipelines" / "tickets.yaml").write_text(
        yaml.safe_dump(
            {
                "topics": [topic],
                "brokers": broker.bootstrap,
                "table": "support.tickets",
                "decode": {"format": "json", "infer": True},
            }
        )
    )
    (d / "pipelines" / "invoices.yaml").write_text(
        yaml.safe_dump(
            {
                "topics": ["inv"],
                "brokers": f"127.0.0.1:{free_port()}",
                "table": "billing.invoices",
                "decode": {"format": "json", "infer": True},
            }
        )
    )
    (d / "models.yaml").write_text(yaml.safe_dump({"models": [MODEL]}))
    settings = yaml.safe_load((d / "shoal.yaml").read_text())
    settings["models"] = ["models.yaml"]
    (d / "shoal.yaml").write_text(yaml.safe_dump(settings))
    project = Project.load(d)
    # a new invoices commit the model has not consumed yet
    inv = project.lake.table("billing.invoices")
    row = {"id": 9, "customer_id": 2, "amount": Decimal("1.00"), "day": date(2026, 1, 3)}
    inv.append(pa.Table.from_pylist([row], schema=inv.schema))
    # what a supervisor leaves: one child in backoff after a crash, one running, a failed job run
    rd = run_dir(d, project.settings.up.run_dir).ensure()
    rd.pid_file.write_text(f"{supervisor_stand_in}\n")
    crash = {"pid": 4242, "exit_code": -9, "signal": "SIGKILL", "at": "2026-01-01T00:00:00+00:00"}
    worker = {"kind": "pipeline", "target": "tickets"}
    rd.write_state({
        "supervisor": {"pid": supervisor_stand_in},
        "children": [
            {**worker, "name": "ingest-tickets-0", "state": "running", "pid": 1, "restarts": 0},
            {**worker, "name": "ingest-tickets-1", "state": "backoff", "pid": None, "restarts": 2,
             "restart_in_s": 4.0, "last_exit": crash},
        ],
        "jobs": [{"name": "nightly", "action": "vacuum", "schedule": "@daily", "next_run_at": None}],
    })  # fmt: skip
    failed = {"outcome": "failed", "exit_code": 1, "detail": "error: no table nope.missing"}
    rd.append_event({"event": "job", "job": "nightly", "finished": "2026-01-01T00:00:00+00:00", **failed})
    return SampleProject(project, s.admin, s.support_reader, s.support_pii, s.billing_reader, s.revoked)


def _later() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)  # every commit of the sample is now an hour old


def test_worst_first_with_why(sample: SampleProject) -> None:
    report = collect_status(sample.project, now=_later(), broker_timeout_s=0.5)
    ranks = [SEVERITY[p["status"]] for p in report["problems"]]
    assert ranks == sorted(ranks)
    assert report["problems"][0]["status"] == "failing"
    why = {(p["section"], p["name"]): (p["status"], p["why"]) for p in report["problems"]}
    assert why[("children", "ingest-tickets-1")] == ("failing", "crashed (SIGKILL), restart 3 in 4.0 s")
    assert why[("jobs", "nightly")][0] == "failing"
    assert "nope.missing" in why[("jobs", "nightly")][1]
    assert why[("pipelines", "invoices")][0] == "failing"
    assert why[("pipelines", "invoices")][1].startswith("broker unreachable")
    assert why[("pipelines", "tickets")][0] == "late"
    assert why[("pipelines", "tickets")][1].startswith("50 events behind, last commit 36")
    assert why[("models", "billing.daily_revenue")][0] == "late"
    assert why[("models", "billing.daily_revenue")][1].startswith("1 input version(s) not consumed for")
    pipes = {p["name"]: p for p in report["pipelines"]}
    assert report["pipelines"][0]["status"] == "failing"
    assert pipes["tickets"]["workers"] == {
        "declared": 2, "running": 1, "children": ["ingest-tickets-0", "ingest-tickets-1"],
    }  # fmt: skip
    lags = {p["partition"]: p["lag"] for p in pipes["tickets"]["partitions"] if p["lag"] is not None}
    assert lags == {0: 30, 1: 20}
    tables = {t["name"]: t for t in report["tables"]}
    assert tables["billing.invoices"]["files"] == tables["billing.invoices"]["small_files"] > 0
    assert report["supervisor"]["running"] is True


def test_cli_json_and_table(sample: SampleProject) -> None:
    result = invoke_shoal(["status", "--format", "json", "--project", str(sample.project.dir)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["problems"][0]["status"] == "failing"
    table = invoke_shoal(["status", "--project", str(sample.project.dir)])
    assert table.exit_code == 0, table.output
    assert "problems" in table.output
    assert "ingest-tickets-1" in table.output


def test_api_filters_by_grants_and_metrics_show_gauges(sample: SampleProject) -> None:
    with http_client(sample.project) as c:
        admin = c.get("/v1/status", headers=auth(sample.admin)).json()
        reader = c.get("/v1/status", headers=auth(sample.billing_reader)).json()
        assert c.get("/v1/status").status_code == 401
        metrics = c.get("/metrics").text
    assert admin["problems"][0]["status"] == "failing"
    assert {"children", "jobs", "supervisor"} <= set(admin)
    assert not {"children", "jobs", "supervisor"} & set(reader)
    assert {t["name"].split(".")[0] for t in reader["tables"]} == {"billing"}
    assert [p["name"] for p in reader["pipelines"]] == ["invoices"]
    assert 'shoal_status_child_restarts{child="ingest-tickets-1"} 2.0' in metrics
    assert 'shoal_status_pipeline_workers_running{pipeline="tickets"} 1.0' in metrics
    assert 'shoal_status_problems{status="failing"}' in metrics


def test_dead_letters_pending_leaves_out_replayed_letters(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from shoal.ingest.dead_letter import DEAD_LETTER_SCHEMA
    from shoal.lake import Lake
    from shoal.status.pipelines import _dead_letters

    lake = Lake(str(tmp_path / "lake"))
    now = datetime.now(UTC)
    schema = DEAD_LETTER_SCHEMA  # with the replay columns shoal dlq marks letters in
    rows = {name: [None, None, None] for name in schema.names}
    rows |= {
        "error_class": ["DecodeError"] * 3,
        "failed_at": [now - timedelta(hours=2), now - timedelta(minutes=5), now - timedelta(minutes=1)],
        "replayed_at": [now, None, None],  # the oldest was replayed (marked, not deleted)
    }
    lake.create_table("orders.dead_letters", schema).append(pa.table(rows, schema=schema))
    got = _dead_letters(lake, "orders.dead_letters", now)
    assert got == {"table": "orders.dead_letters", "total": 3, "last_hour": 2, "pending": 2}
    assert _dead_letters(lake, "orders.missing", now)["pending"] == 0

"""The leads use case on real databases: the CRM in MariaDB and the warehouse in PostgreSQL (the
machine's servers, fresh databases), copied by ``shoal sync`` in cursor mode, the models refreshed
and compared with the Python reference; the same seed on the embedded SQLite stand-ins gives the
same model tables; changes upstream reach the models on the next sync; and one live query joins the
lake with both databases."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from harness.cli import invoke_shoal
from harness.databases import DBInfo, MySQLServer, PostgresServer
from shoal.config import init_project
from shoal.project import Project
from shoal.usecases.billing import BillingSimulator
from shoal.usecases.leads import demo_step, operational, reference
from shoal.usecases.leads.loader import Target, load
from shoal.usecases.leads.models import FUNNEL, OPERATIONAL, PIPELINE, PQL
from shoal.usecases.leads.schema import DATABASES, SPECS
from shoal.usecases.leads.simulator import LeadsData, LeadsSimulator, rows_as_dicts

pytestmark = pytest.mark.integration

KEYS = {PQL: ["account_id"], FUNNEL: ["cohort", "signup_source"], PIPELINE: ["rep_id", "stage"]}


@pytest.fixture(scope="module")
def data() -> LeadsData:
    sim = BillingSimulator(seed=23, start=datetime(2026, 9, 1, tzinfo=UTC), days=2, users=1500)
    return LeadsSimulator(sim, window_days=14).generate()


def _project(directory: Path, targets: dict[str, Target]) -> Project:
    init_project(directory, "leads-test")
    operational.declare(directory, targets, relative_to=directory)
    return Project.load(directory)


def _model_rows(project: Project, model: str) -> list[dict[str, Any]]:
    rows = project.lake.table(model).to_arrow().to_pylist()
    return sorted(rows, key=lambda r: tuple(str(r[k]) for k in KEYS[model]))


def _same(got: Sequence[dict[str, Any]], want: Sequence[dict[str, Any]], key: Sequence[str]) -> None:
    by_key = {tuple(r[k] for k in key): r for r in got}
    assert len(by_key) == len(got) == len(want)
    for w in want:
        g = by_key[tuple(w[k] for k in key)]
        for column, value in w.items():
            assert g[column] == (pytest.approx(value) if isinstance(value, float) else value), (column, w, g)


def _check_reference(project: Project, crm: dict[str, Any], warehouse: dict[str, Any]) -> None:
    _same(_model_rows(project, PQL), reference.pql(crm, warehouse), KEYS[PQL])
    _same(_model_rows(project, FUNNEL), reference.funnel(crm, warehouse), KEYS[FUNNEL])
    _same(_model_rows(project, PIPELINE), reference.pipeline(crm), KEYS[PIPELINE])


def _dicts(data: LeadsData, database: str) -> dict[str, list[dict[str, Any]]]:
    return {t: rows_as_dicts(SPECS[t].column_names, rows) for t, rows in data.database(database).items()}


def _sync_cli(project: Project, name: str) -> dict[str, Any]:
    result = invoke_shoal(["sync", name, "-p", str(project.dir), "--format", "json"])
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.output)
    return report


def test_real_databases_synced_models_match_reference_and_embedded(  # noqa: PLR0917 (fixtures)
    tmp_path: Path,
    data: LeadsData,
    mysql_server: MySQLServer,
    mysql_database: DBInfo,
    postgres_server: PostgresServer,
    postgres_database: DBInfo,
) -> None:
    targets = {"crm": Target.parse(mysql_database.url), "warehouse": Target.parse(postgres_database.url)}
    for name, target in targets.items():
        load(target, name, data.database(name))
    real = _project(tmp_path / "real", targets)
    for name in DATABASES:
        report = _sync_cli(real, name)
        assert {t["table"] for t in report["tables"]} == set(data.database(name))
    assert operational.refresh(real, with_billing=False)[PQL] > 100
    crm, warehouse = _dicts(data, "crm"), _dicts(data, "warehouse")
    _check_reference(real, crm, warehouse)

    # the embedded stand-ins, same seed: the same model tables, through the same sync code
    embedded = _project(
        tmp_path / "embedded",
        {name: Target.parse(str(tmp_path / "embedded" / "operational" / f"{name}.db")) for name in DATABASES},
    )
    for name in DATABASES:
        load(Target.parse(str(embedded.dir / "operational" / f"{name}.db")), name, data.database(name))
    assert {e.kind for e in embedded.endpoints()} == {"sqlite"}
    operational.sync(embedded)
    operational.refresh(embedded, with_billing=False)
    for model in OPERATIONAL:
        assert _model_rows(embedded, model) == _model_rows(real, model), model

    # changes upstream: a deal won, a lead re-attributed, a deal deleted, a trial converted late
    later = data.as_of + timedelta(hours=1)
    opp = next(o for o in crm["opportunities"] if o["stage"] == "prospecting")
    gone = next(o for o in crm["opportunities"] if o["opportunity_id"] != opp["opportunity_id"])
    user = crm["users"][7]
    with mysql_server.connect(mysql_database.database) as con, con.cursor() as cur:
        cur.execute(
            "UPDATE opportunities SET stage = 'closed_won', amount = 1234.56, updated_at = %s "
            "WHERE opportunity_id = %s",
            (later, opp["opportunity_id"]),
        )
        cur.execute("UPDATE users SET signup_source = 'partner', updated_at = %s WHERE user_id = %s",
                    (later, user["user_id"]))  # fmt: skip
        cur.execute("DELETE FROM opportunities WHERE opportunity_id = %s", (gone["opportunity_id"],))
    trial = next(t for t in warehouse["trial_starts"] if t["converted_at"] is None)
    with postgres_server.connect(postgres_database.database) as pg:
        pg.execute(
            "UPDATE trial_starts SET converted_at = %s, loaded_at = %s WHERE trial_id = %s",
            (later, later, trial["trial_id"]),
        )
    opp.update(stage="closed_won", amount=Decimal("1234.56"), updated_at=later)
    user.update(signup_source="partner", updated_at=later)
    crm["opportunities"].remove(gone)
    trial.update(converted_at=later, loaded_at=later)
    for name in DATABASES:
        _sync_cli(real, name)
    operational.refresh(real, with_billing=False)
    _check_reference(real, crm, warehouse)
    deals = _model_rows(real, PIPELINE)
    assert sum(r["opportunities"] for r in deals) == len(crm["opportunities"])


def test_top_leads_join_the_lake_with_mysql_and_postgres_live(
    tmp_path: Path, data: LeadsData, mysql_database: DBInfo, postgres_database: DBInfo
) -> None:
    targets = {"crm": Target.parse(mysql_database.url), "warehouse": Target.parse(postgres_database.url)}
    for name, target in targets.items():
        load(target, name, data.database(name))
    project = _project(tmp_path / "p", targets)
    operational.sync(project)
    operational.refresh(project, with_billing=False)
    assert {e.kind for e in project.endpoints()} == {"mysql", "postgres"}

    top = operational.top_leads_live(project, 5)
    crm, warehouse = _dicts(data, "crm"), _dicts(data, "warehouse")
    want = reference.pql(crm, warehouse)[:5]
    reps = {r["rep_id"]: r["name"] for r in crm["sales_reps"]}
    accounts = {a["account_id"]: a for a in crm["accounts"]}
    assert [r["account_id"] for r in top] == [w["account_id"] for w in want]
    for got, w in zip(top, want, strict=True):
        members = {u["user_id"] for u in crm["users"] if u["account_id"] == w["account_id"]}
        owner = accounts[w["account_id"]]["owner_rep_id"]
        assert got["score"] == w["score"]
        assert got["owner"] == reps.get(owner, "(unassigned)")
        assert got["users"] == len(members)
        assert got["last_session"] == max(
            s["started_at"] for s in warehouse["sessions"] if s["user_id"] in members
        )
    # the CLI shows the same, and an unreachable database is one line naming it
    out = invoke_shoal(["leads", "top", "-n", "5", "-p", str(project.dir), "--format", "json"])
    assert out.exit_code == 0, out.output
    assert [r["account_id"] for r in json.loads(out.output)] == [w["account_id"] for w in want]


@dataclass
class _StepContext:
    """What the demo gives a step (shoal.usecases.registry.StepContext), without the other steps."""

    project: Project
    databases: dict[str, str]
    small: bool = True
    queries: list[str] = field(default_factory=list)

    def say(self, text: str) -> None:
        pass

    def suggest_sql(self, query: str) -> None:
        self.queries.append(query)

    def stream(self, **spec: Any) -> dict[str, Any]:
        raise AssertionError("the leads step streams nothing")


def test_demo_step_on_real_databases_equals_the_embedded_one(
    tmp_path: Path, mysql_database: DBInfo, postgres_database: DBInfo
) -> None:
    """``shoal demo --mysql URL --postgres URL``'s leads step, next to the default (SQLite) one."""
    summaries = {}
    for label, given in (
        ("embedded", {}),
        ("real", {"mysql": mysql_database.url, "postgres": postgres_database.url}),
    ):
        init_project(tmp_path / label, "shoal-demo")
        ctx = _StepContext(Project.load(tmp_path / label), given)
        summaries[label] = demo_step.run(ctx)
        assert ctx.queries  # it suggests what to try
    real, embedded = summaries["real"], summaries["embedded"]
    assert real["databases"]["crm"].startswith("mysql ")
    assert real["databases"]["warehouse"].startswith("postgres ")
    assert embedded["databases"]["crm"] == f"sqlite {tmp_path / 'embedded' / 'operational' / 'crm.db'}"
    assert real["loaded"] == embedded["loaded"]
    assert real["synced"] == embedded["synced"]
    assert real["models"] == embedded["models"]
    assert real["models"][PQL] > 0
    declared = Project.load(tmp_path / "embedded").settings.databases
    assert declared["crm"].database == "operational/crm.db"  # relative: the demo directory can move
    for model in OPERATIONAL:
        assert _model_rows(Project.load(tmp_path / "real"), model) == _model_rows(
            Project.load(tmp_path / "embedded"), model
        )

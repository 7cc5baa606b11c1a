"""The leads use case's CRM (MariaDB) and warehouse (PostgreSQL) replicated by change capture (the
binlog and pgoutput of private servers; the use case itself syncs in cursor mode): after the
snapshot and after updates and deletes upstream, every replica table equals its source table,
every column of every row."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from harness.private_databases import PrivateMariaDB, PrivatePostgres
from harness.sync_helpers import lake_rows, mysql_decl, pg_decl, rows_sorted, write_project
from shoal.project import Project
from shoal.replicate import Syncer
from shoal.usecases.billing import BillingSimulator
from shoal.usecases.leads.loader import Target, load
from shoal.usecases.leads.schema import DATABASES
from shoal.usecases.leads.simulator import LeadsSimulator

pytestmark = pytest.mark.integration


def _q(kind: str, name: str) -> str:
    return f"`{name}`" if kind == "mysql" else f'"{name}"'


def test_leads_tables_follow_by_change_capture(
    tmp_path: Path, maria: PrivateMariaDB, pg: PrivatePostgres
) -> None:
    sim = BillingSimulator(seed=23, start=datetime(2026, 9, 1, tzinfo=UTC), days=2, users=300)
    data = LeadsSimulator(sim, window_days=7).generate()
    name = f"leads_{uuid.uuid4().hex[:8]}"
    maria.execute(f"CREATE DATABASE {name}")
    pg.execute(f"CREATE DATABASE {name}")
    servers: dict[str, tuple[str, Any]] = {"crm": ("mysql", maria), "warehouse": ("postgres", pg)}
    for db, (kind, server) in servers.items():
        user = "root" if kind == "mysql" else "postgres"
        load(Target(kind, name, port=server.port, user=user), db, data.database(db))
    decls = {"crm": mysql_decl(maria, name), "warehouse": pg_decl(pg, name)}
    project = Project.load(write_project(tmp_path / "proj", decls))

    def sync_and_compare() -> int:
        compared = 0
        for endpoint in project.endpoints():
            Syncer(project.lake, endpoint).run()
            kind, server = servers[endpoint.name]
            specs, _ = DATABASES[endpoint.name]
            for spec in specs:
                columns = spec.column_names
                select = ", ".join(_q(kind, c) for c in columns)
                source = rows_sorted(server.execute(f"SELECT {select} FROM {_q(kind, spec.name)}", name))
                table = project.lake.table(f"{endpoint.name}_replica.{spec.name}")
                assert lake_rows(table, columns) == source, (endpoint.name, spec.name)
                compared += len(source)
        return compared

    assert sync_and_compare() > 1000
    # every table: a few rows updated (their cursor column moved), one deleted, by key
    for db, (kind, server) in servers.items():
        specs, cursor = DATABASES[db]
        for spec in specs:
            t, k, c = _q(kind, spec.name), _q(kind, spec.key), _q(kind, cursor)
            keys = [r[0] for r in server.execute(f"SELECT {k} FROM {t} ORDER BY {k} LIMIT 6", name)]
            if not keys:
                continue
            literals = ", ".join(f"'{v}'" if isinstance(v, str) else str(v) for v in keys)
            later = f"{c} + INTERVAL 1 SECOND" if kind == "mysql" else f"{c} + INTERVAL '1 second'"
            server.execute(f"UPDATE {t} SET {c} = {later} WHERE {k} IN ({literals})", name)
            server.execute(f"DELETE FROM {t} WHERE {k} = {literals.split(', ')[0]}", name)
    sync_and_compare()

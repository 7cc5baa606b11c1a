"""The use case's operational databases in a project: declared, replicated, modelled, joined live.

``crm`` and ``warehouse`` are declared under ``databases:`` like any user's databases and copied by
the same :class:`shoal.replicate.Syncer` as ``shoal sync`` (cursor mode: the session's servers and
the embedded SQLite files need no replication rights); the models read the replicas.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from shoal.config import PROJECT_FILE
from shoal.project import Project
from shoal.replicate import Syncer
from shoal.usecases.leads.loader import Target
from shoal.usecases.leads.models import MODEL_SPECS, OPERATIONAL
from shoal.usecases.leads.schema import DATABASES

#: rows per cursor chunk: one Delta merge per chunk, so few and large for the demo's tables
CHUNK_ROWS = 200_000

TOP_LEADS_LIVE_SQL = """
SELECT
    p.rank,
    p.account_id,
    a.name AS account,
    p.score,
    p.qualified,
    coalesce(r.name, '(unassigned)') AS owner,
    count(DISTINCT u.user_id) AS users,
    max(s.started_at) AS last_session
FROM leads.pql AS p
JOIN crm.accounts AS a ON a.account_id = p.account_id
LEFT JOIN crm.sales_reps AS r ON r.rep_id = a.owner_rep_id
JOIN crm.users AS u ON u.account_id = p.account_id
LEFT JOIN warehouse.sessions AS s ON s.user_id = u.user_id
WHERE p.rank <= ?
GROUP BY p.rank, p.account_id, a.name, p.score, p.qualified, r.name
ORDER BY p.rank
"""


def declare(project_dir: Path, targets: Mapping[str, Target], *, relative_to: Path | None = None) -> None:
    """Add ``crm``/``warehouse`` under ``databases:`` of the project's shoal.yaml (replacing an
    earlier declaration of them); a sqlite file inside ``relative_to`` is written relative to it.
    A password is never written: this process gets it in ``SHOAL_DB_<NAME>_PASSWORD``."""
    path = project_dir / PROJECT_FILE
    raw: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
    declared = dict(raw.get("databases") or {})
    for name, target in targets.items():
        decl = target.declaration(DATABASES[name][1], chunk_rows=CHUNK_ROWS)
        if target.kind == "sqlite" and relative_to is not None:
            file = Path(target.database).resolve()
            if file.is_relative_to(relative_to.resolve()):
                decl["database"] = str(file.relative_to(relative_to.resolve()))
        declared[name] = decl
        if target.password:
            os.environ[f"SHOAL_DB_{name.upper()}_PASSWORD"] = target.password
    text = path.read_text()
    if "databases" in raw:
        raw["databases"] = declared
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
    else:  # keep the file's comments: append the section
        path.write_text(text.rstrip("\n") + "\n" + yaml.safe_dump({"databases": declared}, sort_keys=False))


def sync(project: Project, on_table: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Bring ``crm_replica.*`` and ``warehouse_replica.*`` up to date; rows changed per replica."""
    out: dict[str, int] = {}
    for endpoint in project.endpoints():
        if endpoint.name not in DATABASES:
            continue
        report = Syncer(project.lake, endpoint).run()
        for t in report.tables.values():
            out[t.lake_table] = t.upserted + t.deleted + t.snapshot_rows
            if on_table is not None:
                on_table(t.lake_table, out[t.lake_table])
    return out


def refresh(project: Project, *, with_billing: bool) -> dict[str, int]:
    """Refresh the leads models (``leads.revenue_by_source`` only ``with_billing``: it reads
    ``billing.invoice_lines``); rows written per model."""
    from shoal.models import ModelRunner

    names = [m.name for m in MODEL_SPECS] if with_billing else list(OPERATIONAL)
    chosen = [m for m in MODEL_SPECS if m.name in names]
    with ModelRunner(project.lake, chosen, con=project.connect(databases=False)) as runner:
        return {r.model: r.rows_written for r in runner.refresh()}


def top_leads_live(project: Project, n: int = 10) -> list[dict[str, Any]]:
    """The top ``n`` product-qualified leads (lake) with their owner and users from the CRM and
    their last session from the warehouse, read live: one query over the lake and both databases."""
    con = project.connect()
    try:
        rows: list[dict[str, Any]] = con.query_arrow(TOP_LEADS_LIVE_SQL, [n]).to_pylist()
    finally:
        con.close()
    return rows

"""The leads demo step: the company's CRM and warehouse in operational databases, replicated into
the lake by ``shoal sync``'s code path, then the leads models.

By default the databases are SQLite files in the project (``operational/crm.db``,
``operational/warehouse.db``): no service needed, yet declared, federated and synced like real
ones. ``shoal demo --mysql URL --postgres URL`` puts the CRM in MySQL/MariaDB and the warehouse in
PostgreSQL instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shoal.usecases.registry import StepContext


def run(ctx: StepContext) -> dict[str, Any]:
    from shoal.project import Project
    from shoal.usecases.billing.demo_step import simulator
    from shoal.usecases.leads import operational
    from shoal.usecases.leads.loader import Target, load
    from shoal.usecases.leads.simulator import LeadsSimulator

    # the billing step's customers; the full demo keeps a week of product sessions (~0.4M rows)
    data = LeadsSimulator(simulator(ctx.small), window_days=14 if ctx.small else 7).generate()
    home = ctx.project.dir / "operational"
    urls = {"crm": ctx.databases.get("mysql"), "warehouse": ctx.databases.get("postgres")}
    targets = {name: Target.parse(url or str(home / f"{name}.db")) for name, url in urls.items()}
    loaded: dict[str, int] = {}
    for name, target in targets.items():
        counts = load(target, name, data.database(name))
        loaded.update({f"{name}.{t}": n for t, n in counts.items()})
        ctx.say(f"  loaded {sum(counts.values()):,} rows into {name} ({target.where()})")
    operational.declare(ctx.project.dir, targets, relative_to=ctx.project.dir)
    project = Project.load(ctx.project.dir)  # now with its databases declared
    synced = operational.sync(project)
    ctx.say(f"  synced {len(synced)} tables into crm_replica.* and warehouse_replica.* (shoal sync)")
    with_billing = project.lake.exists("billing.invoice_lines")
    models = operational.refresh(project, with_billing=with_billing)
    ctx.suggest_sql("select rank, account_id, score, sessions, features, employees from leads.pql "
                    "order by rank limit 10")  # fmt: skip
    ctx.suggest_sql("select cohort, signup_source, signups, trials, paid, paid_pct from leads.funnel "
                    "order by cohort desc, signups desc limit 12")  # fmt: skip
    ctx.suggest_sql("select u.signup_source, count(*) from crm.users u "
                    "join leads.pql p using (account_id) where p.qualified group by 1")  # fmt: skip
    return {
        "databases": {name: t.where() for name, t in targets.items()},
        "loaded": loaded,
        "synced": synced,
        "models": models,
    }

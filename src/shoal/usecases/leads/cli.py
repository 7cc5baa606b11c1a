"""``shoal leads …``: load the simulated CRM and warehouse into databases, show the top leads live."""

from __future__ import annotations

from typing import Annotated

import typer

from shoal.options import FormatOpt, ProjectOpt
from shoal.output import OutputFormat, emit, emit_rows

app = typer.Typer(
    help="Sales and marketing leads: CRM + warehouse replicated into the lake.", no_args_is_help=True
)


@app.command("load")
def load_cmd(
    crm: Annotated[str, typer.Option(help="CRM database: mysql://…, postgresql://… or a SQLite file.")],
    warehouse: Annotated[
        str, typer.Option(help="Warehouse database: postgresql://…, mysql://… or a SQLite file.")
    ],
    small: Annotated[bool, typer.Option("--small", help="The small demo's company (300 users).")] = False,
    window_days: Annotated[int, typer.Option(help="Days of product sessions in the warehouse.")] = 14,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Create and fill the CRM and warehouse tables of the demo's company (replaces them)."""
    from shoal.usecases.billing.demo_step import simulator
    from shoal.usecases.leads.loader import Target, load
    from shoal.usecases.leads.simulator import LeadsSimulator

    data = LeadsSimulator(simulator(small), window_days=window_days).generate()
    rows = []
    for name, url in (("crm", crm), ("warehouse", warehouse)):
        target = Target.parse(url)
        for table, n in load(target, name, data.database(name)).items():
            rows.append({"database": name, "where": target.where(), "table": table, "rows": n})
    emit_rows(rows, fmt, columns=["database", "where", "table", "rows"])


@app.command("top")
def top_cmd(
    n: Annotated[int, typer.Option("-n", help="How many leads.")] = 10,
    project: ProjectOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """The top product-qualified leads, joined live with the CRM and the warehouse.

    One federated query: the ranking from the lake (leads.pql), owner and users from the CRM and the
    last session from the warehouse, read at query time."""
    from shoal.project import Project
    from shoal.usecases.leads.operational import top_leads_live

    rows = top_leads_live(Project.load(project), n)
    if fmt is OutputFormat.json:
        emit(rows, fmt)
        return
    emit_rows(rows, fmt, columns=["rank", "account_id", "account", "score", "qualified", "owner", "users",
                                  "last_session"])  # fmt: skip

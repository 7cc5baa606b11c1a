"""Use case 4: sales and marketing leads, from operational databases replicated into the lake.

- :mod:`.schema`: the CRM (MySQL/MariaDB) and warehouse (PostgreSQL) tables, in each dialect.
- :mod:`.simulator`: ``LeadsSimulator`` — a seeded CRM and warehouse of the billing customers.
- :mod:`.loader`: create and fill those tables in a MySQL, PostgreSQL or SQLite database.
- :mod:`.models`: ``leads.pql``, ``leads.funnel``, ``leads.pipeline``, ``leads.revenue_by_source``.
- :mod:`.reference`: the models' rules in plain Python (the test oracle).
- :mod:`.demo_step`: the demo's step (SQLite files by default, or real databases).
"""

from __future__ import annotations

from shoal.usecases.registry import UseCase

# Registered as the ``leads`` entry point of ``shoal.usecases`` (pyproject.toml).
USECASE = UseCase(
    name="leads",
    title="sales and marketing leads",
    models="shoal.usecases.leads.models",
    cli="shoal.usecases.leads.cli:app",
    demo_step="shoal.usecases.leads.demo_step:run",
)

__all__ = ["USECASE"]

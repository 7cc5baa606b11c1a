"""shoal: events, metrics and databases into one open lakehouse, queried with SQL.

>>> import shoal
>>> con = shoal.connect("path/to/project")        # DuckDB, every lake table as ns.table
>>> con.sql("select * from support.csat_daily").df()
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from shoal.project import Project
    from shoal.query import Connection

__all__ = ["__version__", "connect", "open_project"]


def open_project(project: str | Path | None = None) -> Project:
    """Load the project in ``project`` (default: ``$SHOAL_PROJECT`` or the current directory)."""
    from shoal.project import Project

    return Project.load(project)


def connect(project: str | Path | None = None) -> Connection:
    """A DuckDB connection where every table of the project's lake is queryable as ``ns.table``."""
    return open_project(project).connect()

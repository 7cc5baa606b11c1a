"""One run of a maintenance job declared under ``up.maintenance`` (``shoal maintain NAME``).

``shoal up`` starts each run as its own short-lived child, so a long compaction never holds up
ingestion; compaction and checkpoints are data-neutral commits that concurrent appends retry past
(:func:`shoal.lake.table.retry_conflicts`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from shoal.config.settings import UpMaintenance
from shoal.errors import NotFoundError, ShoalError
from shoal.project import Project


class MaintenanceFailed(ShoalError):
    """At least one table of a maintenance run failed (the others were done)."""


def run_maintenance(
    project: Project,
    name: str,
    *,
    progress: Callable[[str], None] = lambda _t: None,
) -> list[dict[str, Any]]:
    """Run job ``name`` over its tables; one row per table. Raises :class:`MaintenanceFailed` naming
    the tables that failed, after trying every table."""
    jobs = project.settings.up.maintenance
    job: UpMaintenance | None = jobs.get(name)
    if job is None:
        known = ", ".join(jobs) or "none"
        raise NotFoundError(f"no maintenance job {name!r} under up.maintenance (declared: {known})")
    lake = project.lake
    names = job.tables or lake.table_names()
    rows: list[dict[str, Any]] = []
    failed: list[str] = []
    for table in names:
        progress(table)
        started = time.monotonic()
        row: dict[str, Any] = {"table": table, "action": job.action, "ok": True, "detail": ""}
        try:
            if not lake.exists(table):
                raise NotFoundError(lake.not_found_message(table))
            t = lake.table(table)
            if job.action == "compact":
                res = t.compact(job.target_file_mb)
                row["detail"] = f"{res.get('numFilesRemoved', 0)} files into {res.get('numFilesAdded', 0)}"
            elif job.action == "vacuum":
                removed = t.vacuum(job.retention_hours, full=job.full)
                kind = "full, " if job.full else ""
                row["detail"] = f"{len(removed)} files deleted ({kind}retention {job.retention_hours:g} h)"
            else:
                row["detail"] = f"checkpoint at version {t.checkpoint()}"
        except ShoalError as exc:
            row["ok"] = False
            row["detail"] = str(exc)
            failed.append(f"{table}: {exc}")
        row["seconds"] = round(time.monotonic() - started, 3)
        rows.append(row)
    if failed:
        raise MaintenanceFailed(f"maintenance {name} ({job.action}) failed for {'; '.join(failed)}")
    return rows

"""``GET /v1/pipelines``: the status of each pipeline whose table the caller may read
(the logic lives in :mod:`shoal.status.pipelines`, shared with ``shoal status``)."""

from __future__ import annotations

from typing import Any

from shoal.errors import ShoalError
from shoal.ingest import load_pipeline
from shoal.project import Project
from shoal.query.sandbox import Access
from shoal.status.pipelines import BROKER_TIMEOUT_S, BrokerUnreachable, pipeline_status


def pipelines_status(
    project: Project, access: Access, *, broker_timeout_s: float = BROKER_TIMEOUT_S
) -> list[dict[str, Any]]:
    """Every pipeline whose table ``access`` may read (a file that fails to load is shown to admins
    only, with its one-line error)."""
    out: list[dict[str, Any]] = []
    for name, path in project.pipeline_files.items():
        try:
            spec = load_pipeline(path, project.dir)
        except ShoalError as exc:
            if access.namespaces is None:
                out.append({"name": name, "error": str(exc)})
            continue
        if not access.can_read(spec.table):
            continue
        out.append(pipeline_status(project.lake, spec, broker_timeout_s=broker_timeout_s))
    return out


__all__ = ["BrokerUnreachable", "pipeline_status", "pipelines_status"]

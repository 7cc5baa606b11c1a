"""Project and settings: ``shoal.yaml`` plus ``SHOAL_*`` environment overrides."""

from __future__ import annotations

from shoal.config.project import (
    PROJECT_FILE,
    LakeSettings,
    Project,
    QuerySettings,
    ServeSettings,
    Settings,
    find_project_dir,
    import_object,
    init_project,
)

__all__ = [
    "PROJECT_FILE",
    "LakeSettings",
    "Project",
    "QuerySettings",
    "ServeSettings",
    "Settings",
    "find_project_dir",
    "import_object",
    "init_project",
]

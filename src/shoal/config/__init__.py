"""Settings: ``shoal.yaml`` plus ``SHOAL_*`` environment overrides, frozen once loaded.

This stage holds settings only; :mod:`shoal.project` builds the lake, the query connection and
the models from them.
"""

from __future__ import annotations

from shoal.config.settings import (
    PROJECT_FILE,
    DatabaseSettings,
    DatabaseSyncSettings,
    LakeSettings,
    QuerySettings,
    ServeSettings,
    Settings,
    find_project_dir,
    init_project,
    load_settings,
)

__all__ = [
    "PROJECT_FILE",
    "DatabaseSettings",
    "DatabaseSyncSettings",
    "LakeSettings",
    "QuerySettings",
    "ServeSettings",
    "Settings",
    "find_project_dir",
    "init_project",
    "load_settings",
]

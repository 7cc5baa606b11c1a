"""DuckDB extensions from PyPI wheels, loaded without any network access.

DuckDB's ``INSTALL name`` downloads from the extension repository, which offline machines
cannot reach. The signed binaries ship as ``duckdb-extension-<name>`` wheels (ADR 0003); we
install them from their site-packages path.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import duckdb

from shoal.errors import OptionalDependencyError

_PACKAGES = {
    "delta": "duckdb_extension_delta",
    "httpfs": "duckdb_extension_httpfs",
    "mysql_scanner": "duckdb_extension_mysql_scanner",
    "postgres_scanner": "duckdb_extension_postgres_scanner",
    "sqlite_scanner": "duckdb_extension_sqlite_scanner",
}


def extension_path(name: str) -> Path:
    package = _PACKAGES[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise OptionalDependencyError(
            f"DuckDB extension {name}", "query", f"duckdb-extension-{name.replace('_', '-')}"
        )
    base = Path(next(iter(spec.submodule_search_locations)))
    version = duckdb.__version__
    path = base / "extensions" / f"v{version}" / f"{name}.duckdb_extension"
    if not path.is_file():
        found = sorted(base.glob(f"extensions/*/{name}.duckdb_extension"))
        raise OptionalDependencyError(
            f"DuckDB extension {name} for duckdb {version} (found {[p.parent.name for p in found]})",
            "query",
            f"duckdb-extension-{name.replace('_', '-')}=={version}",
        )
    return path


def load_extension(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Install (from the wheel) and load ``name`` into ``con``; idempotent."""
    loaded = con.execute("SELECT loaded FROM duckdb_extensions() WHERE extension_name = ?", [name]).fetchone()
    if loaded and loaded[0]:
        return
    con.execute(f"INSTALL '{extension_path(name)}'")
    con.execute(f"LOAD {name}")

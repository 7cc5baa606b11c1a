"""The databases: section and its endpoints: secrets from the environment, never shown."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shoal.config import load_settings
from shoal.errors import ConfigError
from shoal.query.federation import Endpoint, endpoints


def _settings(tmp_path: Path, databases: dict[str, object]) -> object:
    (tmp_path / "shoal.yaml").write_text(yaml.safe_dump({"name": "t", "databases": databases}))
    return load_settings(tmp_path)


def test_declared_databases_and_password_from_the_environment(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path,
        {
            "crm": {"kind": "mysql", "host": "db1", "database": "crm", "user": "sales"},
            "warehouse": {
                "kind": "postgres",
                "host": "db2",
                "port": 6432,
                "database": "dw",
                "user": "ro",
                "schema": "analytics",
                "password_env": "DW_PW",
                "sync": {"mode": "cursor", "tables": ["t"]},
            },
        },
    )
    eps = {
        e.name: e
        for e in endpoints(settings.databases, {"SHOAL_DB_CRM_PASSWORD": "s3cret pw", "DW_PW": "x'y"})
    }  # type: ignore[attr-defined]
    crm, wh = eps["crm"], eps["warehouse"]
    assert (crm.port, wh.port, wh.schema, crm.schema) == (3306, 6432, "analytics", "public")
    assert wh.settings.sync.mode == "cursor"
    assert crm.duckdb_dsn() == "host=db1 port=3306 user=sales password='s3cret pw' database=crm"
    assert "password='x\\'y'" in wh.duckdb_dsn()
    assert "connect_timeout=5" in wh.duckdb_dsn()
    for ep in (crm, wh):
        assert ep.password not in repr(ep)
        assert ep.describe()["password"] == "***"
        assert ep.password not in str(ep.describe())
    assert (
        crm.scrub(f"failed: {crm.duckdb_dsn()}")
        == "failed: host=db1 port=3306 user=sales password=*** database=crm"
    )


def test_tls_from_the_environment(tmp_path: Path) -> None:
    settings = _settings(tmp_path, {"crm": {"kind": "mysql", "database": "crm", "user": "u"}})
    ep = Endpoint.resolve(
        "crm",
        settings.databases["crm"],
        {"SHOAL_DB_CRM_TLS": "verify-full", "SHOAL_DB_CRM_TLS_CA": "/ca.pem"},  # type: ignore[attr-defined]
    )
    assert "ssl_mode=verify_identity" in ep.duckdb_dsn()
    assert "ssl_ca=/ca.pem" in ep.duckdb_dsn()


def test_bad_declarations_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"databases\.crm\.kind"):
        _settings(tmp_path, {"crm": {"kind": "oracle", "database": "x", "user": "u"}})
    with pytest.raises(ConfigError, match=r"databases\.crm\.password"):
        _settings(tmp_path, {"crm": {"kind": "mysql", "database": "x", "user": "u", "password": "inline"}})
    settings = _settings(tmp_path, {"CRM": {"kind": "mysql", "database": "x", "user": "u"}})
    with pytest.raises(ConfigError, match=r"lower_snake_case"):
        endpoints(settings.databases, {})  # type: ignore[attr-defined]

"""Where the leads tables are loaded: database URLs, the shoal.yaml declaration (no password), and
errors as one line without the password."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import yaml

from shoal.config import init_project
from shoal.errors import ConfigError
from shoal.project import Project
from shoal.usecases.billing.demo_step import simulator
from shoal.usecases.leads import operational
from shoal.usecases.leads.loader import LoadError, Target, load
from shoal.usecases.leads.simulator import LeadsSimulator


def test_urls() -> None:
    t = Target.parse("mysql://crm_rw:p%40ss@db.internal:3307/crm")
    assert (t.kind, t.host, t.port, t.user, t.password, t.database) == (
        "mysql", "db.internal", 3307, "crm_rw", "p@ss", "crm",
    )  # fmt: skip
    assert "p@ss" not in repr(t)
    assert Target.parse("postgresql://postgres@127.0.0.1/dw").kind == "postgres"
    assert Target.parse("sqlite:///tmp/x.db") == Target("sqlite", "/tmp/x.db")
    assert Target.parse("rel/x.db") == Target("sqlite", "rel/x.db")
    with pytest.raises(ConfigError, match="scheme 'ftp'"):
        Target.parse("ftp://x/y")
    with pytest.raises(ConfigError, match=r"mysql://u:\*\*\*@h/: expected"):
        Target.parse("mysql://u:secret@h/")


def test_declaration_never_holds_the_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_DB_CRM_PASSWORD", "")  # declare() sets it: restored after the test
    init_project(tmp_path, "p")
    operational.declare(tmp_path, {"crm": Target.parse("mysql://u:topsecret@h:3307/crm")})
    text = (tmp_path / "shoal.yaml").read_text()
    assert "topsecret" not in text
    assert text.startswith("# A shoal project.")  # the file's comments are kept
    decl = yaml.safe_load(text)["databases"]["crm"]
    sync = {"mode": "cursor", "cursor_column": "updated_at", "chunk_rows": 200_000}
    assert decl == {"kind": "mysql", "database": "crm", "host": "h", "user": "u", "port": 3307, "sync": sync}
    assert Project.load(tmp_path).endpoints()[0].password == "topsecret"  # from the environment


def test_load_sqlite_and_refused_connection(tmp_path: Path) -> None:
    data = LeadsSimulator(simulator(small=True)).generate()
    target = Target.parse(str(tmp_path / "crm.db"))
    assert load(target, "crm", data.crm) == {t: len(r) for t, r in data.crm.items()}
    assert load(target, "crm", data.crm)["users"] == 300  # loading again replaces the tables
    with sqlite3.connect(tmp_path / "crm.db") as con:
        assert con.execute("SELECT count(*), min(signed_up_at) FROM users").fetchone() == (
            300, min(u[7] for u in data.crm["users"]).isoformat(" ", "microseconds"),
        )  # fmt: skip
    with pytest.raises(LoadError) as exc:
        load(Target.parse("mysql://root:hunter22@127.0.0.1:1/crm"), "crm", data.crm)
    assert "hunter22" not in str(exc.value)
    assert str(exc.value).startswith("cannot load into mysql root@127.0.0.1:1/crm: ")

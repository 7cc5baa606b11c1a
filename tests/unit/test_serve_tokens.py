"""Tokens: stored hashed, roles and grants, revocation seen by a running store, the CLI."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import invoke_shoal
from shoal.cli import plugins
from shoal.cli.main import app as shoal_app
from shoal.config import init_project
from shoal.errors import ConfigError, NotFoundError
from shoal.serve.tokens import Role, TokenStore, Unauthorized


def test_tokens_are_stored_hashed_with_roles_and_grants(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / ".shoal" / "tokens.json")
    _admin, admin_secret = store.create("root", Role.admin)
    reader, secret = store.create("ana", Role.reader, ["support", "billing", "support"])
    text = (tmp_path / ".shoal" / "tokens.json").read_text()
    assert secret not in text
    assert admin_secret not in text
    assert stat.S_IMODE((tmp_path / ".shoal" / "tokens.json").stat().st_mode) == 0o600
    assert reader.namespaces == ("billing", "support")
    assert not reader.pii
    assert store.authenticate(secret).id == reader.id
    assert store.authenticate(admin_secret).access.namespaces is None
    assert store.authenticate(admin_secret).access.pii
    assert reader.access.can_read("support.tickets")
    assert not reader.access.can_read("infra.power")
    # a second store on the same file (another process) sees the same tokens and salt
    other = TokenStore(tmp_path / ".shoal" / "tokens.json")
    assert other.authenticate(secret).name == "ana"
    assert other.salt == store.salt
    assert len(store.salt) == 32


@pytest.mark.parametrize(
    "presented",
    [None, "", "nope", "shoal_deadbeef_x", "Bearer shoal_", "shoal__", "shoal_" + "a" * 500],
)
def test_bad_tokens_are_unauthorized(tmp_path: Path, presented: str | None) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    store.create("ana", Role.reader, ["support"])
    with pytest.raises(Unauthorized):
        store.authenticate(presented)


def test_a_tampered_secret_with_a_known_id_is_refused(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    record, secret = store.create("ana", Role.reader, ["support"])
    with pytest.raises(Unauthorized, match="invalid or revoked"):
        store.authenticate(secret[:-1] + ("A" if secret[-1] != "A" else "B"))
    assert store.authenticate(secret).id == record.id


def test_revocation_reaches_a_store_that_already_loaded_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    server_side = TokenStore(path)
    record, secret = TokenStore(path).create("ana", Role.reader, ["support"])
    assert server_side.authenticate(secret).id == record.id
    TokenStore(path).revoke(record.id)
    with pytest.raises(Unauthorized, match="invalid or revoked"):
        server_side.authenticate(secret)
    assert server_side.tokens()[0].revoked is not None


def test_reader_needs_a_namespace_and_revoke_names_what_is_missing(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    with pytest.raises(ConfigError, match="at least one namespace"):
        store.create("ana", Role.reader)
    with pytest.raises(NotFoundError, match="no token 'zed'"):
        store.revoke("zed")
    store.create("twin", Role.reader, ["a"])
    store.create("twin", Role.reader, ["b"])
    with pytest.raises(ConfigError, match="revoke by id"):
        store.revoke("twin")


def test_tokens_cli_create_list_revoke_json(tmp_path: Path) -> None:
    init_project(tmp_path / "p", "p")
    runner = CliRunner()
    plugins.mount(shoal_app)  # as `shoal` does: the serve and tokens groups come from entry points
    app = shoal_app
    project = str(tmp_path / "p")
    out = runner.invoke(
        app, ["tokens", "create", "ana", "--grant", "support", "--pii", "-p", project, "--format", "json"]
    )
    assert out.exit_code == 0, out.output
    created = json.loads(out.stdout)
    assert created["role"] == "reader"
    assert created["namespaces"] == ["support"]
    assert created["pii"] is True
    assert created["token"].startswith("shoal_" + created["id"] + "_")
    listed = json.loads(runner.invoke(app, ["tokens", "list", "-p", project, "--format", "json"]).stdout)
    assert [t["id"] for t in listed] == [created["id"]]
    assert "token" not in listed[0]
    assert "hash" not in listed[0]
    revoked = runner.invoke(app, ["tokens", "revoke", created["id"], "-p", project, "--format", "json"])
    assert revoked.exit_code == 0
    assert json.loads(revoked.stdout)["active"] is False
    bad = invoke_shoal(["tokens", "create", "bob", "-p", project])  # errors are one line in `shoal` itself
    assert bad.exit_code == 1
    assert "at least one namespace" in bad.stderr
    assert runner.invoke(app, ["tokens", "--help"]).exit_code == 0
    assert runner.invoke(app, ["serve", "--help"]).exit_code == 0

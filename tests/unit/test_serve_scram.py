"""SCRAM-SHA-256 on the server side: RFC 7677's example exchange, wrong proofs, verifiers kept
beside token hashes (never the token), and tokens made before verifiers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

import pytest

from shoal.serve.scram import ScramError, ServerExchange, Verifier, make_verifier
from shoal.serve.tokens import Role, TokenStore, Unauthorized

# RFC 7677 section 3: user "user", password "pencil"
SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
CLIENT_FIRST = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
SERVER_FIRST = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
CLIENT_FINAL = (
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
SERVER_FINAL = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_rfc7677_example_exchange() -> None:
    verifier = make_verifier("pencil", salt=SALT)
    exchange = ServerExchange(Verifier.parse(str(verifier)), server_nonce=SERVER_NONCE)
    assert exchange.first(CLIENT_FIRST) == SERVER_FIRST
    assert exchange.final(CLIENT_FINAL) == SERVER_FINAL


def client_final(password: str, client_first_bare: str, server_first: str, gs2: str = "n,,") -> str:
    """What a client sends after server-first (RFC 5802 section 3), for a password."""
    attrs = dict(p.split("=", 1) for p in server_first.split(","))
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    without_proof = f"c={base64.b64encode(gs2.encode()).decode()},r={attrs['r']}"
    auth = f"{client_first_bare},{server_first},{without_proof}".encode()
    signature = hmac.new(hashlib.sha256(client_key).digest(), auth, hashlib.sha256).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    return f"{without_proof},p={base64.b64encode(proof).decode()}"


@pytest.mark.parametrize("gs2", ["n,,", "y,,"])
def test_right_password_passes_and_wrong_one_fails(gs2: str) -> None:
    verifier = make_verifier("shoal_ab_secret")
    good = ServerExchange(verifier)
    first = good.first(f"{gs2}n=,r=abc")
    assert good.final(client_final("shoal_ab_secret", "n=,r=abc", first, gs2)).startswith("v=")
    bad = ServerExchange(verifier)
    first = bad.first(f"{gs2}n=,r=abc")
    with pytest.raises(ScramError, match="wrong SCRAM proof"):
        bad.final(client_final("shoal_ab_other", "n=,r=abc", first, gs2))


@pytest.mark.parametrize(
    "client_first",
    ["p=tls-server-end-point,,n=,r=abc", "n,a=admin,n=,r=abc", "n,,n=,", "garbage", ""],
)
def test_malformed_or_channel_bound_client_first_is_refused(client_first: str) -> None:
    with pytest.raises(ScramError):
        ServerExchange(make_verifier("x")).first(client_first)


def test_replayed_nonce_or_binding_is_refused() -> None:
    exchange = ServerExchange(make_verifier("pw"))
    first = exchange.first("n,,n=,r=abc")
    final = client_final("pw", "n=,r=abc", first)
    with pytest.raises(ScramError, match="nonce"):
        exchange.final(final.replace("r=abc", "r=abd", 1))
    with pytest.raises(ScramError, match="binding"):
        exchange.final(final.replace("c=biws", "c=eSws", 1))


def test_tokens_keep_a_verifier_never_the_token(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    record, secret = store.create("ana", Role.reader, ["support"])
    text = (tmp_path / "tokens.json").read_text()
    assert secret not in text
    # The random part may itself hold "_" (URL-safe base64): split once past the id, not on each.
    random_part = secret.split("_", 2)[2]
    assert len(random_part) >= 40
    assert random_part not in text
    assert record.scram is not None
    assert record.scram.startswith("SCRAM-SHA-256$4096:")
    found = store.scram_token(record.id)
    assert found is not None
    assert found.id == record.id
    assert store.scram_token("ana") is None  # names are not SCRAM user names: any name keeps cleartext
    exchange = ServerExchange(Verifier.parse(found.scram or ""))
    first = exchange.first("n,,n=,r=xyz")
    exchange.final(client_final(secret, "n=,r=xyz", first))
    assert store.tokens()[0].public()["scram"] is True
    store.revoke(record.id)
    with pytest.raises(Unauthorized, match="revoked"):
        store.active(record.id)


def test_token_made_before_verifiers_keeps_cleartext(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    store = TokenStore(path)
    record, secret = store.create("old", Role.admin)
    body = json.loads(path.read_text())
    for t in body["tokens"]:
        t.pop("scram")
    path.write_text(json.dumps(body))
    fresh = TokenStore(path)
    assert fresh.scram_token(record.id) is None
    assert fresh.authenticate(secret).id == record.id
    assert fresh.tokens()[0].public()["scram"] is False

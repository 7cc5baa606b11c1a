"""SCRAM-SHA-256 (RFC 5802, RFC 7677) for the Postgres wire protocol, server side (ADR 0034).

A token's verifier is stored as PostgreSQL stores one in ``pg_authid.rolpassword``:
``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`` (base64). With it the server checks
the client's proof without ever holding the token, and proves to the client that it knows the
verifier (a server that only relays cannot). Channel binding (``SCRAM-SHA-256-PLUS``) is not
offered; over TLS the client's certificate check already binds the session to the server.

Tokens are ASCII, so SASLprep leaves them unchanged and is not applied.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

MECHANISM = "SCRAM-SHA-256"
#: PostgreSQL's default; tokens carry 256 random bits, so iterations are not what protects them
ITERATIONS = 4096


class ScramError(ValueError):
    """A malformed or failed exchange (answered with the same 28P01 as a wrong password)."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise ScramError("malformed base64 in SCRAM message") from exc


def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


@dataclass(frozen=True)
class Verifier:
    iterations: int
    salt: bytes
    stored_key: bytes
    server_key: bytes

    def __str__(self) -> str:
        return (
            f"{MECHANISM}${self.iterations}:{_b64(self.salt)}${_b64(self.stored_key)}:{_b64(self.server_key)}"
        )

    @classmethod
    def parse(cls, text: str) -> Verifier:
        try:
            mechanism, params, keys = text.split("$")
            iterations, salt = params.split(":")
            stored, server = keys.split(":")
            if mechanism != MECHANISM:
                raise ValueError(mechanism)
            return cls(int(iterations), _unb64(salt), _unb64(stored), _unb64(server))
        except ValueError as exc:
            raise ScramError(f"not a {MECHANISM} verifier") from exc


def make_verifier(password: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> Verifier:
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = _hmac(salted, b"Client Key")
    return Verifier(iterations, salt, hashlib.sha256(client_key).digest(), _hmac(salted, b"Server Key"))


def _attributes(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.split(","):
        key, eq, value = part.partition("=")
        if len(key) != 1 or not eq:
            raise ScramError("malformed SCRAM message")
        out.setdefault(key, value)
    return out


class ServerExchange:
    """One SCRAM-SHA-256 exchange against ``verifier``: ``first`` answers the client-first message,
    ``final`` checks the client's proof and returns the server's signature (raises ScramError)."""

    def __init__(self, verifier: Verifier, *, server_nonce: str | None = None) -> None:
        self.verifier = verifier
        self._server_nonce = server_nonce or secrets.token_urlsafe(18)  # given: test vectors only
        self._client_first_bare = ""
        self._server_first = ""
        self._gs2 = ""
        self._nonce = ""

    def first(self, client_first: str) -> str:
        # gs2-header: "n,," (no channel binding) or "y,," (client could bind, server did not offer);
        # "p=..." asks for a binding this server never advertised.
        flag, _, rest = client_first.partition(",")
        authzid, _, bare = rest.partition(",")
        if flag not in ("n", "y") or authzid or not bare:
            raise ScramError("unsupported SCRAM channel binding or malformed client-first message")
        attrs = _attributes(bare)
        client_nonce = attrs.get("r", "")
        if not client_nonce or "m" in attrs:
            raise ScramError("malformed SCRAM client-first message")
        self._gs2 = f"{flag},,"
        self._client_first_bare = bare
        self._nonce = client_nonce + self._server_nonce
        self._server_first = f"r={self._nonce},s={_b64(self.verifier.salt)},i={self.verifier.iterations}"
        return self._server_first

    def final(self, client_final: str) -> str:
        without_proof, sep, proof_b64 = client_final.rpartition(",p=")
        if not sep or not self._server_first:
            raise ScramError("malformed SCRAM client-final message")
        attrs = _attributes(without_proof)
        if attrs.get("c") != _b64(self._gs2.encode()) or attrs.get("r") != self._nonce:
            raise ScramError("SCRAM channel binding or nonce mismatch")
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        signature = _hmac(self.verifier.stored_key, auth_message)
        proof = _unb64(proof_b64)
        if len(proof) != len(signature):
            raise ScramError("malformed SCRAM proof")
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(hashlib.sha256(client_key).digest(), self.verifier.stored_key):
            raise ScramError("wrong SCRAM proof")
        return "v=" + _b64(_hmac(self.verifier.server_key, auth_message))

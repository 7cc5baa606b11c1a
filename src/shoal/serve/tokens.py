"""Access tokens: created and revoked with ``shoal tokens``, stored hashed in the project.

A token reads ``shoal_<id>_<secret>``; only the SHA-256 of the whole token is kept (tokens are 256
random bits, so a slow password hash would add nothing), and beside it a SCRAM-SHA-256 verifier
for the Postgres wire protocol (:mod:`shoal.serve.scram`, ADR 0034), so clients that connect with
the token's id as user name never send the token itself. Tokens created before the verifier
existed have none and keep using cleartext passwords on the wire. The file (``serve.tokens_file``, 0600)
also holds the server's masking key, so masked values stay stable across restarts. A running
server re-reads the file when it changes: a revoked token stops working within a request.

Roles: ``admin`` reads every namespace and personal data in clear; ``reader`` reads the namespaces
granted to it, with personal-data columns masked unless it was given the ``pii`` grant.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from shoal.errors import ConfigError, NotFoundError, ShoalError, Terminal
from shoal.query.sandbox import Access
from shoal.serve.scram import make_verifier

PREFIX = "shoal_"


class Role(StrEnum):
    admin = "admin"
    reader = "reader"


class Unauthorized(ShoalError, Terminal):
    """No token, an unknown one or a revoked one (HTTP 401; wire protocol 28P01)."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Token:
    """One token's record (never the secret itself)."""

    id: str
    name: str
    role: Role
    namespaces: tuple[str, ...] = ()
    pii: bool = False
    created: str = ""
    revoked: str | None = None
    hash: str = field(default="", repr=False)
    #: SCRAM-SHA-256 verifier for the wire protocol (scram.py); None for tokens made before it
    scram: str | None = field(default=None, repr=False)

    @property
    def active(self) -> bool:
        return self.revoked is None

    @property
    def access(self) -> Access:
        if self.role is Role.admin:
            return Access(None, pii=True)
        return Access(frozenset(self.namespaces), pii=self.pii)

    def public(self) -> dict[str, Any]:
        """The record as shown by ``shoal tokens list`` (no hash)."""
        out = asdict(self)
        out.pop("hash")
        out["scram"] = self.scram is not None
        out["role"] = str(self.role)
        out["namespaces"] = list(self.namespaces) if self.role is Role.reader else ["*"]
        out["active"] = self.active
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Token:
        return cls(
            id=str(raw["id"]),
            name=str(raw.get("name", "")),
            role=Role(raw.get("role", "reader")),
            namespaces=tuple(raw.get("namespaces") or ()),
            pii=bool(raw.get("pii", False)),
            created=str(raw.get("created", "")),
            revoked=raw.get("revoked"),
            hash=str(raw["hash"]),
            scram=raw.get("scram"),
        )


class TokenStore:
    """The token file of a project; safe to share between threads of one server."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._tokens: dict[str, Token] = {}
        self._salt = ""

    # -- reading -----------------------------------------------------------------------------------
    def _load(self) -> None:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            self._tokens, self._salt, self._mtime = {}, "", None
            return
        if mtime == self._mtime:
            return
        try:
            raw = json.loads(self.path.read_text())
            tokens = {t["id"]: Token.from_json(t) for t in raw.get("tokens", [])}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{self.path}: unreadable token file ({exc})") from exc
        self._tokens, self._salt, self._mtime = tokens, str(raw.get("salt", "")), float(mtime)

    def tokens(self) -> list[Token]:
        with self._lock:
            self._load()
            return sorted(self._tokens.values(), key=lambda t: t.created)

    @property
    def salt(self) -> str:
        """The key of the personal-data hash (created with the file)."""
        with self._lock:
            self._load()
            if not self._salt:
                self._write(self._tokens, secrets.token_hex(16))
            return self._salt

    def authenticate(self, token: str | None) -> Token:
        """The active token ``token`` is; Unauthorized otherwise (same message for every failure
        but a missing token, so probing learns nothing)."""
        if not token:
            raise Unauthorized("no token: send 'Authorization: Bearer <token>' (or the token as password)")
        parts = token.strip().split("_", 2)
        with self._lock:
            self._load()
            found = self._tokens.get(parts[1]) if len(parts) == 3 and token.startswith(PREFIX) else None
        if found is None or not hmac.compare_digest(found.hash, _hash(token.strip())) or not found.active:
            raise Unauthorized("invalid or revoked token")
        return found

    def scram_token(self, user: str) -> Token | None:
        """The token with a SCRAM verifier whose id is the wire protocol's user name; None when
        there is none (cleartext password then). Only ids, never names: a client that connects
        with any user name and a token as password keeps working as before."""
        with self._lock:
            self._load()
            found = self._tokens.get(user)
        return found if found is not None and found.scram else None

    def active(self, token_id: str) -> Token:
        """The record of ``token_id`` if it is still active (after a SCRAM proof); Unauthorized if not."""
        with self._lock:
            self._load()
            found = self._tokens.get(token_id)
        if found is None or not found.active:
            raise Unauthorized("invalid or revoked token")
        return found

    # -- changing ----------------------------------------------------------------------------------
    def create(
        self, name: str, role: Role, namespaces: Iterable[str] = (), *, pii: bool = False
    ) -> tuple[Token, str]:
        """A new token; returns its record and the secret (shown once, never stored)."""
        ns = tuple(sorted(set(namespaces)))
        if role is Role.reader and not ns:
            raise ConfigError("a reader token needs at least one namespace (--grant NAMESPACE)")
        with self._lock:
            self._load()
            token_id = secrets.token_hex(4)
            while token_id in self._tokens:
                token_id = secrets.token_hex(4)
            secret = f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
            record = Token(
                id=token_id,
                name=name,
                role=role,
                namespaces=ns if role is Role.reader else (),
                pii=pii or role is Role.admin,
                created=datetime.now(UTC).isoformat(timespec="seconds"),
                hash=_hash(secret),
                scram=str(make_verifier(secret)),
            )
            self._write({**self._tokens, token_id: record}, self._salt or secrets.token_hex(16))
        return record, secret

    def revoke(self, id_or_name: str) -> Token:
        with self._lock:
            self._load()
            matches = [t for t in self._tokens.values() if id_or_name in (t.id, t.name)]
            if not matches:
                raise NotFoundError(f"no token {id_or_name!r} in {self.path}")
            if len(matches) > 1:
                ids = ", ".join(t.id for t in matches)
                raise ConfigError(f"{len(matches)} tokens are named {id_or_name!r} ({ids}): revoke by id")
            token = matches[0]
            if token.revoked is None:
                token = replace(token, revoked=datetime.now(UTC).isoformat(timespec="seconds"))
                self._write({**self._tokens, token.id: token}, self._salt)
            return token

    def _write(self, tokens: dict[str, Token], salt: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = {
            "salt": salt,
            "tokens": [
                {**asdict(t), "role": str(t.role), "namespaces": list(t.namespaces)} for t in tokens.values()
            ],
        }
        fd, tmp = tempfile.mkstemp(prefix=".tokens-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(body, fh, indent=2)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        self._tokens, self._salt = tokens, salt
        self._mtime = float(self.path.stat().st_mtime_ns)

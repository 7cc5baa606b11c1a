"""The Postgres wire protocol (v3) over the served lake, on asyncio (ADR 0012).

Clients (psql, psycopg, SQLAlchemy, JDBC) connect with a token as password. With the token's id as
user name they authenticate with SCRAM-SHA-256 against the verifier stored beside the token's hash
(the token never crosses the wire, ADR 0034); with any other user name, or a token made before
verifiers, with a cleartext password (use TLS, ``serve.tls_cert``/``tls_key``, off the loopback).
Queries go through the same executor as the HTTP API (guard, sandbox, limits, query log).

Supported: SSL negotiation, startup, SCRAM-SHA-256 and cleartext auth, the simple query protocol,
the extended query protocol (Parse/Bind/Describe/Execute/Close/Sync/Flush, named statements and portals,
``$n`` parameters in text or binary form, row limits with PortalSuspended), CancelRequest,
transaction status (BEGIN/COMMIT/ROLLBACK are accepted: everything is read-only), SET/SHOW of
harmless session settings, and canned answers to the introspection queries drivers send on
connect (``version()``, ``current_schema()``, psycopg's type lookups). Results are sent as text,
or binary per column where Bind asks for it (pgtypes.py). Not supported: COPY, replication, MD5,
SCRAM channel binding (ADR 0034).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import re
import secrets
import ssl
import struct
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa

from shoal import __version__
from shoal.errors import ShoalError
from shoal.jsonsafe import dumps
from shoal.query import QueryError
from shoal.query.guard import DeniedTable, RefusedQuery, UnknownTable
from shoal.serve.executor import QueryCancelled, QueryTimeout, Result, ResultTooLarge, ServerBusy
from shoal.serve.pgtypes import (
    BOOL,
    BYTEA,
    DATE,
    FLOAT4,
    FLOAT8,
    INT2,
    INT4,
    INT8,
    JSON,
    NUMERIC,
    PG_EPOCH,
    TEXT,
    TIMESTAMP,
    TIMESTAMPTZ,
    TYPE_SIZE,
    UUID,
    column_binary,
    type_oid,
)
from shoal.serve.scram import MECHANISM as SCRAM
from shoal.serve.scram import ScramError, ServerExchange, Verifier
from shoal.serve.state import ServeState
from shoal.serve.tokens import Token, Unauthorized

log = logging.getLogger(__name__)

PROTOCOL_V3 = 196608
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
MAX_MESSAGE = 64 * 1024 * 1024
SERVER_VERSION = "16.0"


# -- type OIDs and text encodings ------------------------------------------------------------------
def _float_text(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return repr(v)


def _interval_text(v: timedelta) -> str:
    sign = "-" if v < timedelta(0) else ""
    v = abs(v)
    hours, rem = divmod(v.seconds, 3600)
    minutes, seconds = divmod(rem, 60)
    frac = f".{v.microseconds:06d}" if v.microseconds else ""
    days = f"{sign}{v.days} days " if v.days else ""
    clock = f"{'' if days else sign}{hours:02d}:{minutes:02d}:{seconds:02d}{frac}"
    return days + clock


def _array_item(v: Any) -> str:
    if v is None:
        return "NULL"
    text = value_text(v)
    if text == "" or re.search(r'[{},"\\\s]', text) or text.upper() == "NULL":
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def value_text(v: Any) -> str:
    """A value in Postgres text format."""
    if isinstance(v, bool):
        return "t" if v else "f"
    if isinstance(v, int | str):
        return str(v)
    if isinstance(v, float):
        return _float_text(v)
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, datetime):
        return v.isoformat(sep=" ")
    if isinstance(v, date | time):
        return v.isoformat()
    if isinstance(v, timedelta):
        return _interval_text(v)
    if isinstance(v, bytes | bytearray | memoryview):
        return "\\x" + bytes(v).hex()
    if isinstance(v, list):
        if v and all(isinstance(x, tuple) and len(x) == 2 for x in v):
            return dumps(v)  # a map: JSON object
        return "{" + ",".join(_array_item(x) for x in v) + "}"
    if isinstance(v, dict):
        return dumps(v)
    return str(v)


def column_text(column: pa.Array, oid: int) -> list[bytes | None]:
    values = column.to_pylist()
    if oid == JSON:
        return [None if v is None else dumps(v).encode() for v in values]
    return [None if v is None else value_text(v).encode() for v in values]


# -- messages --------------------------------------------------------------------------------------
def message(kind: bytes, body: bytes = b"") -> bytes:
    return kind + struct.pack("!I", len(body) + 4) + body


def cstr(text: str) -> bytes:
    return text.encode() + b"\x00"


def result_formats(codes: list[int], n: int) -> list[int]:
    """Bind's result-column format codes for ``n`` columns: none = all text, one = all alike."""
    if not codes:
        return [0] * n
    if len(codes) == 1:
        return codes * n
    if len(codes) != n:
        raise QueryError(f"bind gave {len(codes)} result formats for {n} columns")
    return codes


def row_description(schema: pa.Schema, formats: list[int] | None = None) -> bytes:
    fmts = formats if formats is not None and len(formats) == len(schema) else [0] * len(schema)
    parts = [struct.pack("!H", len(schema))]
    for f, fmt in zip(schema, fmts, strict=True):
        oid = type_oid(f.type)
        parts.append(cstr(f.name) + struct.pack("!IhIhih", 0, 0, oid, TYPE_SIZE.get(oid, -1), -1, fmt))
    return message(b"T", b"".join(parts))


def data_rows(batch: pa.RecordBatch, oids: list[int], formats: list[int] | None = None) -> bytes:
    fmts = formats if formats is not None and len(formats) == len(oids) else [0] * len(oids)
    columns = [
        column_binary(col, oid) if fmt == 1 else column_text(col, oid)
        for col, oid, fmt in zip(batch.columns, oids, fmts, strict=True)
    ]
    out = bytearray()
    head = struct.pack("!H", len(columns))
    for i in range(batch.num_rows):
        body = bytearray(head)
        for col in columns:
            v = col[i]
            if v is None:
                body += b"\xff\xff\xff\xff"
            else:
                body += struct.pack("!I", len(v)) + v
        out += b"D" + struct.pack("!I", len(body) + 4) + body
    return bytes(out)


def command_complete(tag: str) -> bytes:
    return message(b"C", cstr(tag))


def ready(status: bytes) -> bytes:
    return message(b"Z", status)


def error_response(code: str, text: str, severity: str = "ERROR") -> bytes:
    body = b"S" + cstr(severity) + b"V" + cstr(severity) + b"C" + cstr(code) + b"M" + cstr(text) + b"\x00"
    return message(b"E", body)


def parameter_status(name: str, value: str) -> bytes:
    return message(b"S", cstr(name) + cstr(value))


_SQLSTATE: list[tuple[type[BaseException], str]] = [
    (Unauthorized, "28P01"),
    (DeniedTable, "42501"),
    (RefusedQuery, "42501"),
    (UnknownTable, "42P01"),
    (QueryTimeout, "57014"),
    (QueryCancelled, "57014"),
    (ServerBusy, "53300"),
    (ResultTooLarge, "54000"),
    (QueryError, "42000"),
]


def sqlstate(exc: BaseException) -> str:
    return next((code for kind, code in _SQLSTATE if isinstance(exc, kind)), "XX000")


# -- session settings ------------------------------------------------------------------------------
#: settings a client may SET (accepted, remembered for SHOW; none changes what the engine does)
HARMLESS = {
    "application_name": "",
    "client_encoding": "UTF8",
    "datestyle": "ISO, MDY",
    "extra_float_digits": "1",
    "intervalstyle": "postgres",
    "search_path": "main",
    "statement_timeout": "0",
    "lock_timeout": "0",
    "idle_in_transaction_session_timeout": "0",
    "client_min_messages": "notice",
    "bytea_output": "hex",
    "timezone": "UTC",
    "standard_conforming_strings": "on",
    "default_transaction_read_only": "on",
    "transaction_read_only": "on",
    "transaction isolation level": "read committed",
    "transaction_isolation": "read committed",
    "server_version": SERVER_VERSION,
    "server_version_num": "160000",
    "server_encoding": "UTF8",
    "integer_datetimes": "on",
    "max_identifier_length": "63",
    "lc_collate": "C",
    "lc_ctype": "C",
    "lc_messages": "C",
    "lc_monetary": "C",
    "lc_numeric": "C",
    "lc_time": "C",
    "jit": "off",
    "geqo": "on",
}
READ_ONLY_SETTINGS = {"server_version", "server_version_num", "server_encoding", "integer_datetimes"}
STARTUP_STATUS = [
    "server_version",
    "server_encoding",
    "client_encoding",
    "datestyle",
    "timezone",
    "integer_datetimes",
    "standard_conforming_strings",
    "intervalstyle",
    "application_name",
]

_SET = re.compile(r"^set\s+(?:session\s+|local\s+)?([\w.]+|time\s+zone)\s*(?:=|\bto\b)?\s*(.*)$", re.I | re.S)
_DECLARE = re.compile(
    r'^declare\s+("?\w+"?)\s+(?:binary\s+)?(?:(?:no\s+)?scroll\s+)?cursor\s+(?:(?:with|without)\s+hold\s+)?for\s+(.+)$',
    re.I | re.S,
)
_FETCH = re.compile(r'^fetch\s+((?:forward\s+)?(?:all|\d+)|next|forward)?\s*(?:from|in)?\s+("?\w+"?)$', re.I)
_SHOW = re.compile(r"^show\s+(.+)$", re.I | re.S)
_NOOP = re.compile(
    r"^(begin|start\s+transaction|commit|end|rollback|abort|discard\s+all|deallocate|close|unlisten|reset"
    r"|savepoint|release"
    r"|set\s+transaction|set\s+session\s+characteristics)\b(.*)$",
    re.I | re.S,
)


@dataclass
class Canned:
    """An answer made here instead of by the engine."""

    tag: str
    schema: pa.Schema | None = None
    rows: list[list[Any]] = field(default_factory=list)
    error: tuple[str, str] | None = None
    status: bytes | None = None  # the transaction status after it


def _strip(sql: str) -> str:
    text = re.sub(r"--[^\n]*", " ", sql)
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"\s+", " ", text).strip().rstrip(";").strip()


def canned(sql: str, settings: dict[str, str]) -> Canned | None:
    """The session-level statements answered without the engine, or None."""
    text = _strip(sql)
    low = text.lower()
    if not text:
        return Canned("")
    noop = _NOOP.match(text)
    if noop:
        word = noop.group(1).lower().split()[0]
        if word in ("begin", "start"):
            return Canned("BEGIN", status=b"T")
        if word in ("commit", "end"):
            return Canned("COMMIT", status=b"I")
        if word in ("rollback", "abort"):
            if re.match(r"^\s*to\b", noop.group(2), re.I):  # ROLLBACK TO SAVEPOINT: the block goes on
                return Canned("ROLLBACK", status=b"T")
            return Canned("ROLLBACK", status=b"I")
        if word in ("savepoint", "release"):
            return Canned(word.upper())
        if word == "reset":
            name = noop.group(2).strip().lower()
            if name == "all":
                settings.clear()
            else:
                settings.pop(name, None)
            return Canned("RESET")
        return Canned(
            {"discard": "DISCARD ALL", "deallocate": "DEALLOCATE", "close": "CLOSE CURSOR"}.get(word, "SET")
        )
    setting = _SET.match(text)
    if setting:
        name = re.sub(r"\s+", "", setting.group(1).lower()).replace("timezone", "timezone")
        name = "timezone" if name in ("timezone", "time zone") else name
        value = setting.group(2).strip().strip("'\"")
        if name not in HARMLESS or name in READ_ONLY_SETTINGS:
            return Canned(
                "", error=("42501", f"SET {name} is not allowed on this server (read-only, locked settings)")
            )
        if name == "timezone" and value.upper() not in ("UTC", "ETC/UTC", "GMT", "Z", "0", "DEFAULT"):
            return Canned("", error=("0A000", f"time zone {value!r} is not supported: results are in UTC"))
        settings[name] = value
        return Canned("SET")
    show = _SHOW.match(text)
    if show:
        name = show.group(1).strip().lower()
        if name == "all":
            schema = pa.schema(
                [("name", pa.string()), ("setting", pa.string()), ("description", pa.string())]
            )
            rows = [[k, settings.get(k, v), ""] for k, v in sorted(HARMLESS.items())]
            return Canned("SHOW", schema, rows)
        key = "timezone" if name == "time zone" else name
        if key not in HARMLESS:
            return Canned("", error=("42704", f'unrecognized configuration parameter "{name}"'))
        return Canned(
            "SHOW", pa.schema([(key.replace(" ", "_"), pa.string())]), [[settings.get(key, HARMLESS[key])]]
        )
    if re.fullmatch(r"select (pg_catalog\.)?version\(\)( as \w+)?", low):
        version = f"PostgreSQL {SERVER_VERSION} (shoal {__version__}; DuckDB engine)"
        return Canned("SELECT 1", pa.schema([("version", pa.string())]), [[version]])
    if re.fullmatch(r"select (pg_catalog\.)?current_schema\(\)( as \w+)?", low):
        return Canned("SELECT 1", pa.schema([("current_schema", pa.string())]), [["main"]])
    if "pg_type" in low and "regtype" in low:
        # psycopg's TypeInfo.fetch (hstore, custom types): no such types here
        names = ("name", "oid", "array_oid", "regtype", "delimiter")
        schema = pa.schema([(n, pa.int64() if "oid" in n else pa.string()) for n in names])
        return Canned("SELECT 0", schema, [])
    return None


# -- parameters --------------------------------------------------------------------------------------


def _numeric_binary(raw: bytes) -> Decimal:
    ndigits, weight, sign, dscale = struct.unpack_from("!hhHh", raw)
    if sign == 0xC000:
        return Decimal("NaN")
    digits = struct.unpack_from(f"!{ndigits}H", raw, 8)
    value = Decimal(0)
    for i, d in enumerate(digits):
        value += Decimal(d).scaleb(4 * (weight - i))
    value = value.quantize(Decimal(1).scaleb(-dscale)) if dscale >= 0 else value
    return -value if sign == 0x4000 else value


def decode_param(raw: bytes | None, oid: int, fmt: int) -> Any:
    if raw is None:
        return None
    if fmt == 1:
        if oid in (INT2, INT4, INT8):
            return int.from_bytes(raw, "big", signed=True)
        if oid == FLOAT4:
            return struct.unpack("!f", raw)[0]
        if oid == FLOAT8:
            return struct.unpack("!d", raw)[0]
        if oid == BOOL:
            return raw != b"\x00"
        if oid == BYTEA:
            return bytes(raw)
        if oid in (TEXT, 1043, 0, 19, 18, JSON, 1042):
            return raw.decode()
        if oid == DATE:
            return PG_EPOCH.date() + timedelta(days=int.from_bytes(raw, "big", signed=True))
        if oid in (TIMESTAMP, TIMESTAMPTZ):
            when = PG_EPOCH + timedelta(microseconds=int.from_bytes(raw, "big", signed=True))
            return when if oid == TIMESTAMPTZ else when.replace(tzinfo=None)
        if oid == NUMERIC:
            return _numeric_binary(raw)
        if oid == UUID:
            return str(uuid.UUID(bytes=bytes(raw)))
        if oid == 3802:  # jsonb: a version byte, then the text
            return raw[1:].decode()
        raise QueryError(f"binary parameters of type oid {oid} are not supported: send them as text")
    text = raw.decode()
    if oid in (INT2, INT4, INT8, 26):
        return int(text)
    if oid in (FLOAT4, FLOAT8):
        return float(text)
    if oid == NUMERIC:
        return Decimal(text)
    if oid == BOOL:
        return text.lower() in ("t", "true", "1", "y", "yes", "on")
    if oid == BYTEA:
        return bytes.fromhex(text[2:]) if text.startswith("\\x") else text.encode()
    if oid == DATE:
        return date.fromisoformat(text)
    if oid in (TIMESTAMP, TIMESTAMPTZ):
        return datetime.fromisoformat(text)
    return text


def parameter_count(sql: str) -> int:
    found = [int(n) for n in re.findall(r"\$(\d+)", re.sub(r"'(?:[^']|'')*'", "''", sql))]
    return max(found, default=0)


# -- connections ------------------------------------------------------------------------------------
class ProtocolError(ShoalError):
    """The client sent something the protocol does not allow here."""


@dataclass
class Statement:
    sql: str
    param_oids: list[int]


@dataclass
class Portal:
    statement: Statement
    params: list[Any]
    canned: Canned | None = None
    result: Result | None = None
    stack: ExitStack | None = None
    batches: Iterator[pa.RecordBatch] | None = None
    pending: pa.RecordBatch | None = None
    oids: list[int] = field(default_factory=list)
    #: Bind's result format codes (0 text, 1 binary), as sent: see result_formats()
    format_codes: list[int] = field(default_factory=list)
    sent_rows: int = 0
    done: bool = False
    #: FETCH n FROM cursor: the cursor's portal and n
    fetch: tuple[Portal, int | None] | None = None

    def close(self) -> None:
        if self.result is not None and not self.done:
            self.result.cancel()
        if self.stack is not None:
            self.stack.close()
            self.stack = None
        self.done = True


class Connection:
    """One client connection."""

    def __init__(
        self,
        state: ServeState,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        tls: ssl.SSLContext | None,
        registry: dict[tuple[int, int], Connection],
    ) -> None:
        self.state = state
        self.reader = reader
        self.writer = writer
        self.tls = tls
        self.registry = registry
        self.token: Token | None = None
        self.status = b"I"
        self.settings: dict[str, str] = {}
        self.statements: dict[str, Statement] = {}
        self.portals: dict[str, Portal] = {}
        self.cursors: dict[str, Portal] = {}
        self.key = (secrets.randbits(31), secrets.randbits(31))
        self.running: Result | None = None
        self.skip_to_sync = False

    # -- framing --
    async def read_exact(self, n: int) -> bytes:
        return await self.reader.readexactly(n)

    async def read_message(self) -> tuple[bytes, bytes]:
        head = await self.read_exact(5)
        kind, length = head[:1], struct.unpack("!I", head[1:])[0]
        if length < 4 or length > MAX_MESSAGE:
            raise ProtocolError(f"message length {length} out of range")
        return kind, await self.read_exact(length - 4)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    # -- startup --
    async def startup(self) -> bool:
        while True:
            length = struct.unpack("!I", await self.read_exact(4))[0]
            if length < 8 or length > 10_000:
                raise ProtocolError(f"startup packet length {length} out of range")
            body = await self.read_exact(length - 4)
            code = struct.unpack("!I", body[:4])[0]
            if code == SSL_REQUEST:
                if self.tls is None:
                    await self.send(b"N")
                    continue
                await self.send(b"S")
                await self.writer.start_tls(self.tls)
                continue
            if code == GSSENC_REQUEST:
                await self.send(b"N")
                continue
            if code == CANCEL_REQUEST:
                pid, secret = struct.unpack("!II", body[4:12])
                target = self.registry.get((pid, secret))
                if target is not None and target.running is not None:
                    target.running.cancel()
                return False
            if code != PROTOCOL_V3:
                await self.send(
                    error_response("0A000", f"unsupported frontend protocol {code >> 16}.{code & 0xFFFF}")
                )
                return False
            params = body[4:].split(b"\x00")
            startup = {
                params[i].decode(errors="replace"): params[i + 1].decode(errors="replace")
                for i in range(0, len(params) - 1, 2)
                if params[i]
            }
            if "application_name" in startup:
                self.settings["application_name"] = startup["application_name"]
            return await self.authenticate(startup)

    async def authenticate(self, startup: dict[str, str]) -> bool:
        """SCRAM-SHA-256 when the user name names a token with a verifier (its id), else a
        cleartext password (tokens made before verifiers; any user name) unless
        ``serve.pg_cleartext`` is off. Either way a wrong or revoked token gets the same FATAL 28P01."""
        user = startup.get("user", "")
        scram_token = await asyncio.to_thread(self.state.tokens.scram_token, user)
        try:
            if scram_token is not None and scram_token.scram is not None:
                await self.scram(Verifier.parse(scram_token.scram))
                self.token = await asyncio.to_thread(self.state.tokens.active, scram_token.id)
            elif not self.state.settings.pg_cleartext:
                text = (
                    f'password authentication failed for user "{user}": this server accepts '
                    "SCRAM-SHA-256 only (serve.pg_cleartext: false): connect with the token id as user name"
                )
                await self.send(error_response("28P01", text, "FATAL"))
                return False
            else:
                await self.send(message(b"R", struct.pack("!I", 3)))  # AuthenticationCleartextPassword
                kind, body = await self.read_message()
                if kind != b"p":
                    raise ProtocolError("expected a password message")
                password = body.rstrip(b"\x00").decode(errors="replace")
                self.token = await asyncio.to_thread(self.state.tokens.authenticate, password)
        except (Unauthorized, ScramError) as exc:
            reason = exc if isinstance(exc, Unauthorized) else "invalid or revoked token"
            text = f'password authentication failed for user "{user}": {reason}'
            await self.send(error_response("28P01", text, "FATAL"))
            return False
        out = [message(b"R", struct.pack("!I", 0))]
        for name in STARTUP_STATUS:
            out.append(parameter_status(name, self.settings.get(name, HARMLESS[name])))
        out.append(parameter_status("is_superuser", "off"))
        out.append(parameter_status("session_authorization", self.token.name))
        out.append(message(b"K", struct.pack("!II", *self.key)))
        out.append(ready(self.status))
        await self.send(b"".join(out))
        self.registry[self.key] = self
        return True

    async def scram(self, verifier: Verifier) -> None:
        """The SASL exchange (AuthenticationSASL, SASLContinue, SASLFinal); ScramError if it fails."""
        await self.send(message(b"R", struct.pack("!I", 10) + cstr(SCRAM) + b"\x00"))
        kind, body = await self.read_message()
        if kind != b"p":
            raise ProtocolError("expected a SASLInitialResponse message")
        mechanism, _, rest = body.partition(b"\x00")
        if mechanism.decode(errors="replace") != SCRAM or len(rest) < 4:
            raise ScramError(f"unsupported SASL mechanism (this server offers {SCRAM})")
        size = struct.unpack("!i", rest[:4])[0]
        exchange = ServerExchange(verifier)
        first = exchange.first(rest[4 : 4 + size].decode(errors="replace") if size > 0 else "")
        await self.send(message(b"R", struct.pack("!I", 11) + first.encode()))
        kind, body = await self.read_message()
        if kind != b"p":
            raise ProtocolError("expected a SASLResponse message")
        final = exchange.final(body.decode(errors="replace"))
        await self.send(message(b"R", struct.pack("!I", 12) + final.encode()))

    # -- main loop --
    async def serve(self) -> None:
        try:
            if not await self.startup():
                return
            while True:
                kind, body = await self.read_message()
                if kind == b"X":
                    return
                try:
                    await self.dispatch(kind, body)
                except ProtocolError:
                    raise
                except (ShoalError, ValueError, UnicodeDecodeError, struct.error, IndexError) as exc:
                    await self.fail(exc)
        finally:
            self.registry.pop(self.key, None)
            for portal in [*self.portals.values(), *self.cursors.values()]:
                await asyncio.to_thread(portal.close)
            self.portals.clear()
            self.cursors.clear()

    async def fail(self, exc: BaseException) -> None:
        code = sqlstate(exc) if isinstance(exc, ShoalError) else "08P01"
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if self.status == b"T":
            self.status = b"E"
        if self.in_extended:
            self.skip_to_sync = True
            await self.send(error_response(code, text))
        else:
            await self.send(error_response(code, text) + ready(self.status))

    in_extended = False

    async def dispatch(self, kind: bytes, body: bytes) -> None:
        if kind == b"Q":
            self.in_extended = False
            await self.simple_query(body.rstrip(b"\x00").decode())
            return
        self.in_extended = True
        if kind == b"S":
            self.skip_to_sync = False
            await self.close_unnamed()
            await self.send(ready(self.status))
            return
        if self.skip_to_sync:
            return
        if kind == b"P":
            await self.parse(body)
        elif kind == b"B":
            await self.bind(body)
        elif kind == b"D":
            await self.describe(body)
        elif kind == b"E":
            await self.execute(body)
        elif kind == b"C":
            what, name = body[:1], body[1:].split(b"\x00")[0].decode()
            if what == b"S":
                self.statements.pop(name, None)
            else:
                portal = self.portals.pop(name, None)
                if portal is not None:
                    await asyncio.to_thread(portal.close)
            await self.send(message(b"3"))
        elif kind == b"H":
            await self.writer.drain()
        else:
            raise ProtocolError(f"unsupported message type {kind!r}")

    async def close_unnamed(self) -> None:
        portal = self.portals.pop("", None)
        if portal is not None:
            await asyncio.to_thread(portal.close)

    # -- simple protocol --
    async def simple_query(self, sql: str) -> None:
        if self.status == b"E" and not re.match(r"^\s*(rollback|abort|commit|end)\b", sql, re.I):
            await self.send(
                error_response("25P02", "current transaction is aborted, commands ignored until end of block")
                + ready(self.status)
            )
            return
        portal = Portal(Statement(sql, []), [])
        try:
            await self.start(portal)
            if portal.canned is not None and portal.canned.tag == "" and portal.canned.error is None:
                await self.send(message(b"I") + ready(self.status))
                return
            if portal.canned is None or portal.canned.schema is not None:
                await self.send(row_description(self.schema_of(portal)))
            await self.stream(portal, 0)
        except (ShoalError, ValueError) as exc:
            await asyncio.to_thread(portal.close)
            await self.fail(exc)
            return
        await asyncio.to_thread(portal.close)
        await self.send(ready(self.status))

    # -- extended protocol --
    async def parse(self, body: bytes) -> None:
        name, rest = body.split(b"\x00", 1)
        sql, rest = rest.split(b"\x00", 1)
        count = struct.unpack("!H", rest[:2])[0]
        oids = list(struct.unpack(f"!{count}I", rest[2 : 2 + 4 * count]))
        self.statements[name.decode()] = Statement(sql.decode(), oids)
        await self.send(message(b"1"))

    async def bind(self, body: bytes) -> None:
        portal_name, rest = body.split(b"\x00", 1)
        stmt_name, rest = rest.split(b"\x00", 1)
        statement = self.statements.get(stmt_name.decode())
        if statement is None:
            raise QueryError(f'prepared statement "{stmt_name.decode()}" does not exist')
        pos = 0
        nfmt = struct.unpack_from("!H", rest, pos)[0]
        pos += 2
        fmts = list(struct.unpack_from(f"!{nfmt}h", rest, pos))
        pos += 2 * nfmt
        nparams = struct.unpack_from("!H", rest, pos)[0]
        pos += 2
        values: list[Any] = []
        for i in range(nparams):
            size = struct.unpack_from("!i", rest, pos)[0]
            pos += 4
            raw = None if size < 0 else rest[pos : pos + size]
            pos += max(size, 0)
            fmt = fmts[i] if len(fmts) > 1 else (fmts[0] if fmts else 0)
            oid = statement.param_oids[i] if i < len(statement.param_oids) else 0
            values.append(decode_param(raw, oid, fmt))
        nres = struct.unpack_from("!H", rest, pos)[0] if pos + 2 <= len(rest) else 0
        codes = list(struct.unpack_from(f"!{nres}h", rest, pos + 2)) if nres else []
        if any(c not in (0, 1) for c in codes):
            raise ProtocolError(f"unknown result format code in {codes}")
        old = self.portals.pop(portal_name.decode(), None)
        if old is not None:
            await asyncio.to_thread(old.close)
        self.portals[portal_name.decode()] = Portal(statement, values, format_codes=codes)
        await self.send(message(b"2"))

    async def describe(self, body: bytes) -> None:
        what, name = body[:1], body[1:].split(b"\x00")[0].decode()
        if what == b"S":
            statement = self.statements.get(name)
            if statement is None:
                raise QueryError(f'prepared statement "{name}" does not exist')
            count = max(parameter_count(statement.sql), len(statement.param_oids))
            oids = [
                statement.param_oids[i] if i < len(statement.param_oids) and statement.param_oids[i] else TEXT
                for i in range(count)
            ]
            out = message(b"t", struct.pack("!H", count) + b"".join(struct.pack("!I", o) for o in oids))
            schema = await self.describe_statement(statement, count)
            await self.send(out + (row_description(schema) if schema is not None else message(b"n")))
            return
        portal = self.portals.get(name)
        if portal is None:
            raise QueryError(f'portal "{name}" does not exist')
        await self.start(portal)
        if portal.canned is not None and portal.canned.schema is None:
            await self.send(message(b"n"))
        else:
            schema = self.schema_of(portal)
            await self.send(row_description(schema, result_formats(portal.format_codes, len(schema))))

    async def describe_statement(self, statement: Statement, count: int) -> pa.Schema | None:
        found = canned(statement.sql, dict(self.settings))
        if found is not None:
            if found.error is not None:
                raise QueryError(found.error[1])
            return found.schema
        portal = Portal(statement, [None] * count)
        try:
            await self.start(portal, limit_zero=True)
            return self.schema_of(portal)
        finally:
            await asyncio.to_thread(portal.close)

    async def execute(self, body: bytes) -> None:
        name, rest = body.split(b"\x00", 1)
        max_rows = struct.unpack("!I", rest[:4])[0]
        portal = self.portals.get(name.decode())
        if portal is None:
            raise QueryError(f'portal "{name.decode()}" does not exist')
        await self.start(portal)
        if portal.canned is not None and portal.canned.tag == "" and portal.canned.error is None:
            await self.send(message(b"I"))
            return
        await self.stream(portal, max_rows)

    # -- running --
    def set_running(self, result: Result) -> None:
        self.running = result

    async def cursor_statement(self, portal: Portal) -> bool:
        """DECLARE name CURSOR FOR query / FETCH n FROM name / CLOSE name (SQL-level cursors)."""
        text = _strip(portal.statement.sql)
        declare = _DECLARE.match(text)
        if declare:
            name = declare.group(1).strip('"')
            inner = Portal(Statement(declare.group(2), portal.statement.param_oids), portal.params)
            await self.start(inner)
            old = self.cursors.pop(name, None)
            if old is not None:
                await asyncio.to_thread(old.close)
            self.cursors[name] = inner
            self.portals[name] = inner  # a declared cursor is also a protocol-level portal
            portal.canned = Canned("DECLARE CURSOR")
            return True
        fetch = _FETCH.match(text)
        if fetch:
            how, name = (fetch.group(1) or "").strip().lower(), fetch.group(2).strip('"')
            cursor = self.cursors.get(name)
            if cursor is None:
                raise QueryError(f'cursor "{name}" does not exist')
            count: int | None = 1
            if how in ("all", "forward all"):
                count = None
            elif how:
                digits = re.findall(r"\d+", how)
                count = int(digits[0]) if digits else 1
            portal.fetch = (cursor, count)
            return True
        close = re.match(r'^close\s+("?[\w]+"?)$', text, re.I)
        if close and close.group(1).lower() != "all":
            cursor = self.cursors.pop(close.group(1).strip('"'), None)
            self.portals.pop(close.group(1).strip('"'), None)
            if cursor is not None:
                await asyncio.to_thread(cursor.close)
            portal.canned = Canned("CLOSE CURSOR")
            return True
        return False

    def schema_of(self, portal: Portal) -> pa.Schema:
        if portal.fetch is not None:
            return self.schema_of(portal.fetch[0])
        if portal.canned is not None:
            return portal.canned.schema or pa.schema([])
        assert portal.result is not None
        return portal.result.schema

    async def start(self, portal: Portal, *, limit_zero: bool = False) -> None:
        """Answer a canned statement, or start the query (once per portal)."""
        if portal.canned is not None or portal.result is not None or portal.fetch is not None:
            return
        if await self.cursor_statement(portal):
            return
        found = canned(portal.statement.sql, self.settings)
        if found is not None:
            if found.error is not None:
                raise (
                    QueryError(found.error[1]) if found.error[0] != "42501" else RefusedQuery(found.error[1])
                )
            if found.status is not None:
                if found.tag == "BEGIN":
                    self.status = b"T" if self.status == b"I" else self.status
                elif found.status == b"T":  # ROLLBACK TO SAVEPOINT ends the error, not the block
                    self.status = b"T" if self.status == b"E" else self.status
                else:
                    self.status = found.status
            portal.canned = found
            return
        if self.status == b"E":
            raise QueryError("current transaction is aborted, commands ignored until end of block")
        assert self.token is not None
        token = self.token
        sql = portal.statement.sql
        if limit_zero:
            sql = f"SELECT * FROM ({_strip(sql)}) AS shoal_describe LIMIT 0"
        params = portal.params or None

        release = await self.state.gate.acquire()

        def begin() -> tuple[Result, ExitStack]:
            with ExitStack() as stack:
                stack.callback(release)
                result = stack.enter_context(
                    self.state.executor.query(token, sql, params, protocol="pg", on_start=self.set_running)
                )
                return result, stack.pop_all()

        try:
            result, portal.stack = await asyncio.to_thread(begin)
        except BaseException:
            release()
            raise
        portal.result = self.running = result
        portal.batches = result.batches()
        portal.oids = [type_oid(f.type) for f in result.schema]

    async def stream(self, portal: Portal, max_rows: int) -> None:
        """Send DataRows (up to ``max_rows`` when > 0, then PortalSuspended) and the completion."""
        if portal.canned is not None:
            c = portal.canned
            if c.schema is not None and c.rows:
                batch = pa.RecordBatch.from_pylist(
                    [dict(zip(c.schema.names, r, strict=True)) for r in c.rows], c.schema
                )
                oids = [type_oid(f.type) for f in c.schema]
                await self.send(data_rows(batch, oids, result_formats(portal.format_codes, len(oids))))
            tag = c.tag if c.schema is None else f"{c.tag.split()[0]} {len(c.rows)}"
            await self.send(command_complete(tag))
            return
        if portal.fetch is not None:
            cursor, count = portal.fetch
            sent, _ = await self.send_rows(cursor, count)
            await self.send(command_complete(f"FETCH {sent}"))
            return
        _, finished = await self.send_rows(portal, max_rows if max_rows > 0 else None)
        if not finished:
            await self.send(message(b"s"))  # PortalSuspended
            return
        self.running = None
        await self.send(command_complete(f"SELECT {portal.sent_rows}"))

    async def send_rows(self, portal: Portal, limit: int | None) -> tuple[int, bool]:
        """Send up to ``limit`` rows (all when None); returns (rows sent, whether the result ended)."""
        if portal.batches is None or portal.done:
            return 0, True
        budget = limit

        def next_batch() -> pa.RecordBatch | None:
            if portal.pending is not None:
                batch, portal.pending = portal.pending, None
                return batch
            assert portal.batches is not None
            return next(portal.batches, None)

        sent = 0
        while budget is None or budget > 0:
            batch = await asyncio.to_thread(next_batch)
            if batch is None:
                portal.done = True
                return sent, True
            if budget is not None and batch.num_rows > budget:
                portal.pending = batch.slice(budget)
                batch = batch.slice(0, budget)
            await self.send(
                data_rows(batch, portal.oids, result_formats(portal.format_codes, len(portal.oids)))
            )
            portal.sent_rows += batch.num_rows
            sent += batch.num_rows
            if budget is not None:
                budget -= batch.num_rows
        return sent, False


class WireServer:
    """The listener and its client connections (closed together)."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.tasks: set[asyncio.Task[Any]] = set()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in list(self.writers):
            writer.close()

    async def wait_closed(self) -> None:
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=10)
        if self.server is not None:
            await self.server.wait_closed()


async def start_wire_server(
    state: ServeState, host: str, port: int, tls: ssl.SSLContext | None = None
) -> WireServer:
    """Listen on ``host:port``; each client is served by its own task on the running loop."""
    registry: dict[tuple[int, int], Connection] = {}
    ids = itertools.count(1)
    wire = WireServer()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(state, reader, writer, tls, registry)
        state.metrics.wire_connections.inc()
        number = next(ids)
        task = asyncio.current_task()
        if task is not None:
            wire.tasks.add(task)
        wire.writers.add(writer)
        try:
            await conn.serve()
        except (asyncio.IncompleteReadError, ConnectionError, ProtocolError, ssl.SSLError) as exc:
            log.debug("wire connection %d closed: %s", number, exc)
            if isinstance(exc, ProtocolError):
                with contextlib.suppress(ConnectionError, RuntimeError):
                    writer.write(error_response("08P01", str(exc), "FATAL"))
        except Exception:  # one client's failure must never stop the listener
            log.exception("wire connection %d failed", number)
        finally:
            state.metrics.wire_connections.dec()
            wire.writers.discard(writer)
            if task is not None:
                wire.tasks.discard(task)
            with contextlib.suppress(ConnectionError, RuntimeError, ssl.SSLError):
                writer.close()

    wire.server = await asyncio.start_server(handle, host, port)
    return wire

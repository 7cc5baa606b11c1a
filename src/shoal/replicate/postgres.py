"""PostgreSQL as a replication source: keyset snapshots, changes from a ``pgoutput`` slot.

Changes are read with the SQL interface of logical decoding (ADR 0017):
``pg_logical_slot_peek_binary_changes`` decodes whole transactions from the slot without
consuming them, and the slot is advanced (``pg_replication_slot_advance``) only after the lake
committed them. A crash in between re-reads transactions the lake already has, and their LSN
(the end of the commit) says to skip them. It needs only an ordinary connection (psycopg 3 has
no streaming-replication protocol) and the REPLICATION attribute or ownership of the slot.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg import sql

from shoal.lake import progress
from shoal.query.federation import Endpoint
from shoal.replicate.errors import (
    CredentialsRejected,
    ReplicationNotConfigured,
    SourceUnavailable,
    SyncError,
)
from shoal.replicate.model import Change, SourceTable, Transaction
from shoal.replicate.pgoutput import UNCHANGED, Decoder
from shoal.replicate.source import Source
from shoal.replicate.typemap import check_ident, pg_column, pg_select_expr


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def lsn_to_int(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def int_to_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


class PostgresSource(Source):
    """One PostgreSQL database (schema ``endpoint.schema``) as a source."""

    scanner = "postgres"
    scanner_setup = "SET TimeZone = 'UTC'"

    def __init__(
        self, endpoint: Endpoint, *, slot: str | None = None, publication: str | None = None
    ) -> None:
        super().__init__(endpoint)
        self.slot = check_ident(slot or f"shoal_{endpoint.name}", "slot")
        self.publication = check_ident(publication or f"shoal_{endpoint.name}", "publication")
        self._con: psycopg.Connection[Any] | None = None
        self._tables: list[str] = []
        self._decoder = Decoder()

    @property
    def namespace(self) -> str:
        return self.endpoint.schema

    def quote(self, name: str) -> str:
        return _q(name)

    def relation(self, table: str) -> str:
        return f"{_q(self.endpoint.schema)}.{_q(table)}"

    def select_list(self, table: SourceTable) -> list[str]:
        return [pg_select_expr(c) for c in table.columns]

    def literal(self, value: Any) -> str:
        return sql.Literal(value).as_string(self.connection())

    def _unavailable(self, exc: BaseException) -> SyncError:
        text = f"database {self.name} ({self.endpoint.where()}): " + self.endpoint.scrub(
            " ".join(str(exc).split())
        )
        if "authentication failed" in str(exc) or "no pg_hba.conf entry" in str(exc):
            return CredentialsRejected(text)
        return SourceUnavailable(text)

    def connection(self) -> psycopg.Connection[Any]:
        if self._con is None or self._con.closed:
            ep = self.endpoint
            params: dict[str, Any] = {
                "host": ep.host, "port": ep.port, "user": ep.user, "dbname": ep.database,
                "connect_timeout": 5, "autocommit": True,
            }  # fmt: skip
            if ep.password:
                params["password"] = ep.password
            if ep.tls:
                params["sslmode"] = ep.tls
            if ep.tls_ca:
                params["sslrootcert"] = ep.tls_ca
            try:
                self._con = psycopg.connect(**params)
            except psycopg.OperationalError as exc:
                raise self._unavailable(exc) from None
            # timestamptz values (typed or pgoutput text) in UTC
            self._con.execute("SET TimeZone = 'UTC'")
        return self._con

    def query(self, sql: str, args: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        try:
            cur = self.connection().execute(sql, args)
            return list(cur.fetchall()) if cur.description else []
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self.close()
            raise self._unavailable(exc) from None

    def position_key(self, table: str) -> str:
        return progress.lsn(self.name, table)

    # -- tables ---------------------------------------------------------------------------------
    def describe(self, tables: Sequence[str], *, need_key: bool = True) -> list[SourceTable]:
        out = []
        schema = self.endpoint.schema
        for table in tables:
            check_ident(table, "table")
            cols = self.query(
                "SELECT column_name, data_type, udt_name, numeric_precision, numeric_scale "
                "FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
                "ORDER BY ordinal_position",
                [schema, table],
            )
            if not cols:
                raise SyncError(f"database {self.name}: no table {schema}.{table}")
            keys = self.query(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary "
                "ORDER BY array_position(i.indkey, a.attnum)",
                [f"{_q(schema)}.{_q(table)}"],
            )
            key = tuple(str(r[0]) for r in keys)
            self.require_key(table, key, need_key)
            columns = tuple(pg_column(str(c[0]), str(c[1]), str(c[2]), c[3], c[4]) for c in cols)
            out.append(SourceTable(table, columns, key))
            if table not in self._tables:
                self._tables.append(table)
        return out

    def stream(self, table: SourceTable, rows: int) -> Iterator[list[dict[str, Any]]]:
        names = table.column_names
        select = ", ".join(pg_select_expr(c) for c in table.columns)
        con = self.connection()
        try:
            # a server-side cursor lives in a transaction: rows arrive ``rows`` at a time
            with con.transaction(), con.cursor(name=f"shoal_full_{table.name}") as cur:
                cur.execute(f"SELECT {select} FROM {self.relation(table.name)}")
                while batch := cur.fetchmany(rows):
                    yield [dict(zip(names, r, strict=True)) for r in batch]
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self.close()
            raise self._unavailable(exc) from None

    # -- logical decoding ---------------------------------------------------------------------------
    def check_replication(self) -> None:
        level = str(self.query("SHOW wal_level")[0][0])
        if level != "logical":
            raise ReplicationNotConfigured(
                f"database {self.name}: change capture needs wal_level=logical; the server has "
                f"wal_level={level} (or use sync mode: cursor)"
            )

    def _ensure_publication(self) -> None:
        schema = self.endpoint.schema
        have = {
            str(r[0])
            for r in self.query(
                "SELECT tablename FROM pg_publication_tables WHERE pubname = %s AND schemaname = %s",
                [self.publication, schema],
            )
        }
        exists = bool(self.query("SELECT 1 FROM pg_publication WHERE pubname = %s", [self.publication]))
        missing = [t for t in self._tables if t not in have]
        names = ", ".join(f"{_q(schema)}.{_q(t)}" for t in missing)
        try:
            if not exists:
                self.query(f"CREATE PUBLICATION {_q(self.publication)} FOR TABLE {names}")
            elif missing:
                self.query(f"ALTER PUBLICATION {_q(self.publication)} ADD TABLE {names}")
        except psycopg.errors.InsufficientPrivilege as exc:
            raise ReplicationNotConfigured(
                f"database {self.name}: cannot create publication {self.publication}: {exc}".splitlines()[0]
            ) from None

    def _ensure_slot(self) -> None:
        if self.query("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", [self.slot]):
            return
        try:
            self.query("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", [self.slot])
        except psycopg.errors.DuplicateObject:
            return
        except psycopg.Error as exc:
            raise ReplicationNotConfigured(
                f"database {self.name}: cannot create replication slot {self.slot}: "
                f"{' '.join(str(exc).split())}"
            ) from None

    def start_position(self) -> int:
        self.check_replication()
        self._ensure_publication()
        self._ensure_slot()
        return lsn_to_int(str(self.query("SELECT pg_current_wal_lsn()::text")[0][0]))

    def changes(self, since: int, tables: Sequence[SourceTable], max_changes: int) -> Iterator[Transaction]:
        by_name = {t.name: t for t in tables}
        schema = self.endpoint.schema
        try:
            rows = self.query(
                "SELECT data FROM pg_logical_slot_peek_binary_changes(%s, NULL, %s, "
                "'proto_version', '1', 'publication_names', %s)",
                [self.slot, int(max_changes), self.publication],
            )
        except psycopg.errors.UndefinedObject as exc:
            raise ReplicationNotConfigured(f"database {self.name}: {exc}".splitlines()[0]) from None
        current: list[Change] = []
        for (data,) in rows:
            msg = self._decoder.decode(data)
            if msg.kind == "commit":
                assert msg.end_lsn is not None
                self.read_upto = msg.end_lsn
                if current and msg.end_lsn > since:
                    yield Transaction(msg.end_lsn, current)
                current = []
                continue
            rel = msg.relation
            if msg.kind == "truncate":
                current.extend(
                    Change(r.name, "truncate", {})
                    for r in msg.truncated
                    if r.namespace == schema and r.name in by_name
                )
                continue
            if rel is None or rel.namespace != schema or rel.name not in by_name:
                continue
            table = by_name[rel.name]
            if msg.kind == "insert":
                assert msg.new is not None
                current.append(Change(rel.name, "upsert", msg.new, insert=True))
            elif msg.kind == "update":
                assert msg.new is not None
                new = self._fill_unchanged(table, msg.new, msg.old)
                old_key = None
                if msg.old is not None:
                    old = {k: msg.old.get(k) for k in table.key}
                    if any(old[k] != new.get(k) for k in table.key):
                        old_key = old
                current.append(Change(rel.name, "upsert", new, old_key=old_key))
            elif msg.kind == "delete":
                assert msg.old is not None
                current.append(Change(rel.name, "delete", msg.old))

    def _fill_unchanged(
        self, table: SourceTable, new: dict[str, Any], old: dict[str, Any] | None
    ) -> dict[str, Any]:
        missing = [k for k, v in new.items() if v is UNCHANGED]
        if not missing:
            return new
        if old is None or any(old.get(k) is UNCHANGED or k not in old for k in missing):
            raise SyncError(
                f"database {self.name}: an update of {table.name} left large values ({', '.join(missing)}) "
                f"out of the change; set ALTER TABLE {table.name} REPLICA IDENTITY FULL"
            )
        return {**new, **{k: old[k] for k in missing}}

    def acknowledge(self, position: int) -> None:
        current = self.query(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s", [self.slot]
        )
        if current and current[0][0] and lsn_to_int(str(current[0][0])) >= position:
            return
        self.query("SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", [self.slot, int_to_lsn(position)])

    def drop_slot(self) -> None:
        """Release the slot (the server then frees its WAL); a later sync re-snapshots."""
        self.query(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
            [self.slot],
        )

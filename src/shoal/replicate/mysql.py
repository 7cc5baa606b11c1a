"""MySQL/MariaDB as a replication source: keyset snapshots with PyMySQL, changes from the ROW binlog.

The binlog is read with python-mysql-replication (a replica's protocol, ADR 0017). A position is
(file number, offset) packed in one integer (:func:`shoal.lake.progress.encode_binlog`); the
position of a transaction is the offset right after its commit (XID) event, so resuming there
never starts inside a transaction. Row events carry full row images (``binlog_row_image=FULL``)
and column names (``binlog_row_metadata=FULL``): both are checked before a sync starts.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pymysql
import pymysql.converters
import pymysql.cursors

from shoal.lake import progress
from shoal.query.federation import Endpoint
from shoal.replicate.ddl import truncated_table
from shoal.replicate.errors import (
    CredentialsRejected,
    ReplicationNotConfigured,
    SourceUnavailable,
    SyncError,
)
from shoal.replicate.model import Change, SourceTable, Transaction
from shoal.replicate.rowimage import RowImages
from shoal.replicate.source import Source
from shoal.replicate.typemap import check_ident, mysql_column

log = logging.getLogger("shoal.replicate.mysql")

#: the server sends a heartbeat after this long without binlog events: a round is caught up
HEARTBEAT_S = 0.1
#: a round applies what it read after this long, even while transactions keep arriving
ROUND_S = 2.0
#: a dump connection that hears nothing (not even a heartbeat) for this long is dead
STREAM_TIMEOUT_S = 30


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _connect_kwargs(ep: Endpoint) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "host": ep.host,
        "port": ep.port,
        "user": ep.user,
        "password": ep.password,
        "connect_timeout": 5,
        "charset": "utf8mb4",
    }
    if ep.tls == "disable":
        # PyMySQL's default is "preferred": a TLS context per connection (~50 ms of CPU)
        kwargs["ssl_disabled"] = True
    elif ep.tls:
        kwargs["ssl"] = {"ca": ep.tls_ca} if ep.tls_ca else {}
        kwargs["ssl_verify_cert"] = ep.tls in ("verify-ca", "verify-full")
        kwargs["ssl_verify_identity"] = ep.tls == "verify-full"
    return kwargs


def _wrap(**kwargs: Any) -> pymysql.Connection[Any]:
    # python-mysql-replication still passes PyMySQL's deprecated spellings
    if "db" in kwargs:
        kwargs["database"] = kwargs.pop("db")
    if "passwd" in kwargs:
        kwargs["password"] = kwargs.pop("passwd")
    return pymysql.connect(**kwargs)


class MySQLSource(Source):
    """One MySQL/MariaDB database as a source (``endpoint.database``)."""

    scanner = "mysql"
    scanner_setup = "SET mysql_session_time_zone = '+00:00'"

    def __init__(self, endpoint: Endpoint, *, server_id: int = 54_321) -> None:
        super().__init__(endpoint)
        self.server_id = server_id
        self._con: pymysql.Connection[Any] | None = None
        self._basename: str | None = None
        self._stream: Any = None  # the open binlog dump (BinLogStreamReader)
        self._stream_at: int | None = None  # where it stands (a transaction boundary)
        self._stream_seq = 0  # its current binlog file number
        self._stream_tables: set[str] = set()
        self._read_gtid: tuple[int, int, int] | None = None  # the GTID at read_upto
        self._status_sql: str | None = None  # how this server shows its binlog position
        self._server: tuple[int, bool] | None = None  # (@@server_id, one GTID domain or none)
        self._anchors: dict[str, int] = {}  # GTID -> position after it on this server
        self._images = RowImages()  # our row decoders, by table map (the library's for the rest)

    @property
    def namespace(self) -> str:
        return self.endpoint.database

    def quote(self, name: str) -> str:
        return _q(name)

    def relation(self, table: str) -> str:
        return _q(table)

    def select_list(self, table: SourceTable) -> list[str]:
        return [_q(c) for c in table.column_names]

    def literal(self, value: Any) -> str:
        return str(pymysql.converters.escape_item(value, "utf8mb4"))

    # -- plain connection ---------------------------------------------------------------------
    def _unavailable(self, exc: BaseException) -> SyncError:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        detail = str(exc.args[1]) if code and len(exc.args) > 1 else str(exc)
        text = f"database {self.name} ({self.endpoint.where()}): {self.endpoint.scrub(detail)}"
        if code in (1044, 1045, 1698):  # access denied
            return CredentialsRejected(text)
        if code == 1236:  # the binlog the lake stands at is gone (purged): only a new snapshot helps
            return ReplicationNotConfigured(
                f"{text}; the replica's binlog position is no longer on the server: delete the replica "
                "tables and sync again"
            )
        return SourceUnavailable(text)

    def connection(self) -> pymysql.Connection[Any]:
        if self._con is None:
            try:
                self._con = pymysql.connect(
                    database=self.endpoint.database, autocommit=True, **_connect_kwargs(self.endpoint)
                )
            except pymysql.err.OperationalError as exc:
                raise self._unavailable(exc) from None
            with self._con.cursor() as cur:
                cur.execute("SET time_zone = '+00:00'")
        return self._con

    def query(self, sql: str, args: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        try:
            with self.connection().cursor() as cur:
                cur.execute(sql, args)
                return list(cur.fetchall())
        except (pymysql.err.OperationalError, pymysql.err.InterfaceError) as exc:
            self.close()
            raise self._unavailable(exc) from None

    def position_key(self, table: str) -> str:
        return progress.binlog_position(self.name, table)

    # -- tables ---------------------------------------------------------------------------------
    def describe(self, tables: Sequence[str], *, need_key: bool = True) -> list[SourceTable]:
        out = []
        for table in tables:
            check_ident(table, "table")
            cols = self.query(
                "SELECT column_name, data_type, column_type, numeric_precision, numeric_scale, column_key "
                "FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
                "ORDER BY ordinal_position",
                [self.endpoint.database, table],
            )
            if not cols:
                raise SyncError(f"database {self.name}: no table {table!r} in {self.endpoint.database}")
            key_rows = self.query(
                "SELECT column_name FROM information_schema.key_column_usage WHERE table_schema = %s "
                "AND table_name = %s AND constraint_name = 'PRIMARY' ORDER BY ordinal_position",
                [self.endpoint.database, table],
            )
            key = tuple(str(r[0]) for r in key_rows)
            self.require_key(table, key, need_key)
            columns = tuple(mysql_column(str(c[0]), str(c[1]), str(c[2]), c[3], c[4]) for c in cols)
            out.append(SourceTable(table, columns, key))
        return out

    def stream(self, table: SourceTable, rows: int) -> Iterator[list[dict[str, Any]]]:
        names = table.column_names
        try:
            con = pymysql.connect(
                database=self.endpoint.database, autocommit=True, **_connect_kwargs(self.endpoint)
            )
        except pymysql.err.OperationalError as exc:
            raise self._unavailable(exc) from None
        try:
            with con.cursor(pymysql.cursors.SSCursor) as cur:
                cur.execute("SET time_zone = '+00:00'")
                cur.execute(f"SELECT {', '.join(_q(c) for c in names)} FROM {_q(table.name)}")
                while batch := cur.fetchmany(rows):
                    yield [dict(zip(names, r, strict=True)) for r in batch]
        except (pymysql.err.OperationalError, pymysql.err.InterfaceError) as exc:
            raise self._unavailable(exc) from None
        finally:
            con.close()

    # -- the binlog -------------------------------------------------------------------------------
    def check_replication(self) -> None:
        have = {str(k).lower(): str(v) for k, v in self.query(
            "SHOW VARIABLES WHERE Variable_name IN ('log_bin', 'binlog_format', 'binlog_row_image', "
            "'binlog_row_metadata', 'log_bin_compress')"
        )}  # fmt: skip
        wanted = {
            "log_bin": "ON",
            "binlog_format": "ROW",
            "binlog_row_image": "FULL",
            "binlog_row_metadata": "FULL",
        }
        wrong = [f"{k}={have.get(k, 'unset')}" for k, v in wanted.items() if have.get(k, "").upper() != v]
        if wrong:
            raise ReplicationNotConfigured(
                f"database {self.name}: change capture needs log_bin=ON binlog_format=ROW "
                f"binlog_row_image=FULL binlog_row_metadata=FULL; the server has {', '.join(wrong)} "
                "(or use sync mode: cursor)"
            )
        if have.get("log_bin_compress", "").upper() == "ON":
            # MariaDB writes row events above log_bin_compress_min_len compressed, as event types
            # python-mysql-replication does not know: it would skip them, and their rows with them
            raise ReplicationNotConfigured(
                f"database {self.name}: change capture cannot read MariaDB's compressed binlog events; "
                "the server has log_bin_compress=ON (set it OFF, or use sync mode: cursor)"
            )

    def _master_status(self) -> tuple[str, int]:
        rows: list[tuple[Any, ...]] = []
        if self._status_sql is None:  # MySQL 8.4 renamed it; MariaDB knows only the old name
            try:
                rows = self.query("SHOW BINARY LOG STATUS")
                self._status_sql = "SHOW BINARY LOG STATUS"
            except SyncError:
                raise
            except Exception:
                self._status_sql = "SHOW MASTER STATUS"
        if not rows:
            rows = self.query(self._status_sql or "SHOW MASTER STATUS")
        if not rows:
            raise ReplicationNotConfigured(f"database {self.name}: the binary log is off (log_bin)")
        return str(rows[0][0]), int(rows[0][1])

    def _split(self, file: str) -> tuple[str, int]:
        m = re.match(r"^(.*)\.(\d+)$", file)
        if not m:
            raise SyncError(f"database {self.name}: unexpected binlog file name {file!r}")
        return m.group(1), int(m.group(2))

    def start_position(self) -> int:
        self.check_replication()
        file, pos = self._master_status()
        base, seq = self._split(file)
        self._basename = base
        return progress.encode_binlog(seq, pos)

    def _file_name(self, seq: int) -> str:
        if self._basename is None:
            self._basename = self._split(self._master_status()[0])[0]
        return f"{self._basename}.{seq:06d}"

    def _open_stream(self, since: int, tables: Sequence[SourceTable]) -> Any:
        from pymysqlreplication import BinLogStreamReader
        from pymysqlreplication.event import (
            HeartbeatLogEvent,
            MariadbGtidEvent,
            QueryEvent,
            RotateEvent,
            XidEvent,
        )
        from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

        seq, pos = progress.decode_binlog(since)
        try:
            return BinLogStreamReader(
                connection_settings={**_connect_kwargs(self.endpoint), "read_timeout": STREAM_TIMEOUT_S},
                server_id=self.server_id,
                # one dump connection kept across rounds (reconnecting cost more CPU than the rows);
                # the server's heartbeat after HEARTBEAT_S without events says "caught up"
                blocking=True,
                slave_heartbeat=HEARTBEAT_S,
                resume_stream=True,
                log_file=self._file_name(seq),
                log_pos=pos,
                only_events=[
                    WriteRowsEvent,
                    UpdateRowsEvent,
                    DeleteRowsEvent,
                    XidEvent,
                    RotateEvent,
                    QueryEvent,
                    HeartbeatLogEvent,
                    MariadbGtidEvent,
                ],
                only_schemas=[self.endpoint.database],
                only_tables=[t.name for t in tables],
                # file/position dumps (COM_BINLOG_DUMP) on MariaDB too: the library's MariaDB mode
                # asks for a GTID dump and, without a GTID, starts from the oldest binlog
                is_mariadb=False,
                pymysql_wrapper=_wrap,
            )
        except pymysql.err.OperationalError as exc:
            raise self._unavailable(exc) from None

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        self._stream_at = None
        if stream is not None:
            try:
                stream.close()
            except Exception:  # the connection may be gone already; nothing to release then
                log.debug("closing the binlog stream failed", exc_info=True)

    def close(self) -> None:
        self._close_stream()
        self._server = None
        super().close()

    # -- GTIDs: the position on another server (ADR 0035) ---------------------------------------------
    def _identity(self) -> tuple[int, bool]:
        """This server's ``@@server_id`` and whether its GTIDs are recorded (MariaDB, at most one
        replication domain: one GTID is then the whole position)."""
        if self._server is None:
            version, server_id = self.query("SELECT VERSION(), @@server_id")[0]
            single = False
            if "mariadb" in str(version).lower():
                state = str(self.query("SELECT @@gtid_binlog_pos")[0][0] or "")
                single = "," not in state
            self._server = (int(server_id), single)
        return self._server

    def progress_keys(self, table: str) -> list[str]:
        return [
            progress.binlog_server(self.name, table),
            progress.binlog_gtid(self.name, table),
            progress.binlog_gtid_origin(self.name, table),
        ]

    def progress_at(self, table: str, position: int, txn: Transaction | None = None) -> dict[str, int]:
        server_id, gtids = self._identity()
        out = {progress.binlog_server(self.name, table): server_id}
        if not gtids:
            return out
        if txn is not None:
            gtid = txn.gtid
        elif position == self.read_upto:
            gtid = self._read_gtid
        else:
            gtid = self._gtid_at(position)
        if gtid is not None:
            domain, origin, seq = gtid
            out[progress.binlog_gtid(self.name, table)] = seq
            out[progress.binlog_gtid_origin(self.name, table)] = domain << 32 | origin
        return out

    def _gtid_at(self, position: int) -> tuple[int, int, int] | None:
        """The GTID of the last transaction before ``position`` (MariaDB reads the binlog file)."""
        seq, pos = progress.decode_binlog(position)
        text = str(self.query("SELECT BINLOG_GTID_POS(%s, %s)", [self._file_name(seq), pos])[0][0] or "")
        if not text or "," in text:
            return None
        domain, origin, number = (int(p) for p in text.split("-"))
        return domain, origin, number

    def resume_position(self, table: str, position: int, recorded: Mapping[str, int | None]) -> int:
        server = recorded.get(progress.binlog_server(self.name, table))
        here, _ = self._identity()
        if server is None or server == here:
            return position
        seq = recorded.get(progress.binlog_gtid(self.name, table))
        origin = recorded.get(progress.binlog_gtid_origin(self.name, table))
        if seq is None or origin is None:
            raise ReplicationNotConfigured(
                f"database {self.name}: table {table}'s replica stands in the binlog of server {server}, "
                f"this is server {here}, and no GTID was recorded to find the place here: delete the "
                "replica tables and sync again"
            )
        gtid = f"{origin >> 32}-{origin & 0xFFFFFFFF}-{seq}"
        if gtid not in self._anchors:
            self._anchors[gtid] = self._after_gtid(gtid)
            log.info(
                "database %s: server %s took over from %s; %s resumes after GTID %s",
                self.name, here, server, table, gtid,
            )  # fmt: skip
        return self._anchors[gtid]

    def _after_gtid(self, gtid: str) -> int:
        """The position in this server's binlog right after transaction ``gtid`` (a GTID dump
        starts there: its first GTID event begins the next transaction)."""
        from pymysqlreplication import BinLogStreamReader
        from pymysqlreplication.event import MariadbGtidEvent, RotateEvent

        # read first: if no transaction follows the GTID in the dump below, none did here either
        file, pos = self._master_status()
        stream = BinLogStreamReader(
            connection_settings=_connect_kwargs(self.endpoint),
            server_id=self.server_id,
            blocking=False,
            is_mariadb=True,
            auto_position=gtid,
            only_events=[MariadbGtidEvent, RotateEvent],
            pymysql_wrapper=_wrap,
        )
        file_seq = self._split(file)[1]
        try:
            for event in stream:
                if isinstance(event, RotateEvent):
                    file_seq = self._split(event.next_binlog)[1]
                elif isinstance(event, MariadbGtidEvent):
                    packet = event.packet
                    return progress.encode_binlog(file_seq, int(packet.log_pos) - int(packet.event_size))
        except pymysql.err.OperationalError as exc:
            raise self._unavailable(exc) from None
        finally:
            stream.close()
        return progress.encode_binlog(self._split(file)[1], pos)

    def changes(self, since: int, tables: Sequence[SourceTable], max_changes: int) -> Iterator[Transaction]:
        """Transactions after ``since`` up to the end of the binlog when the round began (what
        piled up while the last round was applied: rounds grow with the cost of applying), or until
        the server has nothing new (its heartbeat), or ``ROUND_S`` passed.

        The dump connection stays open between calls that go on where the last one stopped
        (``since`` is its :attr:`read_upto`, same tables); anything else opens a new one there.
        """
        from pymysqlreplication.event import (
            HeartbeatLogEvent,
            MariadbGtidEvent,
            QueryEvent,
            RotateEvent,
            XidEvent,
        )
        from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

        by_name = {t.name: t for t in tables}
        file, pos = self._master_status()
        # nothing new: still read (to the heartbeat or the next commit), so heartbeats never pile up
        target = progress.encode_binlog(self._split(file)[1], pos)
        if self._stream is None or self._stream_at != since or self._stream_tables != set(by_name):
            self._close_stream()
            self._stream = self._open_stream(since, tables)
            self._stream_seq = progress.decode_binlog(since)[0]
            self._stream_tables = set(by_name)
        stream = self._stream
        self._stream_at = None  # unknown until this round ends at a transaction boundary
        current: list[Change] = []
        yielded = 0
        boundary = since
        in_txn = False
        gtid: tuple[int, int, int] | None = None
        started = time.monotonic()
        try:
            for event in stream:
                if isinstance(event, HeartbeatLogEvent):
                    if not current:
                        break
                    continue
                if isinstance(event, RotateEvent):
                    self._stream_seq = self._split(event.next_binlog)[1]
                    continue
                if isinstance(event, MariadbGtidEvent):
                    gtid = (int(event.domain_id), int(event.server_id), int(event.gtid_seq_no))
                    continue
                if isinstance(event, WriteRowsEvent | UpdateRowsEvent | DeleteRowsEvent):
                    if event.schema != self.endpoint.database or event.table not in by_name:
                        continue
                    current.extend(_row_changes(event, by_name[event.table], self._images))
                    continue
                if not isinstance(event, XidEvent | QueryEvent):
                    continue
                end = progress.encode_binlog(self._stream_seq, int(event.packet.log_pos))
                if isinstance(event, QueryEvent):
                    statement = event.query.strip().upper()
                    if statement == "BEGIN":
                        in_txn = True
                        continue
                    if in_txn and statement not in ("COMMIT", "ROLLBACK"):
                        continue  # e.g. a SAVEPOINT inside a transaction
                    # outside a transaction a statement (DDL) is a transaction by itself
                    current.extend(self._statement_changes(event, by_name))
                in_txn = False
                boundary = max(boundary, end)
                self._read_gtid = gtid
                if current and end > since:
                    yielded += len(current)
                    yield Transaction(end, current, gtid)
                current = []
                # caught up with the binlog as the round began; a round that began with nothing
                # new ends after the first transaction (or the heartbeat): under a steady trickle
                # of commits the server is never idle long enough to send one
                caught_up = boundary >= target and boundary > since
                if caught_up or yielded >= max_changes or time.monotonic() - started >= ROUND_S:
                    break
        except (pymysql.err.OperationalError, pymysql.err.InterfaceError, ConnectionError) as exc:
            self._close_stream()
            raise self._unavailable(exc) from None
        except BaseException:
            # the caller stopped reading mid-round (an error, a stop): where the stream is is unknown
            self._close_stream()
            raise
        self._stream_at = self.read_upto = boundary

    def _statement_changes(self, event: Any, tables: Mapping[str, SourceTable]) -> list[Change]:
        """A TRUNCATE of a synced table as a change (it writes no rows to the binlog)."""
        default = event.schema.decode("utf-8", "replace") if isinstance(event.schema, bytes) else event.schema
        hit = truncated_table(event.query, default)
        if hit is None or hit[0] != self.endpoint.database or hit[1] not in tables:
            return []
        return [Change(hit[1], "truncate", {})]

    def acknowledge(self, position: int) -> None:
        """The binlog is kept by the server's expiry settings; nothing to release."""


def _row_changes(event: Any, table: SourceTable, images: RowImages) -> list[Change]:
    from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent

    name = table.name
    rows = images.rows(event)
    if isinstance(event, UpdateRowsEvent):
        pairs = (
            zip(rows[0::2], rows[1::2], strict=True)
            if rows is not None
            else ((r["before_values"], r["after_values"]) for r in event.rows)
        )
        out: list[Change] = []
        for before, after in pairs:
            moved = any(before[k] != after[k] for k in table.key)
            old = {k: before[k] for k in table.key} if moved else None
            out.append(Change(name, "upsert", after, old_key=old))
        return out
    if rows is None:
        rows = [r["values"] for r in event.rows]
    if isinstance(event, DeleteRowsEvent):
        return [Change(name, "delete", row) for row in rows]
    return [Change(name, "upsert", row, insert=True) for row in rows]

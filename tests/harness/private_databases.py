"""Private MariaDB and PostgreSQL instances with change-data-capture settings, for sync tests.

The machine's shared servers run without a row-based binlog (MariaDB) and with ``wal_level=replica``
(PostgreSQL), and flipping their global settings would disturb other tests. These start a throwaway
server on a free port in a temporary directory, with:

* MariaDB: ``--log-bin`` ROW format, full row images and row metadata, and the general query log
  (the database's own record of every statement it received: the pushdown proof);
* PostgreSQL: ``wal_level=logical`` and ``log_statement=all`` into the process log.

Both need root (they run as the ``mysql``/``postgres`` users). ``stop()`` kills the process group.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .databases import DatabaseUnavailable, DBInfo
from .ports import free_port, wait_until
from .processes import ManagedProcess


def _chown(path: Path, user: str) -> None:
    shutil.chown(path, user=user, group=user)


def _run_as(user: str, argv: list[str], log: Path) -> None:
    with open(log, "ab") as out:
        proc = subprocess.run(
            ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if proc.returncode != 0:
        raise DatabaseUnavailable(f"{argv[0]} failed with code {proc.returncode}; see {log}")


def private_dir(prefix: str) -> Path:
    """A fresh directory the database user can reach (pytest's tmp_path is root-only, 0700)."""
    path = Path(tempfile.mkdtemp(prefix=f"shoal-{prefix}-"))
    path.chmod(0o755)
    return path


def _need_root(what: str) -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        raise DatabaseUnavailable(f"a private {what} needs root and setpriv")


class _PrivateServer:
    """What both private servers share: a launched process, readiness, kill and stop."""

    what: ClassVar[str]  # for messages: "MariaDB", "PostgreSQL"
    stop_signal: ClassVar[signal.Signals]  # the server's clean shutdown
    base: Path
    log: Path
    process: ManagedProcess | None

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def _launch(self, name: str, argv: list[str], timeout: float) -> None:
        self.process = ManagedProcess(name, argv, self.log)
        self.process.start()
        wait_until(
            self._ready,
            timeout=timeout,
            what=f"private {self.what}",
            proc=self.process.proc,
            log_path=self.log,
        )

    def _ready(self) -> bool:
        try:
            with self.connect():
                return True
        except Exception:
            return False

    def kill(self) -> None:
        if self.process is not None:
            self.process.stop(signal.SIGKILL, timeout=10)

    def stop(self, *, remove: bool = True) -> None:
        if self.process is not None:
            self.process.stop(self.stop_signal, timeout=30)
        if remove:
            self.remove()

    def remove(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


@dataclass
class PrivateMariaDB(_PrivateServer):
    """A MariaDB server with a ROW binlog and the general log, on a free port under ``base``."""

    what = "MariaDB"
    stop_signal = signal.SIGTERM

    base: Path = field(default_factory=lambda: private_dir("mariadb"))
    server_id: int = 1
    port: int = 0
    #: more server options (e.g. ``--log-slave-updates`` for a replica that can take over)
    extra_args: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.datadir = self.base / "data"
        self.log = self.base / "mariadbd.log"
        self.general_log = self.base / "general.log"
        self.process: ManagedProcess | None = None

    @property
    def info(self) -> DBInfo:
        return DBInfo("mysql", "127.0.0.1", self.port, "root", "", "mysql")

    def start(self, timeout: float = 90.0) -> PrivateMariaDB:
        _need_root("MariaDB")
        binary = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        if not Path(binary).exists():
            raise DatabaseUnavailable("mariadbd is not installed")
        if not self.datadir.exists():
            self.base.mkdir(parents=True, exist_ok=True)
            _chown(self.base, "mysql")
            self.datadir.mkdir()
            _chown(self.datadir, "mysql")
            _run_as(
                "mysql",
                ["mariadb-install-db", "--no-defaults", f"--datadir={self.datadir}",
                 "--auth-root-authentication-method=normal", "--skip-test-db"],
                self.log,
            )  # fmt: skip
        self.port = self.port or free_port()
        self._launch(
            "mariadb-private",
            [binary, "--no-defaults", "--user=mysql", f"--datadir={self.datadir}", f"--port={self.port}",
             "--bind-address=127.0.0.1", f"--socket={self.base}/s.sock", f"--pid-file={self.base}/m.pid",
             f"--log-bin={self.base}/bin", "--binlog-format=ROW", "--binlog-row-image=FULL",
             "--binlog-row-metadata=FULL", f"--server-id={self.server_id}", "--skip-name-resolve",
             "--general-log=1", f"--general-log-file={self.general_log}",
             "--innodb-buffer-pool-size=32M", "--performance-schema=OFF", *self.extra_args],
            timeout,
        )  # fmt: skip
        return self

    def connect(self, database: str | None = None, **kwargs: Any) -> Any:
        import pymysql

        return pymysql.connect(
            host="127.0.0.1",
            port=self.port,
            user="root",
            password="",
            database=database,
            autocommit=True,
            connect_timeout=3,
            **kwargs,
        )

    def execute(self, sql: str, database: str | None = None) -> list[tuple[Any, ...]]:
        with self.connect(database) as con, con.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())


@dataclass
class PrivatePostgres(_PrivateServer):
    """A PostgreSQL server with ``wal_level=logical`` and every statement logged, under ``base``."""

    what = "PostgreSQL"
    stop_signal = signal.SIGINT  # PostgreSQL's fast shutdown

    base: Path = field(default_factory=lambda: private_dir("postgres"))
    port: int = 0

    def __post_init__(self) -> None:
        self.datadir = self.base / "data"
        self.log = self.base / "postgres.log"
        self.process: ManagedProcess | None = None

    @property
    def info(self) -> DBInfo:
        return DBInfo("postgres", "127.0.0.1", self.port, "postgres", "", "postgres")

    def _bin(self, name: str) -> str:
        found = shutil.which(name)
        if found:
            return found
        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        if not versions:
            raise DatabaseUnavailable("PostgreSQL binaries are not installed")
        return str(versions[-1] / name)

    def start(self, timeout: float = 90.0) -> PrivatePostgres:
        _need_root("PostgreSQL")
        if not self.datadir.exists():
            self.base.mkdir(parents=True, exist_ok=True)
            _chown(self.base, "postgres")
            _run_as(
                "postgres",
                [self._bin("initdb"), "-D", str(self.datadir), "-A", "trust", "-U", "postgres", "--no-sync"],
                self.log,
            )
        self.port = self.port or free_port()
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.base),
            "wal_level": "logical",
            "max_replication_slots": "8",
            "max_wal_senders": "8",
            "log_statement": "all",
            "fsync": "off",
            "shared_buffers": "32MB",
        }
        argv = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--pdeathsig=KILL",
                self._bin("postgres"), "-D", str(self.datadir), "-p", str(self.port)]  # fmt: skip
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        self._launch("postgres-private", argv, timeout)
        return self

    def conninfo(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database} connect_timeout=3"

    def connect(self, database: str = "postgres", **kwargs: Any) -> Any:
        import psycopg

        return psycopg.connect(self.conninfo(database), autocommit=True, **kwargs)

    def execute(self, sql: str, database: str = "postgres") -> list[tuple[Any, ...]]:
        with self.connect(database) as con:
            cur = con.execute(sql)
            return list(cur.fetchall()) if cur.description else []

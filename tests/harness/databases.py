"""MariaDB and PostgreSQL for tests: the machine's servers (started here if stopped), fresh databases."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .ports import port_is_open, wait_for_port


class DatabaseUnavailable(RuntimeError):
    """The server is neither running nor startable here (run scripts/bootstrap.sh as root)."""


@dataclass(frozen=True)
class DBInfo:
    """Connection facts for one database."""

    kind: str  # "mysql" | "postgres"
    host: str
    port: int
    user: str
    password: str
    database: str

    @property
    def url(self) -> str:
        scheme = "mysql" if self.kind == "mysql" else "postgresql"
        auth = f"{self.user}:{self.password}" if self.password else self.user
        return f"{scheme}://{auth}@{self.host}:{self.port}/{self.database}"

    def with_database(self, database: str) -> DBInfo:
        return replace(self, database=database)


def _fresh_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def _run(argv: list[str], log_path: Path) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, check=False)


class _DatabaseServer:
    """Connection settings from SHOAL_TEST_<PREFIX>_{HOST,PORT,USER,PASSWORD,DATABASE}, with defaults."""

    kind = ""
    env_prefix = ""
    default_port = 0
    default_user = ""

    def __init__(self) -> None:
        def e(key: str, default: str) -> str:
            return os.environ.get(f"SHOAL_TEST_{self.env_prefix}_{key}", default)

        self.info = DBInfo(
            kind=self.kind,
            host=e("HOST", "127.0.0.1"),
            port=int(e("PORT", str(self.default_port))),
            user=e("USER", self.default_user),
            password=e("PASSWORD", ""),
            database=e("DATABASE", "test"),
        )

    host = property(lambda self: self.info.host)
    port = property(lambda self: self.info.port)
    user = property(lambda self: self.info.user)
    password = property(lambda self: self.info.password)
    database = property(lambda self: self.info.database)


class MySQLServer(_DatabaseServer):
    """MariaDB on 127.0.0.1:3306 (root, empty password, database `test`) unless SHOAL_TEST_MYSQL_* say
    otherwise (HOST, PORT, USER, PASSWORD, DATABASE)."""

    kind = "mysql"
    env_prefix = "MYSQL"
    default_port = 3306
    default_user = "root"

    def ensure_running(self, log_dir: Path, timeout: float = 60.0) -> None:
        if port_is_open(self.port, self.host):
            return
        binary = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        if not Path(binary).exists() or self.host != "127.0.0.1" or os.geteuid() != 0:
            raise DatabaseUnavailable(
                f"MariaDB is not listening on {self.host}:{self.port} and cannot be started here "
                "(run scripts/bootstrap.sh as root)"
            )
        log = log_dir / "mariadb-start.log"
        _run(["install", "-d", "-o", "mysql", "-g", "mysql", "/run/mysqld"], log)
        _run(
            ["start-stop-daemon", "--start", "--oknodo", "--background", "--exec", binary, "--",
             "--user=mysql", "--bind-address=127.0.0.1", f"--port={self.port}"],
            log,
        )  # fmt: skip
        wait_for_port(self.port, timeout=timeout, what="MariaDB", log_path=log)

    def connect(self, database: str | None = None, **kwargs: Any) -> Any:
        """A pymysql connection (autocommit on) to `database` (default: the server's database)."""
        import pymysql

        return pymysql.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            database=database if database is not None else self.database,
            autocommit=True,
            **kwargs,
        )

    def create_database(self, prefix: str = "shoal_t") -> DBInfo:
        name = _fresh_name(prefix)
        with self.connect() as con, con.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}`")
        return self.info.with_database(name)

    def drop_database(self, name: str) -> None:
        with self.connect() as con, con.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


class PostgresServer(_DatabaseServer):
    """PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres, database `test`) unless
    SHOAL_TEST_PG_* say otherwise (HOST, PORT, USER, PASSWORD, DATABASE)."""

    kind = "postgres"
    env_prefix = "PG"
    default_port = 5432
    default_user = "postgres"

    def ensure_running(self, log_dir: Path, timeout: float = 60.0) -> None:
        if port_is_open(self.port, self.host):
            return
        etc = Path("/etc/postgresql")
        versions = sorted((p.name for p in etc.iterdir()), key=int) if etc.is_dir() else []
        if not versions or self.host != "127.0.0.1" or os.geteuid() != 0:
            raise DatabaseUnavailable(
                f"PostgreSQL is not listening on {self.host}:{self.port} and cannot be started here "
                "(run scripts/bootstrap.sh as root)"
            )
        log = log_dir / "postgres-start.log"
        _run(["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"], log)
        wait_for_port(self.port, timeout=timeout, what="PostgreSQL", log_path=log)

    def conninfo(self, database: str | None = None) -> str:
        parts = {
            "host": self.host,
            "port": str(self.port),
            "user": self.user,
            "dbname": database if database is not None else self.database,
        }
        if self.password:
            parts["password"] = self.password
        return " ".join(f"{k}={v}" for k, v in parts.items())

    def connect(self, database: str | None = None, **kwargs: Any) -> Any:
        """A psycopg connection (autocommit on) to `database` (default: the server's database)."""
        import psycopg

        return psycopg.connect(self.conninfo(database), autocommit=True, **kwargs)

    def create_database(self, prefix: str = "shoal_t") -> DBInfo:
        name = _fresh_name(prefix)
        with self.connect() as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return self.info.with_database(name)

    def drop_database(self, name: str) -> None:
        with self.connect() as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def create_schema(self, prefix: str = "shoal_s", database: str | None = None) -> str:
        name = _fresh_name(prefix)
        with self.connect(database) as con:
            con.execute(f'CREATE SCHEMA "{name}"')
        return name

    def drop_schema(self, name: str, database: str | None = None) -> None:
        with self.connect(database) as con:
            con.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')

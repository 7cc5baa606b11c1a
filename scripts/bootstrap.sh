#!/usr/bin/env bash
# Idempotent set-up of a machine for shoal's tests (Debian 12, run as root).
#
#   * "$REPO/.venv" with `pip install -e '.[dev,spark]'` (re-run only when pyproject.toml changes;
#     the spark extra is PySpark for tests/integration/test_spark_tables.py)
#   * Debian packages the integration tests drive: prometheus, node_exporter, chromium(+driver), kcat,
#     pgjdbc (the JDBC client test; javac comes with the machine's JDK),
#     and MariaDB / PostgreSQL servers when their binaries are absent
#   * MariaDB on 127.0.0.1:3306 (root, empty password, database `test`) and PostgreSQL on
#     127.0.0.1:5432 (trust auth, database `test`) running.
#
# Works on a machine whose databases were pre-started (nothing to do) and on a plain one.
# Environment: PYTHON=/path/to/python3.11+ to choose the interpreter; SHOAL_SKIP_APT=1 to skip apt.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
LOG_DIR="$REPO/.services"
mkdir -p "$LOG_DIR"
export DEBIAN_FRONTEND=noninteractive

say() { printf 'bootstrap: %s\n' "$*"; }
die() { printf 'bootstrap: ERROR: %s\n' "$*" >&2; exit 1; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { # wait_port PORT SECONDS NAME LOGFILE
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        port_open "$1" && return 0
        sleep 0.1
    done
    [[ -f "${4:-}" ]] && tail -n 20 "$4" >&2
    die "$3 did not open 127.0.0.1:$1 within $2 s"
}

# ---------------------------------------------------------------- Debian packages
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
have_pg_bin() { compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; }

missing=()
if [[ "${SHOAL_SKIP_APT:-0}" != 1 ]] && command -v apt-get >/dev/null; then
    for p in prometheus prometheus-node-exporter chromium chromium-driver kcat libpostgresql-jdbc-java; do
        have_pkg "$p" || missing+=("$p")
    done
    [[ -x /usr/sbin/mariadbd || -x /usr/sbin/mysqld ]] || missing+=(mariadb-server mariadb-client)
    # the JDBC client test compiles a small Java program against pgjdbc
    command -v javac >/dev/null || missing+=(default-jdk-headless)
    have_pg_bin || missing+=(postgresql postgresql-client)
fi
if ((${#missing[@]})); then
    [[ $EUID -eq 0 ]] || die "need root to apt-get install: ${missing[*]}"
    say "installing Debian packages: ${missing[*]}"
    # Stop postinst scripts from starting daemons on their default ports; the tests start their own.
    added_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        added_policy=1
    fi
    apt_log="$LOG_DIR/apt.log"
    if ! { apt-get -o DPkg::Lock::Timeout=600 update -q && apt-get -o DPkg::Lock::Timeout=600 install -y -q "${missing[@]}"; } >"$apt_log" 2>&1; then
        tail -n 30 "$apt_log" >&2
        ((added_policy)) && rm -f /usr/sbin/policy-rc.d
        die "apt-get install failed (log: $apt_log)"
    fi
    ((added_policy)) && rm -f /usr/sbin/policy-rc.d
fi

# ---------------------------------------------------------------- Python venv
pick_python() {
    local c
    for c in "${PYTHON:-}" python3.11 python3.12 python3.13 python3; do
        [[ -n "$c" ]] && command -v "$c" >/dev/null || continue
        if "$c" -c 'import sys, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$c"
            return 0
        fi
    done
    return 1
}
if [[ ! -x "$VENV/bin/python" ]]; then
    py="$(pick_python)" || die "no python >= 3.11 with venv support found (set PYTHON=...)"
    say "creating $VENV with $py"
    "$py" -m venv "$VENV"
fi
stamp="$VENV/.shoal-bootstrap-stamp"
want="$(sha256sum "$REPO/pyproject.toml" | cut -d' ' -f1)"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]] || ! "$VENV/bin/python" -c 'import shoal' 2>/dev/null; then
    say "pip install -e '.[dev,spark]'"
    pip_log="$LOG_DIR/pip.log"
    if ! (cd "$REPO" && "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev,spark]') \
        >"$pip_log" 2>&1; then
        grep -v 'is ignored: it is neither a file nor a directory' "$pip_log" | tail -n 30 >&2
        die "pip install failed (log: $pip_log)"
    fi
    echo "$want" >"$stamp"
fi

# ---------------------------------------------------------------- MariaDB
mysql_client() { command -v mariadb || command -v mysql; }
ensure_mariadb() {
    local bin
    bin="$(command -v mariadbd || true)"
    [[ -n "$bin" ]] || bin=/usr/sbin/mariadbd
    [[ -x "$bin" ]] || bin=/usr/sbin/mysqld
    [[ -x "$bin" ]] || die "MariaDB server binary not found"
    if ! port_open 3306; then
        say "starting MariaDB"
        install -d -o mysql -g mysql /run/mysqld
        if [[ ! -d /var/lib/mysql/mysql ]]; then
            mariadb-install-db --user=mysql --datadir=/var/lib/mysql >"$LOG_DIR/mariadb-install.log" 2>&1 ||
                { tail -n 20 "$LOG_DIR/mariadb-install.log" >&2; die "mariadb-install-db failed"; }
        fi
        start-stop-daemon --start --oknodo --background --exec "$bin" -- \
            --user=mysql --bind-address=127.0.0.1 --port=3306 --log-error="$LOG_DIR/mariadb.err"
        wait_port 3306 60 MariaDB "$LOG_DIR/mariadb.err"
    fi
    local cli
    cli="$(mysql_client)" || die "no mariadb/mysql client"
    if ! "$cli" -h127.0.0.1 -P3306 -uroot --password= -e 'USE test' 2>/dev/null; then
        say "configuring MariaDB root@127.0.0.1 (no password) and database test"
        # As root over the socket (unix_socket auth on a fresh Debian install).
        "$cli" -uroot <<'SQL' || die "could not configure MariaDB (root over unix socket)"
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket;
CREATE DATABASE IF NOT EXISTS test;
FLUSH PRIVILEGES;
SQL
        "$cli" -h127.0.0.1 -P3306 -uroot --password= -e 'USE test' || die "MariaDB root login still fails"
    fi
}

# ---------------------------------------------------------------- PostgreSQL
ensure_postgres() {
    local ver psql_q
    psql_q() { psql -h 127.0.0.1 -p 5432 -U postgres -w -X -qtA "$@"; }
    if ! port_open 5432; then
        ver="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)"
        if [[ -z "$ver" || ! -d "/etc/postgresql/$ver/main" ]]; then
            ver="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
            say "creating PostgreSQL $ver cluster"
            pg_createcluster "$ver" main -p 5432 >/dev/null -- --auth=trust >/dev/null
        fi
        say "starting PostgreSQL $ver"
        pg_ctlcluster --skip-systemctl-redirect "$ver" main start
        wait_port 5432 60 PostgreSQL "/var/log/postgresql/postgresql-$ver-main.log"
    fi
    if ! psql_q -d postgres -c 'select 1' >/dev/null 2>&1; then
        # Password auth configured: switch to trust (test machine only), as the postgres OS user.
        ver="$(ls /etc/postgresql | sort -V | tail -n 1)"
        say "setting PostgreSQL $ver to trust auth"
        printf 'local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n' \
            >"/etc/postgresql/$ver/main/pg_hba.conf"
        pg_ctlcluster --skip-systemctl-redirect "$ver" main reload
        sleep 1
        psql_q -d postgres -c 'select 1' >/dev/null || die "PostgreSQL login as postgres still fails"
    fi
    if [[ "$(psql_q -d postgres -c "select 1 from pg_roles where rolname='root'")" != 1 ]]; then
        psql_q -d postgres -c 'create role root superuser login' >/dev/null
    fi
    local db
    for db in test root; do
        if [[ "$(psql_q -d postgres -c "select 1 from pg_database where datname='$db'")" != 1 ]]; then
            psql_q -d postgres -c "create database $db owner root" >/dev/null
        fi
    done
}

ensure_mariadb
ensure_postgres
say "ok (venv: $VENV)"

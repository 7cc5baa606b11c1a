"""Operational databases: snapshot throughput, change-capture lag and federated pushdown.

Starts a private MariaDB (ROW binlog) and PostgreSQL (wal_level=logical) from the test harness and,
in the same run:

1. snapshot rows/s of an N-row table with `shoal sync` (key chunks into Delta) against the
   database's own dump (`mysqldump` / `COPY ... TO STDOUT`, output discarded);
2. change-capture lag at R changes/s: a writer commits batches of inserts, each with its commit
   time; `shoal sync --follow` runs in a child process; a poller reads the replica's Delta log and
   notes when each batch became queryable. Lag = queryable − committed (p50/p99);
3. a selective federated query (`WHERE` on an indexed column, `LIMIT`) with pushdown on and off.

After each lag run the replica is read through shoal's SQL: its row count must equal the source's,
and an aggregate over it is timed (what a reader pays; merge-on-read ranks the rows per key).
``--layout merge-on-read`` runs the sync with that layout (ADR 0040), compacting every
``--compact-every`` seconds in the sync child (its CPU is in the figures).

    .venv/bin/python bench/bench_sync.py --rows 500000 --rates 2000 --seconds 20

Prints one JSON summary; docs/benchmarks.md records the reference runs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the test harness starts the databases

from harness.private_databases import PrivateMariaDB, PrivatePostgres  # noqa: E402
from shoal.project import Project  # noqa: E402


def _project(
    directory: Path, maria: PrivateMariaDB, pg: PrivatePostgres | None, chunk: int, layout: dict[str, Any]
) -> Project:
    directory.mkdir(parents=True, exist_ok=True)
    dbs: dict[str, Any] = {
        "crm": {"kind": "mysql", "port": maria.port, "database": "bench", "user": "root",
                "sync": {"chunk_rows": chunk, **layout}},
    }  # fmt: skip
    if pg is not None:
        dbs["wh"] = {"kind": "postgres", "port": pg.port, "database": "bench", "user": "postgres",
                     "sync": {"chunk_rows": chunk, **layout}}  # fmt: skip
    (directory / "shoal.yaml").write_text(yaml.safe_dump({"name": "bench", "databases": dbs}))
    return Project.load(directory)


def _load(maria: PrivateMariaDB, pg: PrivatePostgres | None, rows: int) -> None:
    maria.execute("CREATE DATABASE bench")
    maria.execute(
        "CREATE TABLE bench.users (id BIGINT PRIMARY KEY, email VARCHAR(80), plan VARCHAR(10), "
        "team_id INT, mrr DECIMAL(10,2), created_at DATETIME, KEY (team_id))"
    )
    step = 50_000
    for lo in range(1, rows + 1, step):
        hi = min(rows, lo + step - 1)
        maria.execute(
            "INSERT INTO bench.users SELECT seq, CONCAT('u', seq, '@example.com'), "
            "IF(seq % 3 = 0, 'pro', 'free'), seq % 5000, (seq % 1000) / 10, "
            f"'2024-01-01' + INTERVAL (seq % 86400) SECOND FROM seq_{lo}_to_{hi}",
            "bench",
        )
    if pg is None:
        return
    pg.execute("CREATE DATABASE bench")
    pg.execute(
        "CREATE TABLE users (id BIGINT PRIMARY KEY, email TEXT, plan TEXT, team_id INT, mrr NUMERIC(10,2), "
        "created_at TIMESTAMP)",
        "bench",
    )
    pg.execute(
        "INSERT INTO users SELECT g, 'u' || g || '@example.com', "
        "CASE WHEN g % 3 = 0 THEN 'pro' ELSE 'free' END, "
        f"g % 5000, (g % 1000) / 10.0, TIMESTAMP '2024-01-01' + (g % 86400) * INTERVAL '1 s' "
        f"FROM generate_series(1, {rows}) g",
        "bench",
    )
    pg.execute("CREATE INDEX ON users (team_id)", "bench")
    pg.execute("VACUUM ANALYZE users", "bench")


def _snapshot(project: Project, name: str, rows: int) -> dict[str, float]:
    """`shoal sync NAME users` in a child process: rows/s and the child's peak RSS."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "shoal", "sync", name, "users", "--project", str(project.dir),
         "--format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip
    out = child.stdout.read() if child.stdout else b""
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    assert child.returncode == 0, out
    report = json.loads(out)
    copied = sum(t["snapshot_rows"] for t in report["tables"])
    assert copied == rows, report
    return {
        "rows_s": round(rows / elapsed),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
    }


def _dump(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def _commits(log_dir: Path) -> int:
    return len(list(log_dir.glob("*.json")))


PROFILED = """
import cProfile, runpy, sys, time
sys.argv = ["shoal", *sys.argv[1:]]
profiler = cProfile.Profile(time.process_time)
profiler.enable()
try:
    runpy.run_module("shoal", run_name="__main__")
finally:
    profiler.disable()
    profiler.dump_stats({out!r})
"""


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _lag(
    project: Project,
    name: str,
    write: Any,
    rate: int,
    seconds: float,
    *,
    profile: Path | None = None,
    source_count: Any = None,
) -> dict[str, Any]:
    """Commit batches of inserts at ``rate`` rows/s; measure when each becomes queryable."""
    log_dir = Path(project.lake_root) / f"{name}_replica" / "users" / "_delta_log"
    argv = [
        "sync",
        name,
        "users",
        "--follow",
        "--poll",
        "0.1",
        "--project",
        str(project.dir),
        "--format",
        "json",
    ]
    # --profile: cProfile on process CPU time (not wall time: waiting for the database is not cost)
    entry = ["-c", PROFILED.format(out=str(profile / f"{name}-{rate}.prof"))] if profile else ["-m", "shoal"]
    child = subprocess.Popen(
        [sys.executable, *entry, *argv],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip
    table = project.lake.table(f"{name}_replica.users")
    committed: dict[int, float] = {}  # last id of a batch -> commit time
    visible: dict[int, float] = {}
    stop = threading.Event()
    batch = max(1, rate // 20)  # 20 transactions a second

    def writer() -> None:
        next_id = 10_000_000 + rate * 1_000  # each rate's run has ids of its own
        started = time.monotonic()
        n = 0
        while not stop.is_set() and time.monotonic() - started < seconds:
            ahead = n * batch / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
            inserted = write(next_id, batch)
            committed[next_id + inserted - 1] = time.monotonic()
            next_id += inserted
            n += 1

    def poller() -> None:
        seen = _commits(log_dir)
        while not stop.is_set():
            now = _commits(log_dir)
            if now != seen:
                seen = now
                at = time.monotonic()
                # pyarrow's own filter (row-group statistics skip the snapshot's rows); a DuckDB
                # filter over the deltalake dataset deadlocked in a thread on a 5M-row table
                top = (
                    table.delta()
                    .to_pyarrow_dataset()
                    .to_table(columns=["id"], filter=pc.field("id") >= 10_000_000 + rate * 1_000)
                )
                ids = set(top.column("id").to_pylist()) if top.num_rows else set()
                for last in list(committed):
                    if last in ids and last not in visible:
                        visible[last] = at
            time.sleep(0.02)

    time.sleep(6)  # the child's start-up (imports) is not lag
    cpu_before = _cpu_s(child.pid)
    threads = [threading.Thread(target=writer), threading.Thread(target=poller)]
    for t in threads:
        t.start()
    threads[0].join()
    deadline = time.monotonic() + 30
    while len(visible) < len(committed) and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    threads[1].join()
    cpu = _cpu_s(child.pid) - cpu_before
    child.terminate()
    child.wait(30)
    lags = sorted(visible[k] - committed[k] for k in visible)
    compactions = sum(
        1 for h in table.history() if h.get("operation_detail") == "shoal merge-on-read compaction"
    )
    reads = _read_replica(project, f"{name}_replica.users", source_count() if source_count else None)
    return {
        "rate": rate,
        "batches": len(committed),
        "visible": len(visible),
        "p50_s": round(statistics.median(lags), 3) if lags else None,
        "p99_s": round(lags[int(0.99 * (len(lags) - 1))], 3) if lags else None,
        # process CPU of the sync child while the writer ran and it caught up: per 1,000 changes
        "sync_cpu_ms_per_1k": round(1000 * cpu / max(1, len(committed) * max(1, rate // 20)) * 1000, 1),
        "load": os.getloadavg()[0],
        "compactions": compactions,
        **reads,
    }


def _read_replica(project: Project, table: str, source_rows: int | None) -> dict[str, Any]:
    """The replica as shoal's SQL reads it once the sync stopped: its row count (to compare with
    the source's: equal once the sync caught up) and the median time of an aggregate over it, on a
    pinned snapshot (the view of a table quiet for a few seconds) and on ``delta_scan`` (the view
    of a table committed to just now; merge-on-read ranks every row there, ADR 0040)."""
    from shoal.query import connect_lake

    query = f"SELECT count(*), sum(mrr) FROM {table}"
    out: dict[str, Any] = {"source_rows": source_rows}
    for pin in (True, False):
        times = []
        rows = None
        with connect_lake(project.lake, pin_snapshots=pin) as con:
            for _ in range(3):
                started = time.perf_counter()
                rows = con.sql(query).fetchone()
                times.append(time.perf_counter() - started)
        kind = "pinned" if pin else "scan"
        out[f"replica_rows_{kind}"] = int(rows[0]) if rows else -1
        out[f"read_{kind}_s"] = round(statistics.median(times), 3)
    return out


def _federated(project: Project) -> dict[str, float]:
    query = {
        "crm": "SELECT id, email FROM crm.users WHERE team_id = 42 LIMIT 50",
        "wh": "SELECT id, email FROM wh.users WHERE team_id = 42 LIMIT 50",
    }
    out: dict[str, float] = {}
    with project.connect() as con:
        for name, sql in query.items():
            for pushdown in (True, False):
                setting = (
                    "mysql_experimental_filter_pushdown"
                    if name == "crm"
                    else "pg_experimental_filter_pushdown"
                )
                con.execute(f"SET {setting} = {str(pushdown).lower()}")
                times = []
                for _ in range(3):
                    started = time.perf_counter()
                    con.sql(sql).fetchall()
                    times.append(time.perf_counter() - started)
                out[f"{name}_{'pushdown' if pushdown else 'no_pushdown'}_s"] = round(
                    statistics.median(times), 4
                )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=500_000)
    ap.add_argument("--rates", type=int, nargs="+", default=[2000])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--chunk", type=int, default=50_000)
    ap.add_argument("--lag-only", action="store_true", help="skip the snapshot, dump and federated runs")
    ap.add_argument("--databases", nargs="+", default=["mysql", "postgres"], choices=["mysql", "postgres"])
    ap.add_argument("--mix", action="store_true", help="60%% inserts, 30%% updates, 10%% deletes")
    ap.add_argument("--profile", type=Path, help="write a cProfile of each sync child into this directory")
    ap.add_argument(
        "--layout", choices=["copy-on-write", "merge-on-read"], default="copy-on-write", help="sync.layout"
    )
    ap.add_argument(
        "--compact-every", type=float, default=5.0, help="merge-on-read: sync.compact_every_s (seconds)"
    )
    args = ap.parse_args()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    # --lag-only --databases mysql: no PostgreSQL to start and load (it only took CPU from the run)
    need_pg = not args.lag_only or "postgres" in args.databases
    maria, pg = PrivateMariaDB().start(), PrivatePostgres().start() if need_pg else None
    summary: dict[str, Any] = {"rows": args.rows, "load_before": os.getloadavg()}
    try:
        _load(maria, pg, args.rows)
        layout: dict[str, Any] = {}
        if args.layout == "merge-on-read":
            layout = {"layout": "merge-on-read", "compact_every_s": args.compact_every}
        summary["layout"] = layout or "copy-on-write"
        project = _project(Path(tempfile.mkdtemp(prefix="bench-sync-")), maria, pg, args.chunk, layout)
        if args.lag_only:
            for name, db in (("crm", "mysql"), ("wh", "postgres")):
                if db in args.databases:
                    summary[f"{db}_snapshot"] = _snapshot(project, name, args.rows)
        else:
            summary["mysql_snapshot"] = _snapshot(project, "crm", args.rows)
            t = _dump(
                [
                    "mysqldump",
                    "-h127.0.0.1",
                    f"-P{maria.port}",
                    "-uroot",
                    "--single-transaction",
                    "bench",
                    "users",
                ]
            )
            summary["mysqldump_rows_s"] = round(args.rows / t)
            summary["pg_snapshot"] = _snapshot(project, "wh", args.rows)
            assert pg is not None
            t = _dump(
                ["psql", "-h127.0.0.1", f"-p{pg.port}", "-Upostgres", "-dbench", "-c", "COPY users TO STDOUT"]
            )
            summary["pg_copy_rows_s"] = round(args.rows / t)
            summary["federated"] = _federated(project)

        my_con, pg_con = maria.connect("bench"), pg.connect("bench") if pg is not None else None

        rng = random.Random(13)

        def mixed(n: int) -> tuple[int, str, str]:
            """--mix: of a transaction's n changes, 30% update and 10% delete snapshot rows."""
            if not args.mix:
                return n, "", ""
            ups = ", ".join(str(rng.randint(1, args.rows)) for _ in range(max(1, n * 3 // 10)))
            dels = ", ".join(str(rng.randint(1, args.rows)) for _ in range(max(1, n // 10)))
            return n - n * 4 // 10, ups, dels

        def mysql_write(first: int, n: int) -> int:
            n, ups, dels = mixed(n)
            with my_con.cursor() as cur:
                cur.execute("BEGIN")
                if ups:
                    cur.execute(f"UPDATE users SET mrr = mrr + 1, plan = 'pro' WHERE id IN ({ups})")
                    cur.execute(f"DELETE FROM users WHERE id IN ({dels})")
                # the inserts come last: the batch's last id is what the poller waits for
                cur.execute(
                    "INSERT INTO users SELECT seq, CONCAT('b', seq), 'free', 1, 1.00, NOW() "
                    f"FROM seq_{first}_to_{first + n - 1}"
                )
                cur.execute("COMMIT")
            return n

        def pg_write(first: int, n: int) -> int:
            n, ups, dels = mixed(n)
            assert pg_con is not None
            with pg_con.transaction():
                if ups:
                    pg_con.execute(f"UPDATE users SET mrr = mrr + 1, plan = 'pro' WHERE id IN ({ups})")
                    pg_con.execute(f"DELETE FROM users WHERE id IN ({dels})")
                pg_con.execute(
                    f"INSERT INTO users SELECT g, 'b' || g, 'free', 1, 1.00, now() "
                    f"FROM generate_series({first}, {first + n - 1}) g"
                )
            return n

        def mysql_count() -> int:
            with my_con.cursor() as cur:
                cur.execute("SELECT count(*) FROM users")
                return int(cur.fetchone()[0])

        def pg_count() -> int:
            assert pg_con is not None
            row = pg_con.execute("SELECT count(*) FROM users").fetchone()
            return int(row[0]) if row else -1

        if "mysql" in args.databases:
            summary["mysql_lag"] = [
                _lag(project, "crm", mysql_write, r, args.seconds, profile=args.profile,
                     source_count=mysql_count)
                for r in args.rates
            ]  # fmt: skip
        if "postgres" in args.databases:
            summary["pg_lag"] = [
                _lag(project, "wh", pg_write, r, args.seconds, profile=args.profile, source_count=pg_count)
                for r in args.rates
            ]
        summary["load_after"] = os.getloadavg()
        my_con.close()
        if pg_con is not None:
            pg_con.close()
    finally:
        maria.stop()
        if pg is not None:
            pg.stop()
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

"""Faults during `shoal sync --follow` against real databases: kill -9 of the sync at random moments
during a mixed insert/update/delete workload, the database restarted mid-stream and connections cut;
afterwards the lake table equals the source table row for row (nothing lost, nothing applied twice).

For bisecting a failure: FAULT_KILLS, FAULT_CHANGES, FAULT_RESTART=0 and FAULT_CUT=0 shrink the run."""

from __future__ import annotations

import contextlib
import os
import random
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.private_databases import PrivateMariaDB, PrivatePostgres
from harness.processes import ManagedProcess
from harness.sync_helpers import lake_rows, mysql_decl, pg_decl, rows_sorted, write_project
from shoal.lake.morcompact import tail_rows
from shoal.project import Project
from shoal.replicate import Syncer

pytestmark = pytest.mark.slow

COLUMNS = ["id", "v", "note"]
#: copy-on-write (a merge per round) and merge-on-read (appended changes, compacted every second
#: so that kills also land in the middle of compactions; ADR 0040)
LAYOUTS = {
    "copy-on-write": {},
    "merge-on-read": {"layout": "merge-on-read", "compact_every_s": 1.0},
}
COMPACTION = "shoal merge-on-read compaction"


class Workload:
    """Mixed transactions on ``items``: inserts of new keys, range updates, range deletes."""

    def __init__(self, execute: Callable[[str], int], seed: int) -> None:
        self.execute = execute
        self.rng = random.Random(seed)
        self.next_id = 1
        self.changes = 0
        self.stop = threading.Event()
        self.paused = threading.Event()
        self.errors: list[BaseException] = []

    def seed_rows(self, n: int) -> None:
        while self.next_id <= n:
            self._insert(500)

    def _insert(self, n: int) -> int:
        ids = range(self.next_id, self.next_id + n)
        self.next_id += n
        values = ", ".join(f"({i}, {i % 97}, 'n{i}')" for i in ids)
        return self.execute(f"INSERT INTO items (id, v, note) VALUES {values}")

    def step(self) -> None:
        op = self.rng.random()
        lo = self.rng.randrange(1, max(2, self.next_id))
        if op < 0.4:
            self.changes += self._insert(self.rng.randrange(20, 120))
        elif op < 0.85:
            span = self.rng.randrange(20, 150)
            self.changes += self.execute(
                f"UPDATE items SET v = v + 1, note = 'u{self.changes}' WHERE id BETWEEN {lo} AND {lo + span}"
            )
        else:
            self.changes += self.execute(
                f"DELETE FROM items WHERE id BETWEEN {lo} AND {lo + self.rng.randrange(5, 40)}"
            )

    def run(self, limit: int, rate: float) -> None:
        """Until ``limit`` changes, at most ``rate`` changes per second (the kills need time)."""
        started = time.monotonic()
        while not self.stop.is_set() and self.changes < limit:
            ahead = self.changes / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(min(ahead, 0.2))
                continue
            if self.paused.is_set():
                time.sleep(0.05)
                continue
            try:
                self.step()
            except Exception as exc:  # the database is being restarted: wait and go on
                self.errors.append(exc)
                time.sleep(0.2)


def _mysql_executor(server: PrivateMariaDB, db: str) -> Callable[[str], int]:
    state: dict[str, Any] = {}

    def execute(sql: str) -> int:
        if "con" not in state:
            state["con"] = server.connect(db)
        try:
            with state["con"].cursor() as cur:
                return int(cur.execute(sql))
        except Exception:
            state.pop("con", None)
            raise

    return execute


def _pg_executor(server: PrivatePostgres, db: str, cleanup: contextlib.ExitStack) -> Callable[[str], int]:
    """Runs statements on one connection, a new one after an error; ``cleanup`` closes the last."""
    state: dict[str, Any] = {}

    def execute(sql: str) -> int:
        if "con" not in state:
            state["con"] = server.connect(db)
            cleanup.callback(state["con"].close)
        try:
            return int(state["con"].execute(sql).rowcount)
        except Exception:
            with contextlib.suppress(Exception):  # closed, not left to the collector (ResourceWarning)
                state.pop("con").close()
            raise

    return execute


def _commits(log_dir: Path) -> int:
    return len(list(log_dir.glob("*.json"))) if log_dir.is_dir() else 0


def _wait_for_commit(log_dir: Path, proc: ManagedProcess, timeout: float) -> None:
    before = _commits(log_dir)
    deadline = time.monotonic() + timeout
    while _commits(log_dir) <= before:
        assert proc.running, proc.log_path.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, "the sync committed nothing in time"
        time.sleep(0.05)


def _sync_process(project_dir: Path, log: Path) -> ManagedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return ManagedProcess(
        "shoal-sync",
        [sys.executable, "-m", "shoal", "sync", "src", "--follow", "--poll", "0.1",
         "--project", str(project_dir), "--format", "json"],
        log,
        env=env,
    )  # fmt: skip


def _faults(
    tmp_path: Path,
    server: PrivateMariaDB | PrivatePostgres,
    decl: dict[str, Any],
    execute: Callable[[str], int],
    *,
    kills: int,
    min_changes: int,
    cut_connections: Callable[[], None],
) -> None:
    project_dir = write_project(tmp_path / "proj", {"src": decl})
    workload = Workload(execute, seed=13)
    workload.seed_rows(20_000)
    proc = _sync_process(project_dir, tmp_path / "sync.log")
    log_dir = project_dir / "lake" / "src_replica" / "items" / "_delta_log"
    rng = random.Random(7)
    worker = threading.Thread(target=workload.run, args=(10 * min_changes, 2_000.0), daemon=True)
    worker.start()
    killed = restarted = cut = 0
    try:
        while killed < kills or workload.changes < min_changes:
            proc.start()
            # kill only once this run committed something (startup takes seconds on a busy machine),
            # then at a random moment: mid-snapshot, mid-batch or mid-commit
            _wait_for_commit(log_dir, proc, timeout=60)
            time.sleep(rng.uniform(0.0, 1.5))
            if killed == kills // 2 and not restarted and os.environ.get("FAULT_RESTART", "1") == "1":
                workload.paused.set()
                server.stop(remove=False)  # the database goes away under the running sync
                time.sleep(0.5)
                server.start()
                workload.paused.clear()
                restarted += 1
                time.sleep(rng.uniform(0.5, 1.5))
            if killed % 3 == 1 and os.environ.get("FAULT_CUT", "1") == "1":
                cut_connections()
                cut += 1
                time.sleep(rng.uniform(0.2, 1.0))
            proc.kill()  # kill -9, mid-snapshot, mid-batch or mid-commit
            killed += 1
    finally:
        workload.stop.set()
        worker.join(30)
        proc.stop()
    assert killed >= kills
    assert restarted == 1 or os.environ.get("FAULT_RESTART") == "0"
    assert cut >= 1 or os.environ.get("FAULT_CUT") == "0"
    assert workload.changes >= min_changes
    log = (tmp_path / "sync.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
    assert log.count("=== start") == killed
    project = Project.load(project_dir)
    table = project.lake.table("src_replica.items")
    # the killed syncs did the work: many commits, each with rows and its position
    commits_by_killed_syncs = table.version
    assert commits_by_killed_syncs > kills, log[-3000:]
    # one last sync in this process: it resumes from the lake's positions and catches up
    report = Syncer(project.lake, project.endpoints()[0]).run()
    print(
        f"{killed} kills, {cut} cuts, {restarted} restart, {workload.changes} changes, "
        f"{commits_by_killed_syncs} commits by killed syncs, final catch-up applied "
        f"{report.tables['items'].upserted + report.tables['items'].deleted} rows"
    )
    source = rows_sorted([tuple(r) for r in _read_source(server, decl)])
    assert lake_rows(table, COLUMNS) == source
    assert report.tables["items"].position is not None
    if table.layout() is not None:
        compactions = [h for h in table.history() if h.get("operation_detail") == COMPACTION]
        print(f"{len(compactions)} compactions committed by the killed syncs")
        assert compactions, "the killed syncs never compacted: merge-on-read was not exercised"
        Syncer(project.lake, project.endpoints()[0]).compact()
        assert tail_rows(table) == 0
        assert lake_rows(table, COLUMNS) == source


def _read_source(server: PrivateMariaDB | PrivatePostgres, decl: dict[str, Any]) -> list[tuple[Any, ...]]:
    if isinstance(server, PrivateMariaDB):
        return server.execute(f"SELECT id, v, note FROM {decl['database']}.items")
    return server.execute("SELECT id, v, note FROM items", decl["database"])


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_mysql_kill9_restart_and_cut_connections(
    tmp_path: Path, layout: str, own_maria: PrivateMariaDB
) -> None:
    server = own_maria
    server.execute("CREATE DATABASE shop")
    server.execute("CREATE TABLE shop.items (id INT PRIMARY KEY, v INT, note VARCHAR(30))")

    def cut() -> None:
        for pid, user, command in server.execute(
            "SELECT id, user, command FROM information_schema.processlist"
        ):
            if user == "root" and command == "Binlog Dump":
                server.execute(f"KILL CONNECTION {int(pid)}")

    _faults(
        tmp_path, server, mysql_decl(server, "shop", chunk_rows=3000, **LAYOUTS[layout]),
        _mysql_executor(server, "shop"), kills=int(os.environ.get("FAULT_KILLS", "10")),
        min_changes=int(os.environ.get("FAULT_CHANGES", "100000")), cut_connections=cut,
    )  # fmt: skip


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_postgres_kill9_restart_and_cut_connections(
    tmp_path: Path, layout: str, own_pg: PrivatePostgres
) -> None:
    server = own_pg
    server.execute("CREATE DATABASE shop")
    server.execute("CREATE TABLE items (id INT PRIMARY KEY, v INT, note TEXT)", "shop")

    def cut() -> None:
        server.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'shop' "
            "AND pid <> pg_backend_pid() AND query ILIKE '%logical_slot%'"
        )

    with contextlib.ExitStack() as cleanup:
        _faults(
            tmp_path, server, pg_decl(server, "shop", chunk_rows=3000, **LAYOUTS[layout]),
            _pg_executor(server, "shop", cleanup), kills=10, min_changes=100_000, cut_connections=cut,
        )  # fmt: skip

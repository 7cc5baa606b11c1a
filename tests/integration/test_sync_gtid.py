"""Resuming by GTID when another MariaDB server takes over (ADR 0035).

A binlog position (file, offset) means something only on the server that wrote it. Every replica
commit also records the server id and the MariaDB GTID there; when the sync finds itself talking
to another server (a promoted replica), it finds the place after that GTID in the new server's
binlog and goes on from there: nothing lost, nothing applied twice.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.databases import DatabaseUnavailable
from harness.private_databases import PrivateMariaDB
from harness.sync_helpers import lake_rows, mysql_decl, rows_sorted, syncer_of, write_project
from shoal.lake import progress
from shoal.project import Project
from shoal.replicate.errors import ReplicationNotConfigured


@pytest.fixture
def pair() -> Iterator[tuple[PrivateMariaDB, PrivateMariaDB]]:
    primary = PrivateMariaDB(server_id=1, extra_args=["--log-slave-updates"])
    replica = PrivateMariaDB(server_id=2, extra_args=["--log-slave-updates"])
    try:
        primary.start()
        replica.start()
    except DatabaseUnavailable as exc:
        primary.stop()
        replica.stop()
        pytest.skip(str(exc))
    try:
        yield primary, replica
    finally:
        primary.stop()
        replica.stop()


COLUMNS = ["id", "name", "qty"]


def _rows(server: PrivateMariaDB, db: str) -> list[tuple[Any, ...]]:
    return rows_sorted(server.execute(f"SELECT {', '.join(COLUMNS)} FROM {db}.items"))


def _caught_up(primary: PrivateMariaDB, replica: PrivateMariaDB) -> None:
    gtid = primary.execute("SELECT @@gtid_binlog_pos")[0][0]
    assert replica.execute(f"SELECT MASTER_GTID_WAIT('{gtid}', 30)")[0][0] == 0


def test_a_promoted_replica_resumes_after_the_recorded_gtid(
    tmp_path: Path, pair: tuple[PrivateMariaDB, PrivateMariaDB]
) -> None:
    primary, replica = pair
    # the replica's binlog coordinates differ from the primary's (other file numbers)
    replica.execute("FLUSH BINARY LOGS")
    replica.execute("FLUSH BINARY LOGS")
    replica.execute(
        f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={primary.port}, MASTER_USER='root', "
        "MASTER_PASSWORD='', MASTER_USE_GTID=slave_pos"
    )
    replica.execute("START SLAVE")
    db = f"crm_{uuid.uuid4().hex[:8]}"
    primary.execute(f"CREATE DATABASE {db}")
    primary.execute(f"CREATE TABLE {db}.items (id INT PRIMARY KEY, name VARCHAR(20), qty INT)")
    primary.execute(
        f"INSERT INTO {db}.items VALUES " + ", ".join(f"({i}, 'i{i}', {i})" for i in range(1, 101))
    )

    directory = tmp_path / "proj"
    project = Project.load(write_project(directory, {"crm": mysql_decl(primary, db)}))
    syncer_of(project).run()
    primary.execute(f"UPDATE {db}.items SET qty = qty + 1000 WHERE id <= 10")
    syncer_of(project).run()
    table = project.lake.table("crm_replica.items")
    assert table.app_version(progress.binlog_server("crm", "items")) == 1
    assert table.app_version(progress.binlog_gtid("crm", "items")) is not None
    assert lake_rows(table, COLUMNS) == _rows(primary, db)

    # changes the sync has not read yet, then the primary goes away and the replica takes over
    primary.execute(f"DELETE FROM {db}.items WHERE id BETWEEN 20 AND 29")
    primary.execute(f"INSERT INTO {db}.items VALUES (500, 'late', 5)")
    _caught_up(primary, replica)
    replica.execute("STOP SLAVE")
    replica.execute("RESET SLAVE ALL")
    primary.stop(remove=False)
    replica.execute(f"UPDATE {db}.items SET name = 'after' WHERE id IN (1, 500)")
    replica.execute(f"INSERT INTO {db}.items VALUES (600, 'new', 6)")

    project = Project.load(write_project(directory, {"crm": mysql_decl(replica, db)}))
    before = table.version
    syncer_of(project).run()
    assert lake_rows(table, COLUMNS) == _rows(replica, db)
    assert table.app_version(progress.binlog_server("crm", "items")) == 2
    # and from the new server's own coordinates on: nothing new, no commit
    syncer_of(project).run()
    version = table.version
    assert version > before
    time.sleep(0.2)
    syncer_of(project).run()
    assert table.version == version


def test_another_server_without_a_recorded_gtid_is_one_line(
    tmp_path: Path, pair: tuple[PrivateMariaDB, PrivateMariaDB]
) -> None:
    primary, replica = pair
    db = f"crm_{uuid.uuid4().hex[:8]}"
    for server in (primary, replica):
        server.execute(f"CREATE DATABASE {db}")
        server.execute(f"CREATE TABLE {db}.items (id INT PRIMARY KEY, name VARCHAR(20), qty INT)")
    primary.execute(f"INSERT INTO {db}.items VALUES (1, 'a', 1)")
    directory = tmp_path / "proj"
    project = Project.load(write_project(directory, {"crm": mysql_decl(primary, db)}))
    syncer_of(project).run()
    project = Project.load(write_project(directory, {"crm": mysql_decl(replica, db)}))
    syncer = syncer_of(project)
    original = syncer.source.resume_position

    # as a replica written before GTIDs were recorded: a position, nothing beside it
    def without_gtid(name: str, position: int, recorded: dict[str, int | None]) -> int:
        return original(name, position, {**recorded, progress.binlog_gtid("crm", "items"): None})

    syncer.source.resume_position = without_gtid  # type: ignore[method-assign]
    with pytest.raises(ReplicationNotConfigured, match=r"server 1, this is server 2") as info:
        syncer.run()
    assert "\n" not in str(info.value)

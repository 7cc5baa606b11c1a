"""Private MariaDB / PostgreSQL servers with change capture on, and scratch databases in them, for
the integration tests (the shared servers of tests/conftest.py run without it; see
tests/harness/private_databases.py).

Fixtures:
  maria / pg          PrivateMariaDB / PrivatePostgres for the test module (one per module, so what a
                      module does to its server, a purged binlog, stays there), stopped and removed after it
  own_maria / own_pg  the same, for one test alone (tests that kill or restart the server)
  mdb / pdb           name of a fresh database in `maria` (utf8mb4) / `pg`, dropped after the test
                      (PostgreSQL: its replication slots first, then the database, connections forced off)
  private_db          parametrized mysql, postgres: a ScratchDB (kind, server, name, .sql(), .decl())
                      on `maria`+`mdb`, then on `pg`+`pdb`; a server is started only when asked for

A private server that cannot run here (no root, not installed) skips the test, or fails it in strict
mode (CI=true / SHOAL_TEST_STRICT=1), like the shared services of tests/conftest.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from harness.private_databases import PrivateMariaDB, PrivatePostgres
from harness.sync_helpers import ScratchDB, start_private


def _scratch_name(request: pytest.FixtureRequest) -> str:
    # The test module in the name says who left a database behind; the hex keeps tests apart.
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    return f"{module}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def maria() -> Iterator[PrivateMariaDB]:
    yield from start_private("mysql")


@pytest.fixture(scope="module")
def pg() -> Iterator[PrivatePostgres]:
    yield from start_private("postgres")


@pytest.fixture
def own_maria() -> Iterator[PrivateMariaDB]:
    yield from start_private("mysql")


@pytest.fixture
def own_pg() -> Iterator[PrivatePostgres]:
    yield from start_private("postgres")


@pytest.fixture
def mdb(request: pytest.FixtureRequest, maria: PrivateMariaDB) -> Iterator[str]:
    name = _scratch_name(request)
    maria.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    yield name
    maria.execute(f"DROP DATABASE IF EXISTS {name}")


@pytest.fixture
def pdb(request: pytest.FixtureRequest, pg: PrivatePostgres) -> Iterator[str]:
    name = _scratch_name(request)
    pg.execute(f"CREATE DATABASE {name}")
    yield name
    # PostgreSQL refuses to drop a database that still has logical replication slots, FORCE or not
    pg.execute(
        f"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '{name}'"
    )
    pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["mysql", "postgres"])
def private_db(request: pytest.FixtureRequest) -> ScratchDB:
    # getfixturevalue: the mysql case neither starts nor needs PostgreSQL (and the other way round),
    # so a server that cannot run here skips only its own case
    if request.param == "mysql":
        return ScratchDB("mysql", request.getfixturevalue("maria"), request.getfixturevalue("mdb"))
    return ScratchDB("postgres", request.getfixturevalue("pg"), request.getfixturevalue("pdb"))

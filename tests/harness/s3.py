"""SeaweedFS `weed mini` as a private S3 server for tests (every port chosen free, 127.0.0.1 only)."""

from __future__ import annotations

import json
import shutil
import signal
import sys
from pathlib import Path
from typing import NamedTuple

from .ports import HOST, free_port, free_ports, port_is_open, wait_for_port, wait_until
from .processes import ManagedProcess

REGION = "us-east-1"


def weed_binary() -> Path | None:
    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return candidate
    found = shutil.which("weed")
    return Path(found) if found else None


def _admin_port() -> int:
    # weed mini's worker dials the admin gRPC at admin http port + 10000 whatever -admin.port.grpc
    # says, so pick a port whose +10000 sibling is valid and free too.
    for _ in range(200):
        p = free_port()
        if p + 10000 <= 65535 and not port_is_open(p + 10000):
            return p
    raise RuntimeError("no free port pair (p, p+10000) for weed admin")


class SeaweedS3:
    """A running `weed mini`; S3 API at `.endpoint` with credentials enforced from s3.json."""

    access_key = "shoaltest"
    secret_key = "shoaltestsecret"
    region = REGION

    def __init__(self, binary: Path, base_dir: Path, log_path: Path, buckets: tuple[str, ...] = ()) -> None:
        self.binary = binary
        self.base_dir = base_dir
        self.data_dir = base_dir / "data"
        self.config_path = base_dir / "s3.json"
        self.log_path = log_path
        self.initial_buckets = buckets
        (
            self.port,
            self._master,
            self._master_grpc,
            self._volume,
            self._volume_grpc,
            self._filer,
            self._filer_grpc,
            self._s3_grpc,
            self._iceberg,
            self._lance,
        ) = free_ports(10)
        self._admin = _admin_port()
        self._process: ManagedProcess | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def _argv(self) -> list[str]:
        argv = [
            str(self.binary),
            "mini",
            f"-dir={self.data_dir}",
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
            f"-s3.config={self.config_path}",
            f"-s3.port={self.port}",
            f"-s3.port.grpc={self._s3_grpc}",
            f"-s3.port.iceberg={self._iceberg}",
            f"-s3.port.lance={self._lance}",
            f"-master.port={self._master}",
            f"-master.port.grpc={self._master_grpc}",
            f"-volume.port={self._volume}",
            f"-volume.port.grpc={self._volume_grpc}",
            f"-filer.port={self._filer}",
            f"-filer.port.grpc={self._filer_grpc}",
            f"-admin.port={self._admin}",
            f"-admin.port.grpc={self._admin + 10000}",
            # Unix sockets default to /tmp/seaweedfs-<what>-<port>.sock and are left behind.
            f"-filer.localSocket={self.base_dir / 'filer.sock'}",
            f"-s3.localSocket={self.base_dir / 's3.sock'}",
        ]
        if self.initial_buckets:
            argv.append(f"-bucket={','.join(self.initial_buckets)}")
        return argv

    def start(self, timeout: float = 60.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "shoal-test",
                            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        self._process = ManagedProcess("seaweedfs", self._argv(), self.log_path, cwd=self.base_dir)
        proc = self._process.start()
        wait_for_port(self.port, timeout=timeout, what="SeaweedFS S3", proc=proc, log_path=self.log_path)

        # The S3 port opens before the filer behind it is ready; wait for a real answer.
        def ready() -> bool:
            try:
                self.filesystem().get_file_info("/")
                self.list_buckets()
                return True
            except Exception:
                return False

        wait_until(ready, timeout=timeout, what="SeaweedFS S3 API", proc=proc, log_path=self.log_path)
        for b in self.initial_buckets:
            wait_until(
                lambda b=b: b in self.list_buckets(),  # type: ignore[misc]
                timeout=timeout,
                what=f"SeaweedFS bucket {b}",
                proc=proc,
                log_path=self.log_path,
            )

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop(signal.SIGTERM, timeout=20.0)
        # gRPC sockets it puts in /tmp whatever the flags say: remove ours (named by our ports).
        for what, port in (
            ("master-grpc", self._master_grpc),
            ("volume-grpc", self._volume_grpc),
            ("filer-grpc", self._filer_grpc),
            ("s3-grpc", self._s3_grpc),
            ("admin-grpc", self._admin + 10000),
            ("filer", self._filer),
            ("s3", self.port),
        ):
            Path(f"/tmp/seaweedfs-{what}-{port}.sock").unlink(missing_ok=True)

    # -- clients -----------------------------------------------------------------------------------
    def filesystem(self):  # type: ignore[no-untyped-def]
        """A pyarrow S3FileSystem for this server."""
        from pyarrow import fs

        return fs.S3FileSystem(
            access_key=self.access_key,
            secret_key=self.secret_key,
            endpoint_override=f"{HOST}:{self.port}",
            scheme="http",
            region=self.region,
            allow_bucket_creation=True,
            allow_bucket_deletion=True,
        )

    def create_bucket(self, name: str) -> str:
        self.filesystem().create_dir(name)
        return name

    def list_buckets(self) -> list[str]:
        from pyarrow import fs

        infos = self.filesystem().get_file_info(fs.FileSelector("/"))
        return [i.base_name for i in infos]

    def storage_options(self, bucket: str | None = None) -> dict[str, str]:
        """deltalake / object_store options for this server (`bucket` is accepted for symmetry)."""
        del bucket
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
            "AWS_ALLOW_HTTP": "true",
            "conditional_put": "etag",
        }

    def __repr__(self) -> str:
        return f"SeaweedS3(endpoint={self.endpoint!r})"


class LakeRoot(NamedTuple):
    """A fresh lake location: `root` ("s3://bucket/prefix") and deltalake storage options."""

    root: str
    storage_options: dict[str, str]

    @property
    def bucket(self) -> str:
        return self.root.removeprefix("s3://").split("/", 1)[0]

    @property
    def prefix(self) -> str:
        return self.root.removeprefix("s3://").split("/", 1)[1]

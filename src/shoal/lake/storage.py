"""Where the lake lives: a local directory or an S3-compatible bucket.

Every storage SDK call sits behind this module (deltalake and DuckDB get their
own settings derived from the same :class:`LakeLocation`), so the rest of shoal
only sees table URIs.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.fs as pafs

from shoal.errors import ConfigError, StorageUnavailable

#: option names users give for S3 (deltalake's object_store spelling), mapped from aliases.
_S3_ALIASES = {
    "endpoint": "AWS_ENDPOINT_URL",
    "endpoint_url": "AWS_ENDPOINT_URL",
    "aws_endpoint": "AWS_ENDPOINT_URL",
    "access_key_id": "AWS_ACCESS_KEY_ID",
    "secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "region": "AWS_REGION",
    "allow_http": "AWS_ALLOW_HTTP",
}
SECRET_KEYS = frozenset({"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "password", "sasl.password"})


def _normalise_options(options: Mapping[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (options or {}).items():
        norm = _S3_ALIASES.get(key.lower(), key)
        out[norm.upper() if norm.lower().startswith("aws_") else norm] = str(value)
    return out


def redact(options: Mapping[str, str]) -> dict[str, str]:
    """A copy safe to print: secret values replaced."""
    return {k: ("***" if k in SECRET_KEYS or "secret" in k.lower() else v) for k, v in options.items()}


@dataclass(frozen=True)
class LakeLocation:
    """The lake root, normalised: ``scheme`` is ``file`` or ``s3``."""

    root: str
    scheme: str
    storage_options: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, root: str, storage_options: Mapping[str, str] | None = None) -> LakeLocation:
        parsed = urlparse(root)
        if parsed.scheme in ("s3", "s3a"):
            if not parsed.netloc:
                raise ConfigError(f"lake root {root!r}: expected s3://bucket[/prefix]")
            opts = _normalise_options(storage_options)
            endpoint = opts.get("AWS_ENDPOINT_URL", "")
            if endpoint.startswith("http://"):
                opts.setdefault("AWS_ALLOW_HTTP", "true")
            opts.setdefault("AWS_REGION", "us-east-1")
            # Safe concurrent writers on S3 need conditional PUT (S3, MinIO, SeaweedFS have it).
            opts.setdefault("conditional_put", "etag")
            return cls(f"s3://{parsed.netloc}{parsed.path.rstrip('/')}", "s3", opts)
        if parsed.scheme in ("", "file"):
            path = Path(parsed.path if parsed.scheme == "file" else root).expanduser().resolve()
            return cls(str(path), "file", {})
        raise ConfigError(f"lake root {root!r}: unsupported scheme {parsed.scheme!r} (use a path or s3://)")

    def table_uri(self, namespace: str, table: str) -> str:
        return f"{self.root}/{namespace}/{table}"

    # -- filesystem access (listing, sidecar files) -------------------------------------------------
    def filesystem(self) -> tuple[pafs.FileSystem, str]:
        """A pyarrow filesystem and the root path inside it."""
        if self.scheme == "file":
            return pafs.LocalFileSystem(), self.root
        opts = self.storage_options
        endpoint = urlparse(opts.get("AWS_ENDPOINT_URL", ""))
        fs = pafs.S3FileSystem(
            access_key=opts.get("AWS_ACCESS_KEY_ID"),
            secret_key=opts.get("AWS_SECRET_ACCESS_KEY"),
            session_token=opts.get("AWS_SESSION_TOKEN"),
            region=opts.get("AWS_REGION", "us-east-1"),
            endpoint_override=endpoint.netloc or None,
            scheme=endpoint.scheme or "https",
            connect_timeout=5,
            request_timeout=20,
            retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=2),
        )
        return fs, self.root.removeprefix("s3://")

    def check_writable(self) -> None:
        """Fail fast, with one line, when the lake root cannot be written."""
        if self.scheme == "file":
            path = Path(self.root)
            try:
                path.mkdir(parents=True, exist_ok=True)
                # a name of its own: processes starting together (`shoal up`'s workers) each probe,
                # and one's unlink must not take another's probe away
                probe = path / f".shoal-write-probe-{os.getpid()}-{uuid.uuid4().hex}"
                probe.write_bytes(b"")
                probe.unlink()
            except OSError as exc:
                raise StorageUnavailable(f"lake root {self.root} is not writable: {exc.strerror}") from exc
            return
        fs, base = self.filesystem()
        try:
            fs.get_file_info(base.split("/", 1)[0])
        except OSError as exc:
            endpoint = self.storage_options.get("AWS_ENDPOINT_URL", "default AWS endpoint")
            raise StorageUnavailable(
                f"lake root {self.root} unreachable at {endpoint}: {str(exc).splitlines()[0]}"
            ) from exc

    def read_json(self, path: str) -> dict[str, object] | None:
        fs, base = self.filesystem()
        try:
            with fs.open_input_stream(f"{base}/{path}") as stream:
                data = json.loads(stream.read().decode())
        except (FileNotFoundError, OSError):
            return None
        return data if isinstance(data, dict) else None

    def write_json(self, path: str, data: Mapping[str, object]) -> None:
        fs, base = self.filesystem()
        full = f"{base}/{path}"
        if self.scheme == "file":
            os.makedirs(os.path.dirname(full), exist_ok=True)
        with fs.open_output_stream(full) as stream:
            stream.write(json.dumps(data, indent=2, sort_keys=True).encode())

    def list_dirs(self, path: str = "") -> list[str]:
        fs, base = self.filesystem()
        target = f"{base}/{path}".rstrip("/")
        try:
            infos = fs.get_file_info(pafs.FileSelector(target, allow_not_found=True))
        except OSError as exc:
            raise StorageUnavailable(f"cannot list {target}: {str(exc).splitlines()[0]}") from exc
        return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)

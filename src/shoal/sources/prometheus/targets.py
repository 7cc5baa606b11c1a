"""Scrape targets from a Prometheus ``file_sd`` file (YAML or JSON), re-read when it changes.

Format (exactly Prometheus's)::

    - targets: ["host1:9100", "host2:9100"]
      labels: {env: prod, job: node}

Labels starting with ``__`` configure the scrape and are not stored: ``__metrics_path__``
(default ``/metrics``) and ``__scheme__`` (default ``http``). ``job`` defaults to the scraper's
job name and ``instance`` to the target address, as in Prometheus.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from shoal.errors import ConfigError


@dataclass(frozen=True)
class Target:
    """One endpoint to scrape and the labels its samples get."""

    address: str
    url: str
    labels: tuple[tuple[str, str], ...]  # sorted; includes job and instance

    @property
    def job(self) -> str:
        return dict(self.labels)["job"]

    @property
    def instance(self) -> str:
        return dict(self.labels)["instance"]

    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)


def parse_targets(data: Any, *, default_job: str, source: str = "targets file") -> list[Target]:
    """Targets from decoded file_sd data (a list of ``{targets, labels}`` groups)."""
    if data is None:
        return []
    if not isinstance(data, list):
        raise ConfigError(f"{source}: expected a list of {{targets, labels}} groups")
    out: list[Target] = []
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for i, group in enumerate(data):
        if not isinstance(group, dict) or not isinstance(group.get("targets", []), list):
            raise ConfigError(f"{source}: group {i} must be a mapping with a 'targets' list")
        raw_labels = group.get("labels") or {}
        if not isinstance(raw_labels, dict):
            raise ConfigError(f"{source}: group {i} 'labels' must be a mapping")
        labels = {str(k): str(v) for k, v in raw_labels.items()}
        path = labels.get("__metrics_path__", "/metrics")
        scheme = labels.get("__scheme__", "http")
        if not path.startswith("/"):
            path = "/" + path
        for addr in group.get("targets") or []:
            address = str(addr).strip()
            if not address:
                raise ConfigError(f"{source}: group {i} has an empty target")
            final = {k: v for k, v in labels.items() if not k.startswith("__")}
            final.setdefault("job", default_job)
            final.setdefault("instance", address)
            key = (f"{scheme}://{address}{path}", tuple(sorted(final.items())))
            if key in seen:
                continue
            seen.add(key)
            out.append(Target(address=address, url=key[0], labels=key[1]))
    return out


def load_targets(path: str | Path, *, default_job: str) -> list[Target]:
    """Read a file_sd file (YAML is a superset of JSON, so one loader reads both)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as err:
        raise ConfigError(f"targets file {p}: cannot read: {err.strerror or err}") from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"targets file {p}: invalid YAML/JSON: {str(err).splitlines()[0]}") from err
    return parse_targets(data, default_job=default_job, source=f"targets file {p}")


class TargetsFile:
    """A targets file watched by (mtime, size, inode): :meth:`current` re-reads it on change.

    If a changed file is invalid the previous targets are kept and the error is remembered in
    :attr:`last_error` (a half-written file must not stop scraping).
    """

    def __init__(self, path: str | Path, *, default_job: str) -> None:
        self.path = Path(path)
        self.default_job = default_job
        self._stamp: tuple[int, int, int] | None = None
        self._targets: list[Target] = []
        self.last_error: str | None = None
        self.reloads = 0

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def current(self) -> list[Target]:
        stamp = self._file_stamp()
        if stamp is None:
            if self._stamp is None:
                raise ConfigError(f"targets file {self.path}: does not exist")
            self.last_error = f"targets file {self.path}: disappeared; keeping previous targets"
            return self._targets
        if stamp != self._stamp:
            try:
                self._targets = load_targets(self.path, default_job=self.default_job)
                self.last_error = None
                self.reloads += 1
            except ConfigError as err:
                if self._stamp is None:
                    raise
                self.last_error = str(err)
            self._stamp = stamp
        return self._targets

"""Lake tables read at a pinned snapshot that is re-pinned as soon as the table changes (ADR 0021).

A view over ``delta_scan(uri)`` resolves the table's snapshot (log listing, checkpoint and commit
replay, file statistics) on every query: 15-20% of the CPU of a pruned query on a 10M-row table.
DuckDB's delta extension can instead ``ATTACH uri (TYPE delta, PIN_SNAPSHOT)``, which resolves it
once. To stay as fresh as ``delta_scan``, every query first checks each pinned table for a new
commit and re-pins the ones that have one:

* a local lake: one ``stat`` of ``_delta_log/`` (any commit adds a file there, so the directory's
  mtime moves). An unchanged mtime is trusted only when it was recorded more than a second after the
  last change -- file systems stamp with a coarse clock, so a commit within the same tick as the
  previous look could otherwise keep the old stamp; otherwise the log is read (``update_incremental``).
* a table that changed goes back to a ``delta_scan`` view and is pinned again only once it has been
  quiet for ``QUIET_S``. Pinning pays on tables read many times per commit (dashboards, analysts);
  on a table committed to every second or two (a pipeline's table, a watched model) every query
  would pay an ``ATTACH`` of the new snapshot instead -- measured, that made each query of a live
  table 3-5x dearer than a scan and the billing watcher's cycle 2-3x longer
  (docs/benchmarks.md, 2026-12-06 freshness bisect).
* other stores have no such cheap signal yet: their tables stay ``delta_scan`` views.

Any failure to pin or re-pin (a locked-down connection that may not ATTACH, a transaction in
progress) puts that table back on a ``delta_scan`` view for good: never stale, at worst slower.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import duckdb

from shoal.errors import ShoalError
from shoal.lake import Lake, Table, sql_ident
from shoal.lake.mergeonread import MergeOnRead, resolve_sql

#: an unchanged directory mtime proves "no commit since" only if recorded this long after it
MTIME_TRUST_S = 1.0
#: a table that changed is scanned until it has had no commit for this long, then pinned again
QUIET_S = 5.0
#: the alias of the scan views made here (so a view someone else replaced is told apart)
_SCAN_ALIAS = "__shoal_scan"
#: how the attached databases holding pinned snapshots are named (DuckDB has no hidden attached
#: databases: they are listed by duckdb_databases() and information_schema, so the name says what
#: they are; Connection's SHOW DATABASES leaves them out)
PIN_PREFIX = "__shoal_internal_snapshot_"


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _local_log(uri: str) -> Path | None:
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path) if parsed.scheme else uri) / "_delta_log"
    return None


@dataclass
class _Pin:
    uri: str
    log: Path
    alias: str = ""
    version: int = -1
    mtime_ns: int = -1
    seen_at: float = 0.0
    scanning: bool = False  # on a delta_scan view since its last change (hot), not pinned


class PinnedSnapshots:
    """Keeps each local lake table's view on a pinned, current snapshot (``pin=False``: every view
    a ``delta_scan``, as before; for A/B runs)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, lake: Lake, *, pin: bool = True) -> None:
        self._con = con
        self._pin = pin
        self._lake = lake
        self._pins: dict[str, _Pin] = {}
        self._tables: dict[str, Table] = {}
        self._serial = 0
        self._lock = threading.Lock()  # one re-pin at a time: another thread may share the connection

    def mount(self, name: str, uri: str) -> None:
        """(Re)create the view ``name`` (``ns.table``): pinned when the lake is local."""
        log = _local_log(uri) if self._pin else None
        with self._lock:
            if log is None:
                self._scan_view(name, uri)
                return
            self._pins[name] = _Pin(uri, log)
            self._repin(name)

    def unpin_all(self) -> None:
        """Every view this made back on ``delta_scan``, every pin detached, none made from now on."""
        with self._lock:
            self._pin = False
            for name, pin in list(self._pins.items()):
                if self._still_ours(name, pin):
                    self._scan_view(name, pin.uri)
                self._detach(pin.alias)
            self._pins.clear()

    def ensure_fresh(self) -> None:
        """Re-pin every table that has had a commit since it was pinned."""
        with self._lock:
            self._refresh_all()

    def _refresh_all(self) -> None:
        now = time.time()
        for name, pin in list(self._pins.items()):
            try:
                st = os.stat(pin.log)
            except OSError:
                st = None
            if pin.scanning:
                # fresh by construction; pin again once the table has been quiet for a while
                if st is None:
                    continue
                if st.st_mtime_ns != pin.mtime_ns:
                    pin.mtime_ns = st.st_mtime_ns
                elif now - st.st_mtime_ns / 1e9 >= QUIET_S:
                    self._repin(name)
                continue
            if (
                st is not None
                and st.st_mtime_ns == pin.mtime_ns
                and pin.seen_at - st.st_mtime_ns / 1e9 > MTIME_TRUST_S
            ):
                continue
            if st is not None and self._version(name) == pin.version:
                if st.st_mtime_ns == pin.mtime_ns:
                    pin.seen_at = now  # still current: trust the stamp once it is old enough
                else:
                    # the log changed without a commit (a checkpoint, a log cleanup): the same
                    # snapshot, pinned again at once so its scans replay the new checkpoint
                    # (ADR 0057) rather than scanned as if hot
                    self._repin(name)
                continue
            self._scan_hot(name, st.st_mtime_ns if st is not None else -1)

    def _scan_hot(self, name: str, mtime_ns: int) -> None:
        """A pinned table that has a new commit: read it with delta_scan until it is quiet."""
        pin = self._pins[name]
        if not self._still_ours(name, pin):
            del self._pins[name]
            self._detach(pin.alias)
            return
        self._scan_view(name, pin.uri)
        self._detach(pin.alias)
        pin.alias, pin.scanning, pin.mtime_ns, pin.version = "", True, mtime_ns, -1

    def _version(self, name: str) -> int:
        try:
            if name not in self._tables:  # one handle per table: later reads replay new commits only
                self._tables[name] = self._lake.table(name)
            return self._tables[name].version
        except ShoalError:  # unreadable now: differs from any pinned version, so it is re-pinned
            return -2

    def _still_ours(self, name: str, pin: _Pin) -> bool:
        """The view is still the one this pin made: a view someone dropped or replaced (e.g. a
        sandbox's masking view) is theirs, and is never re-created or re-pointed here."""
        ns, tbl = name.split(".", 1)
        row = self._con.execute(
            "SELECT sql FROM duckdb_views() WHERE schema_name = ? AND view_name = ? AND NOT temporary",
            [ns, tbl],
        ).fetchone()
        marker = _SCAN_ALIAS if pin.scanning else pin.alias
        return row is not None and bool(marker) and marker in str(row[0])

    def _repin(self, name: str) -> None:
        pin = self._pins[name]
        if (pin.alias or pin.scanning) and not self._still_ours(name, pin):
            del self._pins[name]
            self._detach(pin.alias)
            return
        try:
            # stamp, then version, then attach: a commit landing in between makes the pin newer
            # than what is recorded, which the next look re-pins (never the other way round)
            st = os.stat(pin.log)
            seen = time.time()
            version = self._version(name)
            self._serial += 1
            alias = f"{PIN_PREFIX}{self._serial}_of_{name.replace('.', '_')}"
            self._con.execute(f"ATTACH {_lit(pin.uri)} AS {sql_ident(alias)} (TYPE delta, PIN_SNAPSHOT)")
            ns, tbl = name.split(".", 1)
            body = resolve_sql(sql_ident(alias), self._layout(name), fixed=True)  # one pinned snapshot
            self._con.execute(f"CREATE OR REPLACE VIEW {sql_ident(ns)}.{sql_ident(tbl)} AS {body}")
        except (duckdb.Error, OSError):
            # could not pin: scan the table on every query instead, as before pinning existed
            del self._pins[name]
            self._scan_view(name, pin.uri)
            if pin.alias:
                self._detach(pin.alias)
            return
        old, pin.alias, pin.scanning = pin.alias, alias, False
        pin.mtime_ns, pin.seen_at, pin.version = st.st_mtime_ns, seen, version
        if old:
            self._detach(old)

    def _detach(self, alias: str) -> None:
        with contextlib.suppress(duckdb.Error):  # a pin left attached costs memory only
            self._con.execute(f"DETACH {sql_ident(alias)}")

    def _layout(self, name: str) -> MergeOnRead | None:
        """A merge-on-read table's layout (its view then resolves the rows per key), else None."""
        try:
            if name not in self._tables:
                self._tables[name] = self._lake.table(name)
            return self._tables[name].layout()
        except ShoalError:
            return None

    def _scan_view(self, name: str, uri: str) -> None:
        ns, tbl = name.split(".", 1)
        body = resolve_sql(f"delta_scan({_lit(uri)}) AS {_SCAN_ALIAS}", self._layout(name))
        self._con.execute(f"CREATE OR REPLACE VIEW {sql_ident(ns)}.{sql_ident(tbl)} AS {body}")

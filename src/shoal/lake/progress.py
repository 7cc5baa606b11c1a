"""Exactly-once progress: where each writer stands, kept in the table it writes.

Every writer that must not apply its input twice (a Kafka pipeline, a model refresh, a scrape
round, a generated history) names its progress with a key from this module and writes the new
position as a Delta ``txn`` action *in the same commit as its rows* (ADR 0004). Before a commit it
reads its keys from one snapshot of the table (:meth:`Progress.read`) and asks what would be written
twice:

* :meth:`Progress.applied` — the whole unit already landed (a scrape round, a model input version);
* :meth:`Progress.advancing` — the ``txn`` versions that move forward (the ones to write);
* :meth:`Progress.at` — every key stands exactly where proposed (for keys that name a snapshot
  rather than a position in a stream, e.g. a model's definition hash and input versions: a
  different value either way means the writer must redo its work);
* :meth:`Progress.position` — a stream's committed position, below which a replayed record is
  dropped (Kafka offsets: the data below the next offset is already in the table).

The key strings are part of the on-disk format: the spellings below are those earlier releases
wrote, so existing lakes resume where they stopped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shoal.lake.table import Table

#: the ``txn`` key a model commits its SQL's hash under (a changed definition means a rebuild)
MODEL_DEFINITION = "model:definition"


def kafka_offset(pipeline: str, topic: str, partition: int) -> str:
    """The key of a pipeline's next offset in one topic partition."""
    return f"shoal:{pipeline}:{topic}:{partition}"


def model_input(upstream: str) -> str:
    """The key of the upstream table version a model was last refreshed from."""
    return f"model:{upstream}"


def scrape_round(job: str) -> str:
    """The key of a scrape job's last written round (its interval-aligned timestamp in ms)."""
    return f"scrape:{job}"


def generated(source: str, *parts: object) -> str:
    """The key of a deterministic generator's progress (e.g. a simulated fleet's history)."""
    return ":".join([source, *(str(p) for p in parts)])


def binlog_position(source: str, table: str) -> str:
    """The key of a MySQL binlog position applied to a replica table (:func:`encode_binlog`)."""
    return f"binlog:{source}:{table}"


def binlog_server(source: str, table: str) -> str:
    """The key of the ``@@server_id`` whose binlog a replica's :func:`binlog_position` is in."""
    return f"binlog-server:{source}:{table}"


def binlog_gtid(source: str, table: str) -> str:
    """The key of the sequence number of the GTID (MariaDB domain-server-sequence) at a replica's
    :func:`binlog_position`; its domain and server are under :func:`binlog_gtid_origin`."""
    return f"gtid:{source}:{table}"


def binlog_gtid_origin(source: str, table: str) -> str:
    """The key of a replica GTID's domain and server id, ``domain << 32 | server_id``."""
    return f"gtid-origin:{source}:{table}"


def lsn(source: str, table: str) -> str:
    """The key of the PostgreSQL LSN (end of the last applied transaction) of a replica table."""
    return f"lsn:{source}:{table}"


def compacted(table: str) -> str:
    """The key of the highest change sequence a merge-on-read table's compaction folded into its
    base (``shoal.lake.morcompact``): written by the compaction only, so it never conflicts with
    the writer appending changes."""
    return f"compacted:{table}"


def snapshot_chunk(source: str, table: str) -> str:
    """The key of a replica snapshot's last copied primary key (integer keys) or chunk count."""
    return f"snapshot:{source}:{table}"


def snapshot_start(source: str, table: str) -> str:
    """The key of the source position a replica snapshot started at (changes apply from there)."""
    return f"snapshot-from:{source}:{table}"


def snapshot_end(source: str, table: str) -> str:
    """The key of the source position read after a replica snapshot's last chunk: from there on
    the replica equals the source at each applied position (an insert is a new key)."""
    return f"snapshot-end:{source}:{table}"


def cursor(source: str, table: str) -> str:
    """The key of a cursor-mode replica's high-water mark (its cursor column as an integer)."""
    return f"cursor:{source}:{table}"


def dead_letter_replay(pipeline: str) -> str:
    """The key of a pipeline's dead-letter replay batches committed to its main table (a count).

    Written in the replay's data commit, built on the snapshot the replay checked for rows it
    already holds: two replays of one pipeline cannot both commit on that snapshot (ADR 0026).
    """
    return f"dlq-replay:{pipeline}"


def encode_binlog(file_sequence: int, position: int) -> int:
    """A binlog (file number, offset) as one growing integer (offsets are below 2**32)."""
    return (int(file_sequence) << 32) | int(position)


def decode_binlog(value: int) -> tuple[int, int]:
    return value >> 32, value & 0xFFFFFFFF


@dataclass(frozen=True)
class Progress:
    """The positions of some keys in one snapshot of a table (None: never written)."""

    positions: Mapping[str, int | None] = field(default_factory=dict)
    #: the snapshot the positions were read from (None: the table does not exist yet)
    table_version: int | None = None

    @classmethod
    def read(cls, table: Table | None, keys: Iterable[str]) -> Progress:
        """Read ``keys`` from the latest snapshot of ``table`` (all from the same snapshot)."""
        wanted = list(dict.fromkeys(keys))
        if table is None:
            return cls(dict.fromkeys(wanted), None)
        version, positions = table.app_versions(wanted)
        return cls(positions, version)

    def position(self, key: str) -> int | None:
        return self.positions.get(key)

    def applied(self, proposed: Mapping[str, int]) -> bool:
        """Whether every key already stands at or past its proposed position (a replay)."""
        if not proposed:
            return False
        for key, version in proposed.items():
            have = self.positions.get(key)
            if have is None or have < version:
                return False
        return True

    def at(self, proposed: Mapping[str, int]) -> bool:
        """Whether every key stands exactly at its proposed position (vacuously true when empty).

        For keys that identify what was consumed rather than how far: a model's definition hash
        may go down when it changes, an upstream's version when the table is recreated; both
        mean "not applied", which :meth:`applied` (at or past) would miss.
        """
        return all(self.positions.get(key) == version for key, version in proposed.items())

    def advancing(self, proposed: Mapping[str, int]) -> dict[str, int]:
        """The proposed positions that move forward: what a commit should write as ``txn``."""
        out: dict[str, int] = {}
        for key, version in proposed.items():
            have = self.positions.get(key)
            if have is None or version > have:
                out[key] = int(version)
        return out

    def stale(self, first: Mapping[str, int]) -> dict[str, int]:
        """For streams whose unit starts at ``first[key]``: the committed positions past that start.

        Records of such a stream below its committed position are already in the table and must
        be dropped before the commit (a replay after a crash, or a zombie worker's batch).
        """
        out: dict[str, int] = {}
        for key, start in first.items():
            have = self.positions.get(key)
            if have is not None and have > start:
                out[key] = have
        return out

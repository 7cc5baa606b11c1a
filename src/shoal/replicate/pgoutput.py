"""A decoder of PostgreSQL's ``pgoutput`` logical replication messages (protocol version 1).

The message formats are PostgreSQL's "Logical Replication Message Formats" chapter. Only what a
replica needs: Begin, Commit, Relation, Insert, Update, Delete, Truncate (others are skipped).
Column values arrive as text (or ``None`` for NULL, :data:`UNCHANGED` for an unchanged TOASTed value).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


#: an unchanged TOASTed value in an update (the old value stays)
UNCHANGED: Any = _Unchanged()


@dataclass(frozen=True)
class Relation:
    oid: int
    namespace: str
    name: str
    columns: tuple[str, ...]
    key_columns: tuple[str, ...]


@dataclass
class Message:
    kind: str  # begin, commit, relation, insert, update, delete, truncate, other
    relation: Relation | None = None
    new: dict[str, Any] | None = None
    old: dict[str, Any] | None = None
    end_lsn: int | None = None
    truncated: list[Relation] = field(default_factory=list)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> str:
        b = self.data[self.pos : self.pos + 1].decode("ascii")
        self.pos += 1
        return b

    def int8(self) -> int:
        v: int = self.data[self.pos]
        self.pos += 1
        return v

    def int16(self) -> int:
        (v,) = struct.unpack_from(">h", self.data, self.pos)
        self.pos += 2
        return int(v)

    def int32(self) -> int:
        (v,) = struct.unpack_from(">i", self.data, self.pos)
        self.pos += 4
        return int(v)

    def int64(self) -> int:
        (v,) = struct.unpack_from(">q", self.data, self.pos)
        self.pos += 8
        return int(v)

    def string(self) -> str:
        end = self.data.index(b"\0", self.pos)
        s = self.data[self.pos : end].decode("utf-8")
        self.pos = end + 1
        return s

    def tuple(self, relation: Relation) -> dict[str, Any]:
        n = self.int16()
        out: dict[str, Any] = {}
        for i in range(n):
            kind = self.byte()
            name = relation.columns[i]
            if kind == "n":
                out[name] = None
            elif kind == "u":
                out[name] = UNCHANGED
            else:  # 't' text (or 'b' binary, which we never ask for)
                length = self.int32()
                out[name] = self.data[self.pos : self.pos + length].decode("utf-8")
                self.pos += length
        return out


class Decoder:
    """Decodes a stream of pgoutput messages; remembers Relation messages (they precede rows)."""

    def __init__(self) -> None:
        self.relations: dict[int, Relation] = {}

    def decode(self, data: bytes) -> Message:
        r = _Reader(bytes(data))
        kind = r.byte()
        if kind == "B":
            return Message("begin")
        if kind == "C":
            r.int8()
            r.int64()  # commit LSN
            end = r.int64()
            return Message("commit", end_lsn=end)
        if kind == "R":
            oid = r.int32()
            ns = r.string()
            name = r.string()
            r.int8()  # replica identity setting
            cols, keys = [], []
            for _ in range(r.int16()):
                flags = r.int8()
                col = r.string()
                r.int32()  # type oid
                r.int32()  # type modifier
                cols.append(col)
                if flags & 1:
                    keys.append(col)
            rel = Relation(oid, ns, name, tuple(cols), tuple(keys))
            self.relations[oid] = rel
            return Message("relation", relation=rel)
        if kind == "I":
            rel = self.relations[r.int32()]
            r.byte()  # 'N'
            return Message("insert", relation=rel, new=r.tuple(rel))
        if kind == "U":
            rel = self.relations[r.int32()]
            marker = r.byte()
            old = None
            if marker in ("K", "O"):
                old = r.tuple(rel)
                marker = r.byte()
            return Message("update", relation=rel, old=old, new=r.tuple(rel))
        if kind == "D":
            rel = self.relations[r.int32()]
            r.byte()  # 'K' or 'O'
            return Message("delete", relation=rel, old=r.tuple(rel))
        if kind == "T":
            n = r.int32()
            r.int8()
            rels = [self.relations[r.int32()] for _ in range(n)]
            return Message("truncate", truncated=rels)
        return Message("other")

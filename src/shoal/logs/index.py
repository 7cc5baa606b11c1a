"""The full-text index of ``logs.lines``: a tantivy index kept up to date from the table's commits.

Progress travels with the index, as it does with the lake (ADR 0004): a special document
(``kind=progress``) holds the table version the index has caught up to and the table's identity,
and it is replaced *in the same tantivy commit* as the lines of the versions it covers. Each line
document carries the table version it came from (``v``), and an update of versions ``a..b`` first
deletes every document of ``a..b``: a crash after a commit but before anyone noticed is redone
without a duplicate, a crash before the commit leaves nothing (tantivy drops uncommitted work).
New commits are read from the table's change data feed (compaction commits carry no changes).
If the table was recreated (a new Delta table id) the index is rebuilt from the current snapshot;
``rebuild()`` does that on request.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import tantivy

from shoal.lake import Lake, Table
from shoal.logs.errors import IndexBehind, IndexBusy, LogQueryError
from shoal.logs.query import LogQuery
from shoal.logs.schema import LABELS, LINES

log = logging.getLogger(__name__)

#: columns of ``logs.lines`` kept in the index (stored, so hits need no lake read)
STORED = ("id", "ts", "service", "level", "message", "host", "trace_id", "attrs")
#: text fields a query's words are looked up in
TEXT_FIELDS = ("message", "attrs")
_PROGRESS = "progress"
_LINE = "line"


def _schema() -> tantivy.Schema:
    sb = tantivy.SchemaBuilder()
    sb.add_text_field("id", stored=True, tokenizer_name="raw")
    sb.add_text_field("kind", stored=True, tokenizer_name="raw")
    sb.add_text_field("message", stored=True)
    sb.add_text_field("attrs", stored=True)
    for label in LABELS:
        sb.add_text_field(label, stored=True, tokenizer_name="raw")
    sb.add_date_field("ts", stored=True, indexed=True, fast=True)
    sb.add_integer_field("v", stored=True, indexed=True, fast=True)
    return sb.build()


@dataclass(frozen=True)
class IndexProgress:
    table_version: int
    table_id: str


@dataclass(frozen=True)
class Hit:
    """One search result; ``score`` is BM25 (0 for a filter-only search, newest first)."""

    score: float
    id: str
    ts: datetime | None
    service: str | None
    level: str | None
    message: str | None
    host: str | None
    trace_id: str | None
    attrs: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class UpdateResult:
    """What one :meth:`Indexer.update` did."""

    from_version: int | None
    to_version: int | None
    added: int
    deleted: int
    rebuilt: bool
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class LogIndex:
    """A tantivy index in ``path`` (created on first use). Search needs no writer lock."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.schema = _schema()
        self.index = tantivy.Index(self.schema, path=str(self.path), reuse=True)

    # -- reading ---------------------------------------------------------------------------------
    def searcher(self) -> tantivy.Searcher:
        self.index.reload()
        return self.index.searcher()

    def progress(self) -> IndexProgress | None:
        searcher = self.searcher()
        hits = searcher.search(tantivy.Query.term_query(self.schema, "kind", _PROGRESS), 1).hits
        if not hits:
            return None
        doc = searcher.doc(hits[0][1]).to_dict()
        return IndexProgress(int(doc["v"][0]), str(doc["id"][0]).removeprefix("progress:"))

    def num_lines(self) -> int:
        searcher = self.searcher()
        return int(searcher.num_docs) - (1 if self.progress() is not None else 0)

    def _tantivy_query(self, q: LogQuery) -> tuple[tantivy.Query, bool]:
        """The engine query and whether it ranks (text) or only filters."""
        must: list[tuple[tantivy.Occur, tantivy.Query]] = [
            (tantivy.Occur.Must, tantivy.Query.term_query(self.schema, "kind", _LINE))
        ]
        ranked = bool(q.text)
        if ranked:
            try:
                text = self.index.parse_query(q.text, list(TEXT_FIELDS))
            except ValueError as exc:
                raise LogQueryError(f"search {q.text!r}: {str(exc).splitlines()[0]}") from exc
            must.append((tantivy.Occur.Must, text))
        if q.since is not None or q.until is not None:
            must.append(
                (
                    tantivy.Occur.Must,
                    tantivy.Query.range_query(
                        self.schema, "ts", tantivy.FieldType.Date, q.since, q.until, True, q.until is None
                    ),
                )
            )
        for f in q.where:
            terms = [tantivy.Query.term_query(self.schema, f.key, v) for v in f.values]
            one = (
                terms[0]
                if len(terms) == 1
                else tantivy.Query.boolean_query([(tantivy.Occur.Should, t) for t in terms])
            )
            must.append((tantivy.Occur.MustNot if f.negate else tantivy.Occur.Must, one))
        return tantivy.Query.boolean_query(must), ranked

    def search(self, q: LogQuery) -> list[Hit]:
        """Ranked hits (best first); a search without text gives the newest matching lines."""
        query, ranked = self._tantivy_query(q)
        searcher = self.searcher()
        if ranked:
            result = searcher.search(query, q.limit, count=False)
        else:
            result = searcher.search(query, q.limit, count=False, order_by_field="ts")
        hits = []
        for key, addr in result.hits:
            doc = searcher.doc(addr).to_dict()

            def one(name: str, doc: dict[str, list[Any]] = doc) -> Any:
                vals = doc.get(name)
                return vals[0] if vals else None

            ts = one("ts")
            hits.append(
                Hit(
                    score=float(key) if ranked else 0.0,
                    id=str(one("id")),
                    ts=ts.astimezone(UTC) if isinstance(ts, datetime) else None,
                    service=one("service"),
                    level=one("level"),
                    message=one("message"),
                    host=one("host"),
                    trace_id=one("trace_id"),
                    attrs=one("attrs"),
                )
            )
        if ranked:
            # equal scores (the same message text) show the newest line first
            hits.sort(key=lambda h: (-h.score, -(h.ts.timestamp() if h.ts else 0.0)))
        return hits

    # -- writing ---------------------------------------------------------------------------------
    def writer(self, heap_bytes: int = 128_000_000, threads: int = 1) -> tantivy.IndexWriter:
        try:
            return self.index.writer(heap_size=heap_bytes, num_threads=threads)
        except ValueError as exc:
            if "LockBusy" in str(exc) or "lock" in str(exc).lower():
                raise IndexBusy(f"log index {self.path} is being written by another indexer") from exc
            raise


def _documents(batch: pa.RecordBatch, version: int | None) -> Iterator[tantivy.Document]:
    cols = {name: batch.column(name).to_pylist() for name in STORED if name in batch.schema.names}
    versions: list[Any] = (
        batch.column("_commit_version").to_pylist() if version is None else [version] * batch.num_rows
    )
    for i in range(batch.num_rows):
        fields: dict[str, Any] = {"kind": _LINE, "v": int(versions[i])}
        for name, values in cols.items():
            value = values[i]
            if value is not None:
                fields[name] = value
        yield tantivy.Document(**fields)


class Indexer:
    """Keeps a :class:`LogIndex` up to date with ``logs.lines`` (one writer per index)."""

    def __init__(self, lake: Lake, index: LogIndex, *, table: str = LINES, max_versions: int = 200) -> None:
        self.lake = lake
        self.index = index
        self.table_name = table
        #: table versions per index commit while catching up (bounds the work a crash redoes)
        self.max_versions = max_versions
        self._writer: tantivy.IndexWriter | None = None

    def close(self) -> None:
        if self._writer is not None:
            self._writer.wait_merging_threads()
            self._writer = None

    def __enter__(self) -> Indexer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _w(self) -> tantivy.IndexWriter:
        if self._writer is None:
            self._writer = self.index.writer()
        return self._writer

    def _commit(self, writer: tantivy.IndexWriter, version: int, table_id: str) -> None:
        # the progress document moves in the same commit as the lines it vouches for
        writer.delete_documents_by_term("kind", _PROGRESS)
        writer.add_document(tantivy.Document(kind=_PROGRESS, id=f"progress:{table_id}", v=version))
        writer.commit()

    def update(self, *, rebuild: bool = False) -> UpdateResult:
        """Index every commit of the table the index has not seen; a no-op when caught up."""
        started = time.monotonic()
        table = self.lake.find(self.table_name)
        if table is None:
            return UpdateResult(None, None, 0, 0, False, 0.0)
        dt = table.delta()
        current = int(dt.version())
        table_id = str(dt.metadata().id)
        prog = self.index.progress()
        if rebuild or prog is None or prog.table_id != table_id or prog.table_version > current:
            added = self._rebuild(table, current, table_id)
            return UpdateResult(None, current, added, 0, True, time.monotonic() - started)
        added = deleted = 0
        start = prog.table_version
        while start < current:
            end = min(current, start + self.max_versions)
            a, d = self._apply_changes(table, start + 1, end, table_id)
            added, deleted = added + a, deleted + d
            start = end
        return UpdateResult(prog.table_version, current, added, deleted, False, time.monotonic() - started)

    def _rebuild(self, table: Table, version: int, table_id: str) -> int:
        writer = self._w()
        writer.delete_all_documents()
        dataset = table.delta(version).to_pyarrow_dataset()
        added = 0
        for batch in dataset.to_batches(columns=list(STORED), batch_size=65_536):
            for doc in _documents(batch, version):
                writer.add_document(doc)
            added += batch.num_rows
        self._commit(writer, version, table_id)
        log.info("log index rebuilt", extra={"table_version": version, "lines": added})
        return added

    def _apply_changes(self, table: Table, first: int, last: int, table_id: str) -> tuple[int, int]:
        writer = self._w()
        # redo-safe: whatever an earlier, unrecorded run indexed from these versions goes first
        writer.delete_documents_by_query(
            tantivy.Query.range_query(self.index.schema, "v", tantivy.FieldType.Integer, first, last)
        )
        try:
            reader = table.delta().load_cdf(
                starting_version=first,
                ending_version=last,
                columns=[*STORED, "_change_type", "_commit_version"],
            )
            stream = pa.RecordBatchReader.from_stream(reader)
            added = deleted = 0
            for batch in stream:
                kinds = batch.column("_change_type").to_pylist()
                if all(k == "insert" for k in kinds):
                    for doc in _documents(batch, None):
                        writer.add_document(doc)
                    added += batch.num_rows
                    continue
                ids = batch.column("id").to_pylist()
                for i, kind in enumerate(kinds):
                    if kind in ("delete", "update_preimage"):
                        writer.delete_documents_by_term("id", ids[i])
                        deleted += 1
                    elif kind in ("insert", "update_postimage"):
                        for doc in _documents(batch.slice(i, 1), None):
                            writer.add_document(doc)
                        added += 1
        except Exception as exc:
            writer.rollback()
            if "not found" in str(exc).lower() or "No such file" in str(exc):
                raise IndexBehind(
                    f"log index: the files of {self.table_name} versions {first}..{last} are gone "
                    f"(vacuumed?): run `shoal logs index --rebuild` ({str(exc).splitlines()[0]})"
                ) from exc
            raise
        self._commit(writer, last, table_id)
        return added, deleted

    def follow(
        self,
        stop: threading.Event,
        *,
        interval_s: float = 1.0,
        on_update: Any = None,
    ) -> None:
        """Update every ``interval_s`` until ``stop`` is set (a commit is indexed within ~1 interval)."""
        while not stop.is_set():
            result = self.update()
            if on_update is not None and (result.added or result.deleted or result.rebuilt):
                on_update(result)
            stop.wait(interval_s)


def hits_json(hits: list[Hit]) -> str:
    return json.dumps([h.as_dict() for h in hits], default=str)

"""shoal.logs pure logic and the index over a local lake: query parsing, line conversion,
ranking, filters, and the incremental update (change feed, redo after a crash, rebuild)."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from shoal.lake import Lake
from shoal.logs import Indexer, LogIndex, LogQueryError, build_query, ensure_tables
from shoal.logs.index import _documents
from shoal.logs.lines import MISSING_MESSAGE, LineConverter
from shoal.logs.query import LabelFilter, parse_time, parse_where
from shoal.logs.schema import LINES_SCHEMA, conform
from shoal.logs.simulate import lines_table

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


# -- parsing ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "back"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("1h", timedelta(hours=1)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        (" 1.5H ", timedelta(minutes=90)),
    ],
)
def test_since_durations(text: str, back: timedelta) -> None:
    assert parse_time(text, now=NOW) == NOW - back


def test_since_iso_naive_is_utc_and_aware_kept() -> None:
    assert parse_time("2026-02-01T10:00", now=NOW) == datetime(2026, 2, 1, 10, tzinfo=UTC)
    aware = parse_time("2026-02-01T10:00+02:00", now=NOW)
    assert aware.astimezone(UTC) == datetime(2026, 2, 1, 8, tzinfo=UTC)


def test_bad_time_is_one_line_error() -> None:
    with pytest.raises(LogQueryError, match="not a time: 'yesterday'"):
        parse_time("yesterday")


def test_where_forms() -> None:
    assert parse_where("service=billing") == LabelFilter("service", ("billing",))
    assert parse_where("level = error, warn") == LabelFilter("level", ("error", "warn"))
    assert parse_where("host!=node-001") == LabelFilter("host", ("node-001",), negate=True)


@pytest.mark.parametrize(
    ("expr", "why"),
    [("service", "expected key=value"), ("colour=red", "unknown key 'colour'"), ("level=", "no value")],
)
def test_where_errors_name_the_problem(expr: str, why: str) -> None:
    with pytest.raises(LogQueryError, match=why):
        parse_where(expr)


def test_build_query_checks_window_and_limit() -> None:
    q = build_query(" timeout ", since="2h", until="1h", where=["service=api"], limit=5, now=NOW)
    assert (q.text, q.since, q.until, q.limit) == (
        "timeout",
        NOW - timedelta(hours=2),
        NOW - timedelta(hours=1),
        5,
    )
    with pytest.raises(LogQueryError, match="not after --since"):
        build_query("x", since="1h", until="2h", now=NOW)
    with pytest.raises(LogQueryError, match="--limit"):
        build_query("x", limit=0)


# -- lines ------------------------------------------------------------------------------------------
def test_converter_accepts_usual_spellings_and_dead_letters_the_rest() -> None:
    received = datetime(2026, 3, 1, tzinfo=UTC)
    lines = [
        json.dumps(
            {
                "@timestamp": "2026-02-28T10:00:00Z",
                "msg": "GET /x 500",
                "app": "api",
                "severity": "ERROR",
                "hostname": "h1",
                "traceId": "t1",
                "user": "u-1",
            }
        ).encode(),
        b'{"message": "no time, no service"}',
        b"{not json",
        b'{"level": "info", "service": "api"}',
        b"[1, 2]",
    ]
    conv = LineConverter()
    try:
        out = conv.convert(lines, [f"r:{i}" for i in range(len(lines))], received)
    finally:
        conv.close()
    assert out.indices == [0, 1]
    rows = out.rows.to_pylist()
    assert out.rows.schema == LINES_SCHEMA
    first = rows[0]
    assert (first["id"], first["service"], first["level"], first["host"], first["trace_id"]) == (
        "r:0",
        "api",
        "error",
        "h1",
        "t1",
    )
    assert first["message"] == "GET /x 500"
    assert json.loads(first["attrs"]) == {"user": "u-1"}
    assert first["ts"] == datetime(2026, 2, 28, 10, tzinfo=UTC)
    assert str(first["day"]) == "2026-02-28"
    assert rows[1]["ts"] == received  # no time in the line: the time it was received
    bad = {b.index: b for b in out.bad}
    assert sorted(bad) == [2, 3, 4]
    assert bad[2].error_class == "JsonSyntaxError"
    assert bad[3].error_class == MISSING_MESSAGE
    assert "\n" not in bad[3].message


# -- the index --------------------------------------------------------------------------------------
def _rows(specs: list[tuple[str, str, str, datetime]], prefix: str) -> pa.Table:
    return conform(
        pa.table(
            {
                "id": [f"{prefix}:{i}" for i in range(len(specs))],
                "service": [s[0] for s in specs],
                "level": [s[1] for s in specs],
                "message": [s[2] for s in specs],
                "ts": pa.array([s[3] for s in specs], pa.timestamp("us", tz="UTC")),
                "day": pa.array([s[3].date() for s in specs], pa.date32()),
            }
        )
    )


def test_index_ranks_filters_and_follows_new_commits(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    table = ensure_tables(lake)
    now = datetime.now(UTC)
    table.append(lines_table(3000, seed=1, start=now - timedelta(days=3), span_s=3600))
    table.append(
        _rows(
            [
                (
                    "billing",
                    "error",
                    "disk quota exceeded on volume vol-zz1: quota quota",
                    now - timedelta(minutes=5),
                ),
                (
                    "billing",
                    "warn",
                    "quota almost reached for a user with many volumes and long text",
                    now - timedelta(minutes=4),
                ),
                ("api", "error", "quota exceeded", now - timedelta(minutes=3)),
                ("billing", "error", "quota exceeded", now - timedelta(days=2)),
            ],
            "t",
        )
    )
    index = LogIndex(tmp_path / "idx")
    with Indexer(lake, index) as indexer:
        first = indexer.update()
        assert first.rebuilt
        assert first.added == 3004
        assert index.progress() is not None
        assert index.progress().table_version == table.version  # type: ignore[union-attr]
        hits = index.search(build_query("quota", limit=10))
        assert hits[0].id == "t:0"  # the line saying "quota" three times ranks first
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        recent = index.search(build_query("quota", since="1h", where=["service=billing"], limit=10))
        assert {h.id for h in recent} == {"t:0", "t:1"}
        not_billing = index.search(build_query("quota", since="1h", where=["service!=billing"]))
        assert [h.id for h in not_billing] == ["t:2"]
        newest = index.search(build_query("", where=["level=error,warn"], since="1h", limit=2))
        assert [h.id for h in newest] == ["t:2", "t:1"]  # no text: newest first
        assert not index.search(build_query("zebracorn"))
        # a new commit is searchable after the next incremental update, and compaction adds nothing
        table.append(_rows([("auth", "info", "zebracorn sighted", now)], "n"))
        table.compact()
        step = indexer.update()
        assert (step.rebuilt, step.added) == (False, 1)
        assert [h.id for h in index.search(build_query("zebracorn"))] == ["n:0"]
        assert indexer.update().added == 0
    assert index.num_lines() == table.count() == 3005
    with pytest.raises(LogQueryError, match="Syntax Error"):
        index.search(build_query("message:(unclosed"))


def test_redo_after_crash_writes_no_duplicate_and_recreated_table_rebuilds(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    table = ensure_tables(lake)
    table.append(lines_table(500, seed=2))
    index = LogIndex(tmp_path / "idx")
    with Indexer(lake, index) as indexer:
        indexer.update()
    table.append(lines_table(300, seed=3, id_prefix="late"))
    # A crash after the lines reached the index but before the progress moved: simulate it by
    # indexing the new version's lines without a progress document, then resume.
    with Indexer(lake, index) as indexer:
        writer = indexer._w()
        for batch in table.to_arrow(filter="id LIKE 'late:%'").to_batches():
            for doc in _documents(
                batch.append_column(
                    "_commit_version", pa.array([table.version] * batch.num_rows, pa.int64())
                ),
                None,
            ):
                writer.add_document(doc)
        writer.commit()
        assert index.num_lines() == 800  # the redo case: lines without progress
        indexer.update()
    ids = [h.id for h in index.search(build_query("", limit=5000))]
    assert len(ids) == len(set(ids)) == table.count() == 800
    # a recreated table (new Delta id) makes the index rebuild from its snapshot
    shutil.rmtree(tmp_path / "lake" / "logs")
    table = ensure_tables(lake)
    table.append(lines_table(10, seed=4))
    with Indexer(lake, index) as indexer:
        assert indexer.update().rebuilt
    assert index.num_lines() == 10


# -- the receiver's writer ----------------------------------------------------------------------
def _request(lines: list[bytes], source: str | None, seq: int | None) -> Any:
    from shoal.logs.receiver import _Request

    return _Request(lines, source, seq)


def test_writer_exactly_once_per_source_seq_across_a_crash_between_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shoal.logs.receiver import LogWriter

    lake = Lake(str(tmp_path / "lake"))
    writer = LogWriter(lake)
    good = [json.dumps({"message": f"line {i}", "service": "api"}).encode() for i in range(3)]
    batch = [_request([*good, b"{bad"], "web", 7), _request(good[:1], "web", 7)]  # a retry in the same flush

    calls = {"n": 0}
    real_append = writer.lines.append

    def crash_once(*args: Any, **kwargs: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("simulated crash after the dead letters were committed")
        return real_append(*args, **kwargs)

    monkeypatch.setattr(writer.lines, "append", crash_once)
    with pytest.raises(OSError, match="simulated crash"):
        writer.write(batch)
    assert lake.table("logs.lines_dead_letters").count() == 1
    assert writer.lines.count() == 0
    first, second = writer.write(batch)  # the shipper retries the same requests
    assert (first["accepted"], first["dead_lettered"], first["duplicate"]) == (3, 1, False)
    assert second["duplicate"]
    assert writer.lines.count() == 3
    assert lake.table("logs.lines_dead_letters").count() == 1  # not written twice
    # once committed, the same (source, seq) is a duplicate; a higher one is new; unnumbered always lands
    again, newer, plain = writer.write(
        [_request(good, "web", 7), _request(good, "web", 8), _request(good, None, None)]
    )
    assert (again["duplicate"], newer["accepted"], plain["accepted"]) == (True, 3, 3)
    assert writer.lines.count() == 9
    ids = writer.lines.to_arrow(columns=["id"])["id"].to_pylist()
    assert len(set(ids)) == 9
    writer.close()

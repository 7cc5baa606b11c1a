"""Dead-letter replay: the pure helpers, and a replay against real local Delta tables (no broker).

The broker-backed poison burst, the fix and the kill -9 are in
tests/integration/test_dlq_replay_broker.py.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from shoal.ingest import META_FIELDS, parse_pipeline
from shoal.ingest.buffer import DeadRecord
from shoal.ingest.dead_letter import DEAD_LETTER_SCHEMA, REPLAY_FIELDS, dead_letter_table
from shoal.ingest.replay import (
    DeadLetterError,
    DeadLetterReplay,
    LetterFilter,
    batches_of,
    dedupe_letters,
    newest_letters,
    parse_since,
    preview,
    read_letters,
    summarize,
    with_replay_columns,
)
from shoal.lake import Lake, progress

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
TOPIC = "orders"


# -- pure helpers ------------------------------------------------------------------------------------
def test_parse_since_durations_and_times() -> None:
    assert parse_since("30m", NOW) == NOW - timedelta(minutes=30)
    assert parse_since("2h", NOW) == NOW - timedelta(hours=2)
    assert parse_since("1.5d", NOW) == NOW - timedelta(hours=36)
    assert parse_since("1w", NOW) == NOW - timedelta(days=7)
    assert parse_since("2026-12-01T08:00") == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    assert parse_since("2026-12-01T08:00+01:00") == datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
    with pytest.raises(DeadLetterError, match="--since 'yesterday'"):
        parse_since("yesterday")


def test_preview_prefers_decoded_then_text_then_hex() -> None:
    assert preview(b"\x08\x01", {"id": "a", "n": 1}) == '{"id":"a","n":1}'
    assert preview(b'{"id": 1') == "'{\"id\": 1'"
    assert preview(b"\x00\xff\x10") == "0x00ff10"
    assert preview(None) == "(null value)"
    long = preview(b"x" * 500, limit=20)
    assert len(long) == 20
    assert long.endswith("…")


def test_batches_cover_everything_once() -> None:
    assert list(batches_of(0, 5)) == []
    assert list(batches_of(11, 5)) == [(0, 5), (5, 5), (10, 1)]
    assert sum(n for _s, n in batches_of(1234, 100)) == 1234


def _letters(rows: list[tuple[str, int, int, str]], failed_at: datetime = NOW) -> pa.Table:
    records = [
        DeadRecord(t, p, o, 1_700_000_000_000, b"k", b"v%d" % o, (), cls, "why") for t, p, o, cls in rows
    ]
    return dead_letter_table(records, "orders", now=failed_at)


def test_dedupe_keeps_one_letter_per_record_in_key_order() -> None:
    t = _letters([("b", 0, 5, "X"), ("a", 1, 3, "X"), ("a", 0, 9, "Y"), ("a", 1, 3, "Z"), ("a", 0, 2, "X")])
    out = dedupe_letters(t)
    keys = list(zip(*(out.column(c).to_pylist() for c in ("topic", "partition", "offset")), strict=True))
    assert keys == [("a", 0, 2), ("a", 0, 9), ("a", 1, 3), ("b", 0, 5)]
    assert out.column("error_class").to_pylist()[2] == "X"  # the first of the two copies


def test_summarize_counts_by_bucket_and_class() -> None:
    early = _letters([(TOPIC, 0, 1, "A"), (TOPIC, 0, 2, "A")], NOW - timedelta(hours=2))
    late = _letters([(TOPIC, 0, 3, "A"), (TOPIC, 0, 4, "B")], NOW)
    t = pa.concat_tables([early, late])
    t = t.set_column(
        t.schema.get_field_index("replayed_at"),
        REPLAY_FIELDS[0],
        pa.array([None, NOW, None, None], REPLAY_FIELDS[0].type),
    )
    t = t.set_column(
        t.schema.get_field_index("retries"), REPLAY_FIELDS[2], pa.array([1, 1, 0, None], pa.int32())
    )
    rows = summarize(t, "hour")
    assert [
        (r["error_class"], r["letters"], r["pending"], r["replayed"], r["still_failing"]) for r in rows
    ] == [
        ("B", 1, 1, 0, 0),
        ("A", 1, 1, 0, 0),
        ("A", 2, 1, 1, 1),
    ]
    assert rows[0]["bucket"] == NOW
    assert rows[2]["bucket"] == NOW - timedelta(hours=2)


# -- a replay on real Delta tables --------------------------------------------------------------------
OLD_SCHEMA = pa.schema([f for f in DEAD_LETTER_SCHEMA if f.name not in {r.name for r in REPLAY_FIELDS}])
DECODE = {"format": "json", "columns": [{"name": "id"}, {"name": "amount", "type": "int64"}]}
V1 = "SELECT * REPLACE (CASE WHEN amount < 0 THEN error('negative') ELSE amount END AS amount) FROM batch"
V2 = "SELECT * REPLACE (CASE WHEN id = 'evil' THEN error('evil!') ELSE abs(amount) END AS amount) FROM batch"


def _spec(transform_sql: str) -> Any:
    raw = {
        "name": "orders",
        "topics": [TOPIC],
        "brokers": "127.0.0.1:1",  # never contacted: replay reads only the lake
        "decode": DECODE,
        "table": "shop.orders",
        "transform_sql": transform_sql,
    }
    return parse_pipeline(raw, base_dir=Path("."))


def _main_rows(offsets_amounts: list[tuple[int, str, int]]) -> pa.Table:
    n = len(offsets_amounts)
    return pa.table(
        [
            pa.array([i for _o, i, _a in offsets_amounts], pa.string()),
            pa.array([a for _o, _i, a in offsets_amounts], pa.int64()),
            pa.array([TOPIC] * n, pa.string()),
            pa.array([0] * n, pa.int32()),
            pa.array([o for o, _i, _a in offsets_amounts], pa.int64()),
            pa.nulls(n, META_FIELDS[3].type),
            pa.nulls(n, pa.binary()),
            pa.array([NOW] * n, META_FIELDS[5].type),
        ],
        schema=pa.schema([pa.field("id", pa.string()), pa.field("amount", pa.int64()), *META_FIELDS]),
    )


def test_replay_evolves_an_old_table_and_never_duplicates(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    main = lake.create_table("shop.orders", _main_rows([]).schema)
    main.append(_main_rows([(0, "a", 1), (2, "c", 3)]))  # offset 2 is in the table and a letter too
    letters = {
        1: {"id": "b", "amount": -2},  # failed v1's transform, fixed by v2
        2: {"id": "c", "amount": 3},  # its record already has a row: must not be written again
        3: {"id": "evil", "amount": -4},  # fails v2 too
        4: "{not json",  # fails decoding whatever the transform
        5: {"id": "e", "amount": -6},
    }
    records = [
        DeadRecord(TOPIC, 0, o, 1_700_000_000_000 + o, b"k%d" % o, v if isinstance(v, bytes) else
                   (v.encode() if isinstance(v, str) else json.dumps(v).encode()), (), "Old", "old error")
        for o, v in letters.items()
    ]  # fmt: skip
    old = dead_letter_table(records, "orders", now=NOW).select(OLD_SCHEMA.names)
    old = pa.concat_tables([old, old.slice(4, 1)])  # offset 5 dead-lettered twice (an older release)
    dlq = lake.create_table("shop.orders_dead_letters", OLD_SCHEMA)
    dlq.append(old)
    assert "replayed_at" not in dlq.schema.names

    # reading an old table: replay columns read as null
    pending = read_letters(dlq, LetterFilter("orders", status="pending"))
    assert pending.num_rows == 6
    assert pending.column("replayed_at").null_count == 6
    assert read_letters(dlq, LetterFilter("orders", status="replayed")).num_rows == 0

    dry = DeadLetterReplay(lake, _spec(V2), batch_size=2).run(dry_run=True)
    assert (dry.letters, dry.replayed, dry.already_present, dry.still_failing) == (5, 2, 1, 2)
    assert dry.rows == 2
    assert dry.versions == []
    assert "replayed_at" not in lake.table("shop.orders_dead_letters").schema.names  # untouched

    main_before = main.version
    report = DeadLetterReplay(lake, _spec(V2), batch_size=2).run()
    assert (report.letters, report.replayed, report.already_present, report.still_failing) == (5, 2, 1, 2)
    assert report.still_failing_by_class == {"InvalidInputException": 1, "JsonSyntaxError": 1}

    dlq = lake.table("shop.orders_dead_letters")
    after = dlq.to_arrow()
    assert after.num_rows == 6  # marked, not deleted; the old columns unchanged
    assert after.select(OLD_SCHEMA.names).sort_by("offset").to_pylist() == old.sort_by("offset").to_pylist()
    by_offset: dict[int, list[dict[str, Any]]] = {}
    for r in after.to_pylist():
        by_offset.setdefault(r["offset"], []).append(r)
    for o in (1, 2, 5):
        for r in by_offset[o]:
            assert r["replayed_at"] is not None, r
            assert r["replayed_version"] is not None, r
            assert r["retries"] == 1
            assert r["retry_error_class"] is None
    assert {(r["retry_error_class"], r["replayed_at"]) for o in (3, 4) for r in by_offset[o]} == {
        ("InvalidInputException", None),
        ("JsonSyntaxError", None),
    }
    assert "evil!" in by_offset[3][0]["retry_error_message"]
    rows = main.to_arrow(columns=["id", "amount", "_kafka_offset"]).sort_by("_kafka_offset").to_pylist()
    assert rows == [
        {"id": "a", "amount": 1, "_kafka_offset": 0},
        {"id": "b", "amount": 2, "_kafka_offset": 1},
        {"id": "c", "amount": 3, "_kafka_offset": 2},
        {"id": "e", "amount": 6, "_kafka_offset": 5},
    ]
    # the replayed version holds the row; the progress key counts the commits
    # a record the table held before any replay: the snapshot the replay found it in
    assert by_offset[2][0]["replayed_version"] == main_before
    v_b = by_offset[1][0]["replayed_version"]
    assert "b" in main.to_arrow(columns=["id"], version=v_b).column("id").to_pylist()
    assert (
        main.app_version(progress.dead_letter_replay("orders"))
        == len(report.versions)
        == main.version - main_before
    )

    # show: the newest letters, read whole, one per record
    newest = newest_letters(dlq, LetterFilter("orders", status="pending"), 1)
    assert newest.column("offset").to_pylist() == [4]
    assert newest.column("value").to_pylist() == [b"{not json"]
    done = newest_letters(dlq, LetterFilter("orders", status="replayed"), 10)
    assert sorted(done.column("offset").to_pylist()) == [1, 2, 5]

    # again: nothing new in the main table; the two failing letters are tried once more
    again = DeadLetterReplay(lake, _spec(V2)).run()
    assert (again.letters, again.replayed, again.still_failing, again.versions) == (2, 0, 2, [])
    assert main.count() == 4
    retries = {
        r["offset"]: r["retries"] for r in lake.table("shop.orders_dead_letters").to_arrow().to_pylist()
    }
    assert retries[3] == retries[4] == 2
    assert retries[1] == 1


def test_replay_of_a_pipeline_without_dead_letters_is_empty(tmp_path: Path) -> None:
    report = DeadLetterReplay(Lake(str(tmp_path / "lake")), _spec(V1)).run()
    assert report.letters == 0
    assert report.dead_letter_version is None


def test_with_replay_columns_is_a_no_op_on_new_tables() -> None:
    t = _letters([(TOPIC, 0, 1, "A")])
    assert with_replay_columns(t).equals(t)
    assert with_replay_columns(t.select(OLD_SCHEMA.names)).schema.equals(DEAD_LETTER_SCHEMA)


def test_two_replays_racing_write_each_record_once(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    lake.create_table("shop.orders", _main_rows([]).schema).append(_main_rows([(0, "a", 1)]))
    records = [
        DeadRecord(
            TOPIC, 0, o, None, None, json.dumps({"id": f"r{o}", "amount": -o}).encode(), (), "Old", "e"
        )
        for o in range(1, 41)
    ]
    lake.create_table("shop.orders_dead_letters", DEAD_LETTER_SCHEMA).append(
        dead_letter_table(records, "orders", now=NOW)
    )
    reports: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            reports.append(DeadLetterReplay(lake, _spec(V2), batch_size=3).run())
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    def ingest_more() -> None:  # the live loop keeps dead-lettering meanwhile
        try:
            for o in range(100, 110):
                more = [DeadRecord(TOPIC, 1, o, None, None, b"\x00junk", (), "Junk", "j")]
                lake.table("shop.orders_dead_letters").append(dead_letter_table(more, "orders", now=NOW))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)] + [threading.Thread(target=ingest_more)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    offsets = (
        lake.table("shop.orders").to_arrow(columns=["_kafka_offset"]).column("_kafka_offset").to_pylist()
    )
    assert sorted(offsets) == list(range(41))  # every record once, whoever wrote it
    assert sum(r.replayed + r.already_present for r in reports) >= 40
    letters = lake.table("shop.orders_dead_letters").to_arrow()
    assert letters.num_rows == 50
    replayed = {
        o
        for o, at in zip(*(letters.column(c).to_pylist() for c in ("offset", "replayed_at")), strict=True)
        if at
    }
    assert replayed == set(range(1, 41))

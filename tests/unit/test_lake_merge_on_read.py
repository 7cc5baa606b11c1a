"""Merge-on-read tables (shoal.lake.mergeonread, morcompact; ADR 0040): every reader shoal has
(Table.to_arrow, the SQL views, time travel) sees one row per key, its latest change, between
compactions and after them; a compaction folds the tail in one commit that the writer's concurrent
appends do not conflict with."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pyarrow as pa
import pytest

from shoal.lake import Lake, Table, progress
from shoal.lake.mergeonread import OP, SEQ, MergeOnRead, base_rows, change_rows, resolve_sql
from shoal.lake.morcompact import compact, tail_rows
from shoal.query import connect_lake

VISIBLE = pa.schema([("id", pa.int64()), ("name", pa.string()), ("score", pa.int32())])
LAYOUT = MergeOnRead(("id",))

Model = dict[int, tuple[str, int]]


def _table(tmp_path: Path, base: Model) -> tuple[Lake, Table]:
    lake = Lake(str(tmp_path / "lake"))
    table = lake.create_table("rep.items", pa.schema([*VISIBLE, *LAYOUT.fields()]))
    table.append(base_rows(_rows(base), table.schema))
    return lake, table


def _rows(model: Model) -> pa.Table:
    ids = sorted(model)
    return pa.table(
        {"id": ids, "name": [model[i][0] for i in ids], "score": [model[i][1] for i in ids]}, schema=VISIBLE
    )


def _round(table: Table, upserts: Model, deletes: list[int]) -> None:
    """One writer round, as the sync appends it: the sequence is the version read plus one."""
    keys = pa.table({"id": pa.array(deletes, pa.int64())})
    table.append(change_rows(_rows(upserts), keys, table.version + 1, table.schema))


def _as_model(data: pa.Table) -> Model:
    rows = data.to_pylist()
    out = {int(r["id"]): (r["name"], r["score"]) for r in rows}
    assert len(out) == len(rows), "a key shows more than once"
    return out


def _sql(lake: Lake, query: str = "SELECT * FROM rep.items") -> Model:
    """The rows through shoal's SQL, both ways a view reads a table: a pinned snapshot (the
    anti-join of base and tail) and ``delta_scan`` of the latest version (one scan ranked per key)."""
    out = []
    for pin in (True, False):
        with connect_lake(lake, pin_snapshots=pin) as con:
            out.append(_as_model(con.sql(query).to_arrow_table()))
    assert out[0] == out[1]
    return out[0]


def test_readers_see_the_latest_change_per_key_between_compactions(tmp_path: Path) -> None:
    base: Model = {i: (f"n{i}", i) for i in range(1, 101)}
    lake, table = _table(tmp_path, base)
    assert table.layout() == LAYOUT
    _round(table, {5: ("five", 50), 200: ("new", 0)}, [7])
    _round(table, {5: ("FIVE", 51), 7: ("back", 7)}, [200, 9])
    want = {**base, 5: ("FIVE", 51), 7: ("back", 7)}
    del want[9]
    assert tail_rows(table) == 7
    assert _as_model(table.to_arrow()) == want
    assert _sql(lake) == want
    assert table.count() == len(want)
    # the raw rows hold every change: a reader that ignores the layout would be wrong
    assert table.delta().to_pyarrow_table().num_rows == 107
    # projections and filters apply to the resolved rows, not the raw ones
    assert table.to_arrow(columns=["id"], filter="id IN (5, 9, 200)").column("id").to_pylist() == [5]
    # a filter on a column a change altered: the superseded and the deleted rows must not match
    assert _sql(lake, "SELECT * FROM rep.items WHERE name IN ('n5', 'n9', 'FIVE')") == {5: ("FIVE", 51)}
    with connect_lake(lake) as con:
        assert con.sql("SELECT * FROM rep.items").columns == ["id", "name", "score"]
        # time travel resolves the rows of that version
        old = _as_model(
            con.sql(f"SELECT * FROM rep.items VERSION AS OF {table.version - 1}").to_arrow_table()
        )
    assert old[5] == ("five", 50)
    assert old[200] == ("new", 0)
    assert 7 not in old


def test_compaction_folds_the_tail_and_rewrites_only_files_with_changed_keys(tmp_path: Path) -> None:
    lake, table = _table(tmp_path, {i: (f"n{i}", i) for i in range(1, 1001)})
    second = _rows({i: (f"n{i}", i) for i in range(1001, 2001)})
    table.append(base_rows(second, table.schema))  # a second base file
    _round(table, {10: ("ten", 10), 3000: ("new", 3)}, [20])
    want = _as_model(table.to_arrow())
    before = table.version
    result = compact(table)
    assert result.version == before + 1
    assert result.change_rows == 3
    # the keys that changed (10, 20, 3000) are all in the first base file: the second stays
    assert result.files_removed == 2
    assert tail_rows(table) == 0
    assert table.app_version(progress.compacted("rep.items")) == before
    assert _as_model(table.to_arrow()) == want
    assert _sql(lake) == want
    raw = table.delta().to_pyarrow_table()
    assert raw.num_rows == len(want)
    assert raw.column(OP).null_count == raw.num_rows
    assert compact(table).version is None  # nothing left to fold


def test_random_rounds_and_compactions_match_a_model(tmp_path: Path) -> None:
    rng = random.Random(40)
    model: Model = {i: (f"n{i}", i) for i in range(1, 301)}
    lake, table = _table(tmp_path, model)
    next_id = 301
    for step in range(25):
        ups: Model = {}
        dels: list[int] = []
        for _ in range(rng.randrange(1, 40)):
            r = rng.random()
            if r < 0.4:
                ups[next_id] = (f"i{step}", step)
                next_id += 1
            elif r < 0.8 and model:
                k = rng.choice(sorted(model))
                ups[k] = (f"u{step}", step)
            elif model:
                dels.append(rng.choice(sorted(model)))
        dels = [k for k in dict.fromkeys(dels) if k not in ups]
        _round(table, ups, dels)
        model.update(ups)
        for k in dels:
            model.pop(k, None)
        if rng.random() < 0.3:
            compact(table)
        assert _as_model(table.to_arrow()) == model, f"step {step}"
    assert _sql(lake) == model


def test_compaction_does_not_conflict_with_concurrent_rounds(tmp_path: Path) -> None:
    n = 200_000  # a compaction long enough for rounds to commit while it runs
    model: Model = {i: (f"n{i}", i) for i in range(1, n + 1)}
    lake, table = _table(tmp_path, model)
    early = {k: ("early", k) for k in range(1, n + 1, 7)}
    _round(table, early, [])
    model.update(early)
    writer = Table("rep.items", lake.location)  # the writer's own handle, as in the sync
    done = threading.Event()
    rounds = 0

    def rounds_meanwhile() -> None:
        nonlocal rounds
        while not done.is_set() or rounds < 3:
            k = 1 + (rounds * 37) % n
            _round(writer, {k: ("late", rounds)}, [k + 1] if rounds % 2 else [])
            model[k] = ("late", rounds)
            if rounds % 2:
                model.pop(k + 1, None)
            rounds += 1

    t = threading.Thread(target=rounds_meanwhile)
    t.start()
    try:
        result = compact(table, attempts=1)  # one attempt: a conflict with the appends would raise
    finally:
        done.set()
        t.join()
    assert result.version is not None
    # read once all commits are in: delta-rs numbered history entries one short while commits landed
    history = Table("rep.items", lake.location).history()
    read_at = int(next(h for h in history if h["version"] == result.version)["read_version"])
    raced = [h["version"] for h in history if read_at < h["version"] < result.version]
    assert raced, "no round committed while the compaction ran: nothing was tested"
    assert tail_rows(table) > 0  # the rounds committed meanwhile stay in the tail
    assert _as_model(table.to_arrow()) == model
    assert _sql(lake) == model


def test_layout_lives_in_the_schema_and_survives_appends_and_new_columns(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    plain = lake.create_table("rep.plain", VISIBLE)
    plain.append(_rows({1: ("a", 1)}))
    assert plain.layout() is None
    plain.add_columns(LAYOUT.fields())  # a copy-on-write replica turned merge-on-read
    assert plain.layout() == LAYOUT
    _round(plain, {1: ("b", 2)}, [])
    plain.add_columns([pa.field("extra", pa.string())])
    assert plain.layout() == LAYOUT
    assert _as_model(plain.to_arrow(columns=["id", "name", "score"])) == {1: ("b", 2)}
    assert plain.to_arrow().column_names == ["id", "name", "score", "extra"]


def test_resolve_sql_of_a_plain_table_is_the_table() -> None:
    assert resolve_sql("t", None) == "SELECT * FROM t"
    sql = resolve_sql("delta_scan('x') AS s", MergeOnRead(("a", "b")))
    assert 'PARTITION BY "a", "b"' in sql
    assert f'ORDER BY "{SEQ}" DESC NULLS LAST' in sql
    assert sql.count("delta_scan") == 1  # one scan: one snapshot
    fixed = resolve_sql("p", MergeOnRead(("a",)), fixed=True)  # a pinned snapshot, read thrice
    assert "ANTI JOIN" in fixed
    assert fixed.count("FROM p") == 3


@pytest.mark.parametrize("keys", [("id",), ("id", "name")])
def test_compaction_with_composite_keys(tmp_path: Path, keys: tuple[str, ...]) -> None:
    lake = Lake(str(tmp_path / "lake"))
    layout = MergeOnRead(keys)
    table = lake.create_table("rep.k", pa.schema([*VISIBLE, *layout.fields()]))
    table.append(base_rows(_rows({1: ("a", 1), 2: ("b", 2), 3: ("c", 3)}), table.schema))
    upd = _rows({2: ("b", 20)})
    gone = pa.table({"id": pa.array([3], pa.int64()), "name": ["c"]}).select(list(keys))
    table.append(change_rows(upd, gone, table.version + 1, table.schema))
    want = {1: ("a", 1), 2: ("b", 20)}
    assert _as_model(table.to_arrow()) == want
    compact(table)
    assert _as_model(table.to_arrow()) == want
    assert tail_rows(table) == 0


def test_served_masked_view_of_a_merge_on_read_table_masks_its_resolved_rows(tmp_path: Path) -> None:
    from shoal.query.sandbox import Access, Sandbox, mask_expression

    lake, table = _table(tmp_path, {1: ("ann", 1), 2: ("bob", 2), 3: ("cy", 3)})
    _round(table, {2: ("bea", 20)}, [3])
    sandbox = Sandbox(lake, Access(pii=False), pii_columns={"rep.items": ["name"]}, salt="s")
    try:
        cur = sandbox.cursor()
        rows = cur.execute("SELECT id, name, score FROM rep.items ORDER BY id").fetchall()
        masked = cur.execute(f"SELECT {mask_expression('n', 's')} FROM (SELECT 'bea' AS n)").fetchone()
    finally:
        sandbox.close()
    assert [(i, s) for i, _, s in rows] == [(1, 1), (2, 20)]
    assert masked is not None
    assert rows[1][1] == masked[0]

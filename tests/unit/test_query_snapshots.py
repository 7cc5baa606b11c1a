"""Pinned snapshots: lake views resolve a table's snapshot once; a table that changes is read with
delta_scan (always fresh) until it has been quiet for QUIET_S, then pinned again."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa

from shoal.lake import Lake
from shoal.query import connect_lake
from shoal.query.snapshots import MTIME_TRUST_S, PIN_PREFIX, QUIET_S


def _lake(tmp_path: Path) -> Lake:
    lake = Lake(str(tmp_path / "lake"))
    lake.create_table("s.t", pa.schema([("x", pa.int64())])).append(pa.table({"x": [1]}))
    return lake


def _pins(con: object) -> list[str]:
    rows = con.duckdb.sql("SELECT database_name FROM duckdb_databases()").fetchall()  # type: ignore[attr-defined]
    return [r[0] for r in rows if r[0].startswith(PIN_PREFIX)]


def test_views_read_a_pinned_snapshot_and_see_every_commit_at_once(tmp_path: Path) -> None:
    lake = _lake(tmp_path)
    table = lake.table("s.t")
    with connect_lake(lake) as con:
        assert len(_pins(con)) == 1
        # commits right after a query, within the file system's timestamp tick: none may be missed
        for i in range(2, 12):
            table.append(pa.table({"x": [i]}))
            assert con.sql("SELECT count(*), max(x) FROM s.t").fetchone() == (i, i)
        # a table committed to between queries is scanned, not re-pinned per commit; its pin detached
        assert _pins(con) == []
        assert con._snapshots._pins["s.t"].scanning


def _age_log(tmp_path: Path, seconds: float) -> None:
    """Move the table's log stamp into the past, as if its last commit were that long ago."""
    log = tmp_path / "lake" / "s" / "t" / "_delta_log"
    old = os.stat(log).st_mtime_ns - int(seconds * 1e9)
    os.utime(log, ns=(old, old))


def test_a_table_that_went_quiet_is_pinned_again(tmp_path: Path) -> None:
    lake = _lake(tmp_path)
    table = lake.table("s.t")
    with connect_lake(lake) as con:
        table.append(pa.table({"x": [2]}))
        assert con.sql("SELECT count(*) FROM s.t").fetchone() == (2,)
        assert _pins(con) == []  # hot: scanned
        assert con.sql("SELECT count(*) FROM s.t").fetchone() == (2,)
        assert _pins(con) == []  # its last commit is recent: still scanned
        _age_log(tmp_path, QUIET_S + 1)
        assert con.sql("SELECT count(*) FROM s.t").fetchone() == (2,)
        assert len(_pins(con)) == 1  # quiet long enough: pinned again
        table.append(pa.table({"x": [3]}))
        assert con.sql("SELECT count(*) FROM s.t").fetchone() == (3,)  # and the next commit is seen


def test_a_settled_table_is_not_reread(tmp_path: Path) -> None:
    lake = _lake(tmp_path)
    with connect_lake(lake) as con:
        _age_log(tmp_path, max(MTIME_TRUST_S, QUIET_S) + 5)
        con.sql("SELECT count(*) FROM s.t").fetchone()  # the stamp moved: scanned once
        con.sql("SELECT count(*) FROM s.t").fetchone()  # then pinned: the stamp is old and unchanged
        pin = con._snapshots._pins["s.t"]
        alias = pin.alias
        assert alias
        for _ in range(3):
            assert con.sql("SELECT count(*) FROM s.t").fetchone() == (1,)
        assert pin.alias == alias  # trusted stamp: same pin, no log read
        lake.table("s.t").append(pa.table({"x": [2]}))  # moves the stamp again
        assert con.sql("SELECT count(*) FROM s.t").fetchone() == (2,)
        assert pin.alias != alias


def test_a_table_changing_schema_is_seen_with_its_new_columns(tmp_path: Path) -> None:
    lake = _lake(tmp_path)
    with connect_lake(lake) as con:
        assert con.sql("SELECT * FROM s.t").fetchall() == [(1,)]
        lake.table("s.t").append(pa.table({"x": [2], "y": ["new"]}))
        assert sorted(con.sql("SELECT x, y FROM s.t").fetchall()) == [(1, None), (2, "new")]


def test_time_travel_and_new_tables_still_work(tmp_path: Path) -> None:
    lake = _lake(tmp_path)
    with connect_lake(lake) as con:
        lake.table("s.t").append(pa.table({"x": [2]}))
        assert con.sql("SELECT count(*) FROM s.t VERSION AS OF 1").fetchone() == (1,)
        lake.create_table("s.u", pa.schema([("x", pa.int64())])).append(pa.table({"x": [7]}))
        con.refresh()
        assert con.sql("SELECT x FROM s.u").fetchone() == (7,)
        assert len(_pins(con)) == 1  # s.u pinned; s.t, changed since its pin, is scanned


def test_statements_on_the_duckdb_connection_are_fresh_too(tmp_path: Path) -> None:
    # the models run SQL on Connection.duckdb directly: each use of it re-pins changed tables
    lake = _lake(tmp_path)
    with connect_lake(lake) as con:
        for i in range(2, 5):
            lake.table("s.t").append(pa.table({"x": [i]}))
            assert con.duckdb.sql("SELECT count(*) FROM s.t").fetchone() == (i,)
            assert con.execute("SELECT max(x) FROM s.t").fetchone() == (i,)


def test_without_pinning_views_scan_the_log_per_query(tmp_path: Path) -> None:
    lake = _lake(tmp_path)
    with connect_lake(lake, pin_snapshots=False) as con:
        assert _pins(con) == []
        lake.table("s.t").append(pa.table({"x": [2]}))
        assert con.sql("SELECT count(*) FROM s.t").fetchone() == (2,)


def test_a_view_someone_else_replaced_or_dropped_is_left_alone(tmp_path: Path) -> None:
    # e.g. the HTTP API's sandbox drops ungranted tables' views and masks others: a new commit
    # must not bring back the table or the unmasked columns
    lake = _lake(tmp_path)
    lake.create_table("s.u", pa.schema([("x", pa.int64())])).append(pa.table({"x": [5]}))
    with connect_lake(lake) as con:
        raw = con._raw
        raw.execute("CREATE OR REPLACE VIEW s.t AS SELECT 42 AS x")
        raw.execute("DROP VIEW s.u")
        lake.table("s.t").append(pa.table({"x": [2]}))
        lake.table("s.u").append(pa.table({"x": [6]}))
        assert con.sql("SELECT x FROM s.t").fetchall() == [(42,)]
        views = con.duckdb.sql("SELECT view_name FROM duckdb_views() WHERE schema_name = 's'").fetchall()
        assert views == [("t",)]
        assert _pins(con) == []


def test_unpinning_leaves_only_delta_scan_views(tmp_path: Path) -> None:
    lake = _lake(tmp_path)
    with connect_lake(lake) as con:
        con.unpin_snapshots()
        assert _pins(con) == []
        lake.table("s.t").append(pa.table({"x": [2]}))
        assert con.sql("SELECT count(*) FROM s.t").fetchone() == (2,)
        assert _pins(con) == []


def test_pins_are_named_as_internal_and_left_out_of_show_databases(tmp_path: Path) -> None:
    lake = _lake(tmp_path)
    lake.create_table("s.u", pa.schema([("x", pa.int64())])).append(pa.table({"x": [1]}))
    with connect_lake(lake) as con:
        con.execute("ATTACH ':memory:' AS mine")
        pins = _pins(con)
        assert sorted(p.rsplit("_of_", 1)[1] for p in pins) == ["s_t", "s_u"]  # named for their table
        everything = [r[0] for r in con.duckdb.sql("SHOW DATABASES").fetchall()]
        assert set(pins) <= set(everything)  # DuckDB's own SHOW DATABASES lists them
        assert [r[0] for r in con.sql("SHOW DATABASES").fetchall()] == ["memory", "mine"]
        assert [r[0] for r in con.execute("show databases;").fetchall()] == ["memory", "mine"]


def test_a_checkpoint_without_a_commit_re_pins_at_once(tmp_path: Path) -> None:
    # ADR 0057: a writer that paused checkpoints the table; a reader's pin then takes the checkpoint
    # at once (the same version), instead of scanning the table as if it had a new commit
    lake = _lake(tmp_path)
    table = lake.table("s.t")
    for i in range(2, 5):
        table.append(pa.table({"x": [i]}))
    with connect_lake(lake) as con:
        _age_log(tmp_path, max(MTIME_TRUST_S, QUIET_S) + 5)
        for _ in range(2):  # pinned on an old stamp
            assert con.sql("SELECT count(*) FROM s.t").fetchone() == (4,)
        pin = con._snapshots._pins["s.t"]
        alias, version = pin.alias, pin.version
        assert alias
        assert table.checkpoint_if_behind() == version  # moves the log's stamp, not its version
        assert con.sql("SELECT count(*) FROM s.t").fetchone() == (4,)
        assert not pin.scanning
        assert pin.alias != alias  # pinned again, on the checkpoint
        assert pin.version == version
        assert len(_pins(con)) == 1
        table.append(pa.table({"x": [5]}))  # a commit after it is still seen at once
        assert con.sql("SELECT count(*) FROM s.t").fetchone() == (5,)

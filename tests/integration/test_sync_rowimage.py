"""Our row-image decoder (``shoal.replicate.rowimage``) against python-mysql-replication's, on the
real MariaDB's binlog: every column type of the decoder, extremes, NULLs, zero dates, 4-byte
UTF-8, unsigned, updates (two images) and deletes. The same event is decoded both ways; values
must be equal and of the same Python type (a Decimal with the same exponent). Then two syncs of
the same changes, one decoding with ours, one with the library's, must give equal replicas."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from harness.private_databases import PrivateMariaDB
from harness.sync_helpers import mysql_decl, start_private, syncer_of, write_project
from shoal.project import Project
from shoal.replicate.mysql import _wrap
from shoal.replicate.rowimage import RowImages

COLUMNS = """
    id BIGINT UNSIGNED PRIMARY KEY,
    ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED, mi MEDIUMINT,
    miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, b BOOLEAN, f FLOAT, d DOUBLE,
    dec1 DECIMAL(20,4), dec2 DECIMAL(10,2), dec3 DECIMAL(38,10), dec4 DECIMAL(5,0), dec5 DECIMAL(4,4),
    dec6 DECIMAL(65,30), dec7 DECIMAL(18,9), dec8 DECIMAL(1,0),
    dt DATETIME, dt6 DATETIME(6), dt3 DATETIME(3), dt1 DATETIME(1),
    ts TIMESTAMP NULL, ts6 TIMESTAMP(6) NULL, ts2 TIMESTAMP(2) NULL, ts5 TIMESTAMP(5) NULL,
    dd DATE, j JSON, e ENUM('free', 'pro', '🦈'),
    s VARCHAR(20) CHARACTER SET utf8mb4, s300 VARCHAR(300) CHARACTER SET utf8mb4,
    c CHAR(10) CHARACTER SET utf8mb4, c3 CHAR(10) CHARACTER SET utf8mb3,
    lat VARCHAR(10) CHARACTER SET latin1, asc_ VARCHAR(10) CHARACTER SET ascii,
    bn BINARY(4), vb VARBINARY(10),
    tt TINYTEXT, t TEXT, mt MEDIUMTEXT, lt LONGTEXT,
    tb TINYBLOB, bl BLOB, mb MEDIUMBLOB, lb LONGBLOB,
    n INT NULL
"""

MAXES = {
    "id": "18446744073709551615", "ti": "127", "tiu": "255", "si": "32767", "siu": "65535",
    "mi": "8388607", "miu": "16777215", "i": "2147483647", "iu": "4294967295",
    "bi": "9223372036854775807", "b": "TRUE", "f": "1.5", "d": "1e308",
    "dec1": "12345678901234.5678", "dec2": "99999999.99", "dec3": "1234567890123456789012345678.0123456789",
    "dec4": "99999", "dec5": "0.9999",
    "dec6": "12345678901234567890123456789012345.123456789012345678901234567890",
    "dec7": "123456789.123456789", "dec8": "9",
    "dt": "'9999-12-31 23:59:59'", "dt6": "'2024-01-02 03:04:05.123456'", "dt3": "'2024-01-02 03:04:05.123'",
    "dt1": "'2024-01-02 03:04:05.1'", "ts": "'2038-01-19 03:14:07'", "ts6": "'2024-01-02 03:04:05.000001'",
    "ts2": "'2024-01-02 03:04:05.99'", "ts5": "'2024-01-02 03:04:05.12345'", "dd": "'2024-02-29'",
    "j": """'{"a": [1, 2], "😀": null}'""", "e": "'🦈'", "s": "'cdc 🦈 ünï'",
    "s300": "REPEAT('é🦈', 140)", "c": "'char 😀'", "c3": "'mb3 €'", "lat": "'café'", "asc_": "'plain'",
    "bn": "x'00ff0010'", "vb": "x''", "tt": "'tiny 😀'", "t": "REPEAT('t', 300)", "mt": "'medium'",
    "lt": "REPEAT('🦈', 20000)", "tb": "x'00'", "bl": "x'00ff'", "mb": "x'01'", "lb": "REPEAT(x'02', 70000)",
    "n": "NULL",
}  # fmt: skip

MINS = {
    "id": "0", "ti": "-128", "tiu": "0", "si": "-32768", "siu": "0", "mi": "-8388608", "miu": "0",
    "i": "-2147483648", "iu": "0", "bi": "-9223372036854775808", "b": "FALSE", "f": "-3.25e10",
    "d": "-2.5e-300", "dec1": "-12345678901234.5678", "dec2": "-0.01", "dec3": "-0.0000000001",
    "dec4": "-99999", "dec5": "-0.0001", "dec6": "-1.5", "dec7": "-0.000000001", "dec8": "-9",
    "dt": "'1000-01-01 00:00:00'", "dt6": "'1000-01-01 00:00:00.000000'", "dt3": "'1970-01-01 00:00:00.001'",
    "dt1": "'2000-01-01 00:00:00.9'", "ts": "'1970-01-01 00:00:01'", "ts6": "'1970-01-01 00:00:01.5'",
    "ts2": "'2000-01-01 00:00:00.01'", "ts5": "'2000-01-01 00:00:00.00001'", "dd": "'1000-01-01'",
    "j": "'[]'", "e": "'free'", "s": "''", "s300": "''", "c": "''", "c3": "''", "lat": "''", "asc_": "''",
    "bn": "x'00000000'", "vb": "x'00'", "tt": "''", "t": "''", "mt": "''", "lt": "''", "tb": "x''",
    "bl": "x''", "mb": "x''", "lb": "x''", "n": "0",
}  # fmt: skip

#: what the library makes None: zero dates and parts, the empty ENUM value (sql_mode '')
ZEROS = {
    **{k: "NULL" for k in MAXES},
    "id": "3", "dt": "'0000-00-00 00:00:00'", "dt6": "'0000-00-00 00:00:00.000000'", "dd": "'0000-00-00'",
    "dt3": "'2024-00-10 00:00:00'", "ts": "'0000-00-00 00:00:00'", "e": "''", "dec2": "0", "dec5": "0",
}  # fmt: skip


@pytest.fixture(scope="module")
def maria() -> Iterator[PrivateMariaDB]:
    yield from start_private("mysql")


@pytest.fixture
def db(maria: PrivateMariaDB) -> Iterator[str]:
    name = f"img_{uuid.uuid4().hex[:8]}"
    maria.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    yield name
    maria.execute(f"DROP DATABASE IF EXISTS {name}")


def _insert(values: dict[str, str]) -> str:
    return f"INSERT INTO typed ({', '.join(MAXES)}) VALUES ({', '.join(values[n] for n in MAXES)})"


def _workload(maria: PrivateMariaDB, db: str) -> None:
    """Every type at its extremes, NULLs, zero dates, updates of each column and a key, deletes."""
    with maria.connect(db) as con, con.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")
        cur.execute("SET SESSION sql_mode = ''")  # zero dates, the empty ENUM value
        cur.execute(_insert(MAXES))
        cur.execute(_insert(MINS))
        cur.execute(_insert({**{k: "NULL" for k in MAXES}, "id": "2"}))
        cur.execute(_insert(ZEROS))
        cur.execute("BEGIN")
        # many rows in one event, with varying NULLs
        for k in range(10, 200):
            cur.execute(
                "INSERT INTO typed (id, i, s, dec1, dt6, ts6, dd, e, bl) VALUES "
                f"({k}, {k * 7 if k % 3 else 'NULL'}, {repr(f'row {k} 🦈') if k % 5 else 'NULL'}, "
                f"{-k}.{k:04d}, '2024-03-01 00:00:{k % 60:02d}.{k:06d}', '2024-03-01 00:00:00.{k:06d}', "
                f"'2024-03-{k % 28 + 1:02d}', {'NULL' if k % 4 == 0 else repr(['free', 'pro'][k % 2])}, "
                f"{'NULL' if k % 7 == 0 else 'x' + repr(format(k, '02x'))})"
            )
        cur.execute("COMMIT")
        cur.execute(
            "UPDATE typed SET ti = -1 - ti, s = CONCAT(COALESCE(s, ''), ' ✓'), dec1 = -dec1, "
            "dec6 = dec6 / 2, dt6 = dt6 + INTERVAL 1 SECOND, ts = NOW(6), ts6 = NOW(6), "
            "n = COALESCE(n, 0) + 1, "
            "e = 'pro', bl = x'ff00', lt = 'short now', f = f * 2, d = -d WHERE id < 200"
        )
        cur.execute("UPDATE typed SET id = 1000 WHERE id = 2")
        cur.execute("DELETE FROM typed WHERE id IN (0, 11, 12, 13)")


def _same(ours: Any, theirs: Any) -> bool:
    if type(ours) is not type(theirs):
        return False
    if isinstance(ours, Decimal):
        return ours.as_tuple() == theirs.as_tuple()
    return bool(ours == theirs)


def _stream(maria: PrivateMariaDB, db: str, file: str, pos: int) -> Any:
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

    settings = {"host": "127.0.0.1", "port": maria.port, "user": "root", "password": "", "ssl_disabled": True}
    return BinLogStreamReader(
        connection_settings=settings,
        server_id=4242,
        blocking=False,
        resume_stream=True,
        log_file=file,
        log_pos=pos,
        only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent],
        only_schemas=[db],
        is_mariadb=False,
        pymysql_wrapper=_wrap,
    )


def _both(maria: PrivateMariaDB, db: str, file: str, pos: int) -> tuple[list[Any], list[Any], int]:
    """Each rows event's images decoded by ours, then by the library's."""
    from pymysqlreplication.row_event import UpdateRowsEvent

    images = RowImages()
    ours: list[Any] = []
    theirs: list[Any] = []
    events = 0
    stream = _stream(maria, db, file, pos)
    try:
        for event in stream:
            events += 1
            decoded = images.rows(event)  # reads the event's bytes without consuming them
            assert decoded is not None, f"our decoder left {event.table} to the library"
            ours.extend(decoded)
            for row in event.rows:
                if isinstance(event, UpdateRowsEvent):
                    theirs.extend([row["before_values"], row["after_values"]])
                else:
                    theirs.append(row["values"])
    finally:
        stream.close()
    return ours, theirs, events


def test_every_type_decodes_as_the_library_does(maria: PrivateMariaDB, db: str) -> None:
    maria.execute(f"CREATE TABLE {db}.typed ({COLUMNS})")
    file, pos = maria.execute("SHOW MASTER STATUS")[0][:2]
    _workload(maria, db)
    ours, theirs, events = _both(maria, db, file, int(pos))
    assert events >= 8
    # 4 + 190 inserts, 193 updates (two images) + 1 key change, 4 deletes
    assert len(theirs) == 4 + 190 + 2 * 193 + 2 + 4
    assert len(ours) == len(theirs)
    for k, (mine, lib) in enumerate(zip(ours, theirs, strict=True)):
        assert list(mine) == list(lib), k
        wrong = {n: (mine[n], lib[n]) for n in lib if not _same(mine[n], lib[n])}
        assert not wrong, (k, wrong)
    # the decoder saw what the test means it to: extremes, 4-byte UTF-8, NULLs, zero dates
    by_id = {r["id"]: r for r in theirs[:4]}
    assert by_id[18446744073709551615]["s"] == "cdc 🦈 ünï"
    assert by_id[18446744073709551615]["lt"] == "🦈" * 20000
    assert by_id[0]["bi"] == -9223372036854775808
    assert by_id[0]["dec3"] == Decimal("-0.0000000001")
    assert by_id[2]["s"] is None
    assert by_id[3]["dt"] is None
    assert by_id[3]["dd"] is None
    assert by_id[3]["e"] == ""


def test_other_types_are_left_to_the_library(maria: PrivateMariaDB, db: str) -> None:
    maria.execute(
        f"CREATE TABLE {db}.odd (id INT PRIMARY KEY, tm TIME(3), y YEAR, bt BIT(10), st SET('a', 'b'))"
    )
    file, pos = maria.execute("SHOW MASTER STATUS")[0][:2]
    maria.execute(f"INSERT INTO {db}.odd VALUES (1, '-12:34:56.789', 2024, b'1010', 'a,b')")
    stream = _stream(maria, db, file, int(pos))
    images = RowImages()
    try:
        events = list(stream)
        assert len(events) == 1
        assert images.rows(events[0]) is None  # and the bytes are still the library's to read
        assert events[0].rows[0]["values"]["y"] == 2024
    finally:
        stream.close()


def test_a_sync_with_our_decoder_equals_one_with_the_librarys(
    tmp_path: Path, maria: PrivateMariaDB, db: str
) -> None:
    maria.execute(f"CREATE TABLE {db}.typed ({COLUMNS})")
    ours = Project.load(write_project(tmp_path / "ours", {"crm": mysql_decl(maria, db)}))
    theirs = Project.load(write_project(tmp_path / "theirs", {"crm": mysql_decl(maria, db)}))
    syncer_of(ours).run()
    syncer_of(theirs).run()
    _workload(maria, db)
    syncer_of(ours).run()
    library = syncer_of(theirs)
    library.source._images.rows = lambda event: None  # type: ignore[attr-defined,method-assign]
    library.run()
    got = ours.lake.table("crm_replica.typed").to_arrow().sort_by("id")
    want = theirs.lake.table("crm_replica.typed").to_arrow().sort_by("id")
    assert got.num_rows == want.num_rows == len(maria.execute(f"SELECT id FROM {db}.typed"))
    assert got.schema == want.schema
    for name in got.schema.names:
        assert got.column(name).to_pylist() == want.column(name).to_pylist(), name


def test_a_compressed_binlog_is_refused_not_skipped(tmp_path: Path) -> None:
    """MariaDB's log_bin_compress writes row events the library does not know (it skips them):
    the sync says so instead of missing rows."""
    from harness.databases import DatabaseUnavailable
    from shoal.replicate.errors import ReplicationNotConfigured

    server = PrivateMariaDB(extra_args=["--log-bin-compress=ON"])
    try:
        server.start()
    except DatabaseUnavailable as exc:
        pytest.skip(str(exc))
    try:
        server.execute("CREATE DATABASE z")
        server.execute("CREATE TABLE z.t (id INT PRIMARY KEY, s TEXT)")
        project = Project.load(write_project(tmp_path / "p", {"crm": mysql_decl(server, "z")}))
        with pytest.raises(ReplicationNotConfigured, match=r"log_bin_compress=ON") as info:
            syncer_of(project).run()
        assert "\n" not in str(info.value)
    finally:
        server.stop()

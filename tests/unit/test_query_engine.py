"""SQL over the lake: views per table, freshness, time travel syntax, errors."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
import pytest

from shoal.errors import NotFoundError
from shoal.lake import Lake
from shoal.query import QueryError, connect_lake
from shoal.query.timetravel import AsOf, rewrite_as_of


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    lake = Lake(str(tmp_path / "lake"))
    t = lake.create_table(
        "sales.orders",
        pa.schema([("id", pa.int64()), ("amount", pa.decimal128(18, 6)), ("day", pa.date32())]),
        partition_by=["day"],
    )
    import datetime as dt
    from decimal import Decimal

    t.append(
        pa.table(
            {
                "id": [1, 2],
                "amount": pa.array([Decimal("1.10"), Decimal("2.20")], pa.decimal128(18, 6)),
                "day": [dt.date(2026, 1, 1), dt.date(2026, 1, 2)],
            }
        )
    )
    return lake


def test_tables_are_views_and_stay_fresh(lake: Lake) -> None:
    from decimal import Decimal

    with connect_lake(lake) as con:
        assert con.sql("select sum(amount) from sales.orders").fetchone() == (Decimal("3.300000"),)
        lake.table("sales.orders").append(
            pa.table(
                {
                    "id": [3],
                    "amount": pa.array([Decimal("0.01")], pa.decimal128(18, 6)),
                    "day": pa.array([None], pa.date32()),
                }
            )
        )
        assert con.sql("select count(*) from sales.orders").fetchone() == (3,)
        # a table created after connecting is mounted on refresh
        lake.create_table("sales.refunds", pa.schema([("id", pa.int64())]))
        con.refresh()
        assert con.sql("select count(*) from sales.refunds").fetchone() == (0,)


def test_version_and_timestamp_as_of(lake: Lake) -> None:
    t = lake.table("sales.orders")
    time.sleep(0.05)
    cut = t.history(1)[0]["timestamp"]
    time.sleep(0.05)
    t.delete("id = 1")
    with connect_lake(lake) as con:
        assert con.sql("select count(*) from sales.orders").fetchone() == (1,)
        assert con.sql("select count(*) from sales.orders VERSION AS OF 1").fetchone() == (2,)
        import datetime as dt

        iso = dt.datetime.fromtimestamp(cut / 1000, tz=dt.UTC).isoformat()
        assert con.sql(f"select count(*) from sales.orders TIMESTAMP AS OF '{iso}'").fetchone() == (2,)
        assert con.table("sales.orders", version=0).count("*").fetchone() == (0,)
        with pytest.raises(NotFoundError, match="no version 42"):
            con.sql("select * from sales.orders VERSION AS OF 42")


def test_unknown_table_and_bad_sql(lake: Lake) -> None:
    with connect_lake(lake) as con:
        with pytest.raises(QueryError, match=r"unknown table .*sales\.orders"):
            con.sql("select * from sales.order")
        with pytest.raises(QueryError, match="syntax error"):
            con.sql("selec 1")


def test_rewrite_ignores_string_literals() -> None:
    seen: list[AsOf] = []

    def resolve(a: AsOf) -> str:
        seen.append(a)
        return f"scan_{a.version}"

    sql = "select 'a.b VERSION AS OF 3' as s from a.b version as of 7 join c.d TIMESTAMP AS OF '2026-01-01'"
    out = rewrite_as_of(sql, resolve)
    assert out.startswith("select 'a.b VERSION AS OF 3' as s from scan_7 join scan_None")
    assert seen == [AsOf("a.b", 7, None), AsOf("c.d", None, "2026-01-01")]

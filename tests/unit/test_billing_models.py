"""Billing models (DuckDB SQL) against the independent Decimal reference, to the cent."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from shoal.models import Model
from shoal.usecases.billing import reference
from shoal.usecases.billing.events import USAGE, BillingEvent
from shoal.usecases.billing.models import MODEL_SPECS
from shoal.usecases.billing.simulator import BillingSimulator

PARTITIONS = 3
START = datetime(2026, 1, 1, tzinfo=UTC)
SPECS = {s.name: s for s in MODEL_SPECS}
TS_US = pa.timestamp("us", tz="UTC")


def to_arrow(events: Sequence[BillingEvent], topic: str = "billing.usage") -> pa.Table:
    """What the ingest engine lands: proto columns per the mapping + _kafka_* metadata."""
    cols = list(zip(*events, strict=True))
    f = BillingEvent._fields
    table: dict[str, pa.Array] = {}
    for name, col in zip(f, cols, strict=True):
        if name in ("occurred_at", "billing_hour"):
            table[name] = pa.array(col, type=TS_US)
        elif name.endswith("_micros"):
            table[name] = pa.array(col, type=pa.int64())
        else:
            table[name] = pa.array(col, type=pa.string())
    keys = [e.resource_id.encode() for e in events]
    parts = [zlib.crc32(k) % PARTITIONS for k in keys]
    next_offset = [0] * PARTITIONS
    offsets = []
    for p in parts:
        offsets.append(next_offset[p])
        next_offset[p] += 1
    n = len(events)
    table["_kafka_topic"] = pa.array([topic] * n, type=pa.string())
    table["_kafka_partition"] = pa.array(parts, type=pa.int32())
    table["_kafka_offset"] = pa.array(offsets, type=pa.int64())
    table["_kafka_timestamp"] = pa.array([e.occurred_at for e in events], type=pa.timestamp("ms", tz="UTC"))
    table["_kafka_key"] = pa.array(keys, type=pa.binary())
    table["_ingested_at"] = pa.array([START] * n, type=TS_US)
    return pa.table(table)


def materialize(
    con: duckdb.DuckDBPyConnection, events: Sequence[BillingEvent], specs: Sequence[Model] = MODEL_SPECS
) -> None:
    """Register events as billing.usage_events and build every model as a table, in order."""
    arrow_tbl = to_arrow(events)
    con.register("arrow_tbl", arrow_tbl)
    con.execute("CREATE SCHEMA IF NOT EXISTS billing")
    con.execute("CREATE OR REPLACE VIEW billing.usage_events AS SELECT * FROM arrow_tbl")
    for spec in specs:
        con.execute(f"CREATE OR REPLACE TABLE {spec.name} AS {spec.sql}")


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    # via Arrow: TIMESTAMPTZ values come back as aware datetimes without needing pytz
    result: list[dict[str, Any]] = con.execute(sql).arrow().read_all().to_pylist()
    return result


def keyed(rs: list[dict[str, Any]], key: Sequence[str]) -> dict[tuple[Any, ...], dict[str, Any]]:
    out = {tuple(r[k] for k in key): r for r in rs}
    assert len(out) == len(rs), "unique_key is not unique"
    return out


#: the models that keep revenue fresh (the fast watcher's chain)
FAST_PATH = ("billing.charges_hourly", "billing.invoice_lines", "billing.revenue_hourly", "billing.run_rate")


def fast_path() -> list[Model]:
    return [m for m in MODEL_SPECS if m.name in FAST_PATH]


def assert_fast_path_exact(con: Any, events: Sequence[BillingEvent]) -> None:
    """Each fast-path model's rows through ``con`` (anything with ``query_arrow``) equal the
    Decimal reference's for ``events``."""
    ref = reference.compute(list(events))
    for m in fast_path():
        got = con.query_arrow(f"SELECT * FROM {m.name}").to_pylist()
        want = getattr(ref, m.name.split(".", 1)[1])
        assert keyed(got, m.unique_key) == keyed(want, m.unique_key), m.name


@pytest.fixture(scope="module")
def sim_events() -> list[BillingEvent]:
    # January (31 days: caps reached at ~hour 672) plus Feb 1, so late events cross the month
    sim = BillingSimulator(seed=11, start=START, days=32, users=250, late_share=0.07, dup_share=0.012)
    return list(sim.events())


@pytest.fixture(scope="module")
def con(sim_events: list[BillingEvent]) -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    c.execute("SET TimeZone = 'America/Los_Angeles'")  # results must not depend on the session zone
    materialize(c, sim_events)
    return c


@pytest.fixture(scope="module")
def ref(sim_events: list[BillingEvent]) -> reference.Reference:
    return reference.compute(sim_events)


def test_stream_has_required_late_and_duplicate_shares(sim_events: list[BillingEvent]) -> None:
    ids = {e.event_id for e in sim_events}
    assert (len(sim_events) - len(ids)) / len(ids) >= 0.01
    latest = START
    late = 0
    for e in sim_events:
        if e.billing_hour < latest:
            late += 1
        latest = max(latest, e.billing_hour)
    assert late / len(sim_events) >= 0.05
    months = {e.billing_month for e in sim_events}
    assert months == {"2026-01", "2026-02"}


def test_money_columns_are_decimal(con: duckdb.DuckDBPyConnection) -> None:
    for spec in MODEL_SPECS:
        for name, typ in con.execute(
            f"SELECT column_name, column_type FROM (DESCRIBE {spec.name})"
        ).fetchall():
            assert typ not in ("DOUBLE", "FLOAT"), f"{spec.name}.{name} is {typ}"
    types = dict(
        con.execute("SELECT column_name, column_type FROM (DESCRIBE billing.charges_hourly)").fetchall()
    )
    assert types["charge"] == "DECIMAL(18,6)"
    types = dict(
        con.execute("SELECT column_name, column_type FROM (DESCRIBE billing.invoice_preview)").fetchall()
    )
    assert types["amount_due"] == "DECIMAL(18,2)"
    assert types["invoice_total"] == "DECIMAL(18,2)"


def _check(con: duckdb.DuckDBPyConnection, spec: Model, expected: list[dict[str, Any]]) -> None:
    got = keyed(rows(con, f"SELECT * FROM {spec.name}"), spec.unique_key)
    want = keyed(expected, spec.unique_key)
    assert got.keys() == want.keys()
    for k, w in want.items():
        g = got[k]
        assert set(g) == set(w), spec.name
        assert g == w, (spec.name, k)


@pytest.mark.parametrize("name", [s.name for s in MODEL_SPECS])
def test_model_equals_reference(con: duckdb.DuckDBPyConnection, ref: reference.Reference, name: str) -> None:
    expected = getattr(ref, name.split(".", 1)[1])
    assert expected
    _check(con, SPECS[name], expected)


def test_caps_and_rounding_are_exercised(ref: reference.Reference) -> None:
    capped = [r for r in ref.charges_hourly if r["charge"] < r["uncapped_charge"]]
    partial = [r for r in capped if r["charge"] > 0]
    assert len(capped) > 100
    assert len(partial) > 10
    lines = ref.invoice_preview
    assert any(r["amount"] != r["amount_due"] for r in lines)
    run = {r["product"]: r["run_rate"] for r in ref.run_rate}
    assert run["vm"] > 0
    buckets = {r["compute_spend_bucket"]: r for r in ref.storage_run_rate_by_compute_spend}
    assert sum(r["storage_users"] for r in buckets.values()) > 0


def sym_diff(con: duckdb.DuckDBPyConnection, a_sql: str, b_sql: str) -> int:
    """Rows in one result but not the other (multiset), computed in DuckDB."""
    row = con.execute(
        f"SELECT count(*) FROM (({a_sql}) EXCEPT ALL ({b_sql})) UNION ALL "
        f"SELECT count(*) FROM (({b_sql}) EXCEPT ALL ({a_sql}))"
    ).fetchall()
    return int(row[0][0]) + int(row[1][0])


@pytest.mark.parametrize("name", [s.name for s in MODEL_SPECS if s.incremental_by])
def test_incremental_restriction_equals_full_subset(con: duckdb.DuckDBPyConnection, name: str) -> None:
    spec = SPECS[name]
    cols = ", ".join(spec.incremental_by)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE touched AS "
        f"SELECT * FROM (SELECT DISTINCT {cols} FROM {spec.name}) USING SAMPLE 20 PERCENT (bernoulli, 3)"
    )
    # the runner's restriction for non-NULL slices: SELECT * FROM (<model sql>) WHERE <slice in touched>
    where = f"WHERE ({cols}) IN (SELECT ({cols}) FROM touched)"
    restricted = f"SELECT * FROM ({spec.sql}) {where}"
    full = f"SELECT * FROM {spec.name} {where}"
    n = con.execute(f"SELECT count(*) FROM ({restricted})").fetchall()[0][0]
    assert 0 < n < con.execute(f"SELECT count(*) FROM {spec.name}").fetchall()[0][0]
    assert sym_diff(con, restricted, full) == 0


def test_charges_incremental_sql_equals_the_full_query_in_scope(sim_events: list[BillingEvent]) -> None:
    """The incremental form — the model's rows in scope (``__shoal_old``) plus the new usage rows
    (``__shoal_changes``), the earlier hours' uncapped total from ``invoice_lines`` —
    returns exactly the full query's rows of each touched slice from its restate hour on."""
    spec = SPECS["billing.charges_hourly"]
    assert spec.incremental_sql is not None
    state = SPECS["billing.invoice_lines"]
    # new events: a delivery suffix late in January, past many cap crossings; its late events
    # restate hours already billed, and its duplicates repeat events already charged
    cut = next(i for i, e in enumerate(sim_events) if e.billing_hour >= datetime(2026, 1, 30, tzinfo=UTC))
    head_ids = {e.event_id for e in sim_events[:cut]}
    assert any(e.event_id in head_ids for e in sim_events[cut:])
    c = duckdb.connect()
    c.execute("SET TimeZone = 'America/Los_Angeles'")
    materialize(c, sim_events[:cut], [spec, state])  # the models before the new events
    changes = to_arrow(sim_events).slice(cut)
    c.register("__shoal_changes", changes.append_column("_change_type", pa.array(["insert"] * len(changes))))
    c.execute(
        "CREATE TEMP TABLE __shoal_touched AS SELECT billing_month, resource_id, "
        # some slices restate whole (NULL), as when a change lacks an hour
        "  CASE WHEN hash(resource_id) % 7 = 0 THEN NULL ELSE min(billing_hour) END AS __shoal_from "
        "FROM __shoal_changes GROUP BY billing_month, resource_id"
    )
    scope = (
        "EXISTS (SELECT 1 FROM __shoal_touched t WHERE t.billing_month = f.billing_month "
        "AND t.resource_id = f.resource_id AND (t.__shoal_from IS NULL OR f.billing_hour >= t.__shoal_from))"
    )
    c.execute(f"CREATE TEMP TABLE __shoal_old AS SELECT * FROM billing.charges_hourly f WHERE {scope}")
    got = c.execute(spec.incremental_sql).arrow().read_all()
    touched = c.execute("SELECT * FROM __shoal_touched").arrow().read_all()

    full = duckdb.connect()
    materialize(full, sim_events, [spec])
    full.register("__shoal_touched", touched)
    full.register("got", got)
    want = f"SELECT * FROM billing.charges_hourly f WHERE {scope}"
    n = full.execute(f"SELECT count(*) FROM ({want})").fetchall()[0][0]
    assert n == got.num_rows
    capped = full.execute(f"SELECT count(*) FROM ({want}) WHERE charge < uncapped_charge").fetchall()[0][0]
    assert capped > 0  # the scope holds hours past a cap crossing: the prior total matters
    assert sym_diff(full, "SELECT * FROM got", want) == 0


def test_incremental_refresh_with_late_events_restates_cap_hours(sim_events: list[BillingEvent]) -> None:
    """Refresh the touched (month, resource) of a delivery suffix: equals the full recompute."""
    spec = SPECS["billing.charges_hourly"]
    # cut the delivery stream late in January, when many resources have reached their cap
    cut_hour = datetime(2026, 1, 31, tzinfo=UTC)
    cut = next(i for i, e in enumerate(sim_events) if e.billing_hour >= cut_hour)
    head, tail = sim_events[:cut], sim_events[cut:]
    c = duckdb.connect()
    materialize(c, head, [spec])
    c.execute("CREATE TABLE before_refresh AS SELECT * FROM billing.charges_hourly")
    # late tail events land in months/resources that already had rows
    assert any(e.billing_hour < head[-1].billing_hour - timedelta(hours=2) for e in tail)
    c.register("arrow_tbl", to_arrow(sim_events))
    c.execute("CREATE OR REPLACE TEMP TABLE touched(billing_month VARCHAR, resource_id VARCHAR)")
    c.executemany(
        "INSERT INTO touched VALUES (?, ?)", sorted({(e.billing_month, e.resource_id) for e in tail})
    )
    pred = "(billing_month, resource_id) IN (SELECT (billing_month, resource_id) FROM touched)"
    c.execute(f"DELETE FROM billing.charges_hourly WHERE {pred}")
    c.execute(f"INSERT INTO billing.charges_hourly SELECT * FROM ({spec.sql}) WHERE {pred}")
    assert sym_diff(c, "SELECT * FROM billing.charges_hourly", spec.sql) == 0
    # already-billed hours changed their charge: a late earlier hour moved the cap crossing
    restated = c.execute(
        f"SELECT count(*) FROM before_refresh b JOIN ({spec.sql}) f USING (event_id) "
        "WHERE b.charge <> f.charge"
    ).fetchall()[0][0]
    assert restated > 0


def test_late_hour_moves_cap_crossing() -> None:
    """A hand-made resource-month: a late early hour shifts which hour pays the remainder."""
    base = datetime(2026, 3, 1, tzinfo=UTC)

    def usage(i: int, h: int) -> BillingEvent:
        hour = base + timedelta(hours=h)
        return BillingEvent(
            f"e{i:03d}", USAGE, "u1", "t1", "nyc3", "r1", "vm", "p", "hour", 1_000_000, 3_333_333,
            10_000_000, "USD", hour + timedelta(hours=1), hour, "2026-03",
        )  # fmt: skip

    early = [usage(i, h) for i, h in enumerate([1, 2, 3, 4])]
    late = usage(9, 0)
    c = duckdb.connect()
    materialize(c, early)
    before = [r["charge"] for r in rows(c, "SELECT charge FROM billing.charges_hourly ORDER BY billing_hour")]
    assert before == [Decimal("3.333333")] * 3 + [Decimal("0.000001")]
    materialize(c, [*early, late, early[0]])  # late hour 0 plus a duplicate
    after = [r["charge"] for r in rows(c, "SELECT charge FROM billing.charges_hourly ORDER BY billing_hour")]
    assert after == [Decimal("3.333333")] * 3 + [Decimal("0.000001"), Decimal(0)]
    ref_rows = sorted(reference.charges([*early, late, early[0]]), key=lambda r: r["billing_hour"])
    assert [r["charge"] for r in ref_rows] == after
    inv = rows(c, "SELECT amount, amount_due, invoice_total FROM billing.invoice_preview")
    assert inv == [
        {"amount": Decimal("10.000000"), "amount_due": Decimal("10.00"), "invoice_total": Decimal("10.00")}
    ]

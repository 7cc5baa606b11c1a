"""The support models' SQL (DuckDB 1.5.5) against the pure-Python reference."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from shoal.usecases.support import messages as pb
from shoal.usecases.support import models, reference
from shoal.usecases.support.simulator import SupportSimulator

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SCALARS = {
    FieldDescriptor.TYPE_STRING: pa.string(),
    FieldDescriptor.TYPE_BYTES: pa.binary(),
    FieldDescriptor.TYPE_BOOL: pa.bool_(),
    FieldDescriptor.TYPE_INT32: pa.int32(),
    FieldDescriptor.TYPE_INT64: pa.int64(),
    FieldDescriptor.TYPE_UINT32: pa.uint32(),
    FieldDescriptor.TYPE_UINT64: pa.uint64(),
    FieldDescriptor.TYPE_DOUBLE: pa.float64(),
    FieldDescriptor.TYPE_FLOAT: pa.float32(),
}
_TS = "google.protobuf.Timestamp"


# --- a tiny test-only converter implementing the contract's protobuf -> Arrow column mapping ---


def _arrow_type(field: FieldDescriptor) -> pa.DataType:
    if field.type == FieldDescriptor.TYPE_ENUM:
        t: pa.DataType = pa.string()
    elif field.type == FieldDescriptor.TYPE_MESSAGE:
        if field.message_type.full_name == _TS:
            t = pa.timestamp("us", tz="UTC")
        else:
            t = pa.struct([pa.field(f.name, _arrow_type(f)) for f in field.message_type.fields])
    else:
        t = _SCALARS[field.type]
    is_repeated = field.is_repeated
    return pa.list_(t) if is_repeated else t


def _value(field: FieldDescriptor, v: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_ENUM:
        return field.enum_type.values_by_number[v].name
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if field.message_type.full_name == _TS:
            return _EPOCH + timedelta(seconds=v.seconds, microseconds=v.nanos // 1000)
        return _row(field.message_type, v)
    return v


def _row(desc: Descriptor, msg: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in desc.fields:
        v = getattr(msg, f.name)
        if f.is_repeated:
            out[f.name] = [_value(f, x) for x in v]
        elif f.type == FieldDescriptor.TYPE_MESSAGE and not msg.HasField(f.name):
            out[f.name] = None
        else:
            out[f.name] = _value(f, v)
    for oneof in desc.oneofs:
        out[f"{oneof.name}_case"] = msg.WhichOneof(oneof.name)
    return out


def events_to_arrow(events: Sequence[Any]) -> pa.Table:
    """What the ingest engine lands: mapped columns + metadata columns + event_date partition."""
    desc = pb.TicketEvent.DESCRIPTOR
    fields = [pa.field(f.name, _arrow_type(f)) for f in desc.fields]
    fields += [pa.field(f"{o.name}_case", pa.string()) for o in desc.oneofs]
    fields += [
        pa.field("_kafka_topic", pa.string()),
        pa.field("_kafka_partition", pa.int32()),
        pa.field("_kafka_offset", pa.int64()),
        pa.field("_kafka_timestamp", pa.timestamp("ms", tz="UTC")),
        pa.field("_kafka_key", pa.binary()),
        pa.field("_ingested_at", pa.timestamp("us", tz="UTC")),
        pa.field("event_date", pa.date32()),
    ]
    now = datetime(2026, 3, 1, tzinfo=UTC)
    rows = []
    for offset, ev in enumerate(events):
        row = _row(desc, ev)
        row.update(
            _kafka_topic="support.ticket-events",
            _kafka_partition=hash(ev.ticket_id) % 6,
            _kafka_offset=offset,
            _kafka_timestamp=now,
            _kafka_key=ev.ticket_id.encode(),
            _ingested_at=now,
            event_date=row["occurred_at"].date(),
        )
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=pa.schema(fields))


# --- helpers ---------------------------------------------------------------------------------


def _connect(events: Sequence[Any], timezone: str = "UTC") -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(f"SET TimeZone = '{timezone}'")
    con.register("ticket_events_arrow", events_to_arrow(events))
    con.execute("CREATE SCHEMA support")
    con.execute("CREATE VIEW support.ticket_events AS SELECT * FROM ticket_events_arrow")
    return con


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    # via Arrow: DuckDB's own Python conversion of TIMESTAMPTZ needs pytz
    out: list[dict[str, Any]] = con.execute(sql, list(params)).to_arrow_table().to_pylist()
    for r in out:  # compare instants, whatever the session time zone
        for k, v in r.items():
            if isinstance(v, datetime):
                r[k] = v.astimezone(UTC)
    return out


def _expected(rows: Iterable[Any]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(r) for r in rows]


def _sim_events(seed: int = 11) -> list[Any]:
    sim = SupportSimulator(
        seed,
        datetime(2026, 2, 2, 6, tzinfo=UTC),
        days=4,
        tickets_per_day=80,
        tail_days=1.5,
        duplicate_rate=0.03,
    )
    events = list(sim.events())
    random.Random(seed).shuffle(events)  # arrival order must not matter
    return events


@pytest.fixture(scope="module")
def sim_events() -> list[Any]:
    return _sim_events()


@pytest.fixture(scope="module")
def con(sim_events: list[Any]) -> duckdb.DuckDBPyConnection:
    c = _connect(sim_events)
    c.execute(f"CREATE TABLE support.tickets AS {models.TICKETS_SQL}")
    return c


TICKETS_ORDER = " ORDER BY ticket_id"
DAILY_ORDER = " ORDER BY day, team, product"


# --- tests -----------------------------------------------------------------------------------


def test_simulated_sample_is_big_and_varied(sim_events: list[Any]) -> None:
    assert len(sim_events) > 2500
    ids = [e.event_id for e in sim_events]
    assert len(set(ids)) < len(ids)  # duplicates present, so dedupe is exercised
    rows = reference.tickets(sim_events)
    assert any(r.resolved_at is None for r in rows)
    assert any(r.reopen_count for r in rows)
    assert any(r.escalation_count for r in rows)
    assert any(r.csat_count > 1 for r in rows)


def test_tickets_sql_equals_reference(con: duckdb.DuckDBPyConnection, sim_events: list[Any]) -> None:
    got = _rows(con, f"SELECT * FROM ({models.TICKETS_SQL})" + TICKETS_ORDER)
    want = _expected(reference.tickets(sim_events))
    assert [r["ticket_id"] for r in got] == [r["ticket_id"] for r in want]
    assert list(got[0]) == list(want[0])  # same columns, same order
    for g, w in zip(got, want, strict=True):
        assert g == w, g["ticket_id"]


def test_csat_daily_sql_equals_reference(con: duckdb.DuckDBPyConnection, sim_events: list[Any]) -> None:
    got = _rows(con, models.CSAT_DAILY_SQL + DAILY_ORDER)
    want = _expected(reference.csat_daily(reference.tickets(sim_events)))
    assert len(got) == len(want) > 10
    assert any(r["csat_pct"] is not None and 0 < r["csat_pct"] < 100 for r in want)
    for g, w in zip(got, want, strict=True):
        assert g == w, (g["day"], g["team"], g["product"])


def test_tickets_sql_on_a_ticket_subset(con: duckdb.DuckDBPyConnection) -> None:
    full = _rows(con, "SELECT * FROM support.tickets" + TICKETS_ORDER)
    subset = sorted(random.Random(3).sample([r["ticket_id"] for r in full], k=len(full) // 4))
    got = _rows(
        con,
        f"SELECT * FROM ({models.TICKETS_SQL}) WHERE (ticket_id) IN (SELECT unnest(?))" + TICKETS_ORDER,
        [subset],
    )
    assert got == [r for r in full if r["ticket_id"] in set(subset)]
    assert len(got) == len(subset)


def test_csat_daily_sql_on_a_day_subset(con: duckdb.DuckDBPyConnection) -> None:
    full = _rows(con, models.CSAT_DAILY_SQL + DAILY_ORDER)
    days = sorted({r["day"] for r in full})
    subset = days[1::2]
    got = _rows(
        con,
        f"SELECT * FROM ({models.CSAT_DAILY_SQL}) WHERE (day) IN (SELECT unnest(?))" + DAILY_ORDER,
        [subset],
    )
    assert got == [r for r in full if r["day"] in set(subset)]
    assert got


def test_day_is_utc_whatever_the_session_time_zone(sim_events: list[Any]) -> None:
    c = _connect(sim_events, timezone="Pacific/Auckland")
    got = _rows(c, f"SELECT ticket_id, day FROM ({models.TICKETS_SQL})" + TICKETS_ORDER)
    want = [{"ticket_id": r.ticket_id, "day": r.day} for r in reference.tickets(sim_events)]
    assert got == want


# --- hand-made edge cases -------------------------------------------------------------------

T0 = datetime(2026, 1, 5, 23, 30, tzinfo=UTC)


def _ev(event_id: str, ticket_id: str, at: datetime, case: str, team: str = "compute", **payload: Any) -> Any:
    us = int((at - _EPOCH) / timedelta(microseconds=1))
    msg = pb.TicketEvent(
        event_id=event_id,
        ticket_id=ticket_id,
        customer_id="cus-1",
        customer_tier="CUSTOMER_TIER_BUSINESS",
        team=team,
        product="dns",
        channel="CHANNEL_EMAIL",
        priority="PRIORITY_HIGH",
    )
    msg.occurred_at.seconds, msg.occurred_at.nanos = divmod(us, 1_000_000)
    msg.occurred_at.nanos *= 1000
    getattr(msg, case).SetInParent()
    for k, v in payload.items():
        setattr(getattr(msg, case), k, v)
    return msg


def _edge_events() -> list[Any]:
    m = timedelta(minutes=1)
    return [
        # T1: internal note is not a first response; reopened after the last resolve -> unresolved
        _ev("a1", "T1", T0, "ticket_created"),
        _ev("a2", "T1", T0 + m, "agent_replied", public=False),
        _ev("a3", "T1", T0 + 2 * m, "agent_replied", public=True),
        _ev("a3", "T1", T0 + 2 * m, "agent_replied", public=True),  # redelivery
        _ev("a4", "T1", T0 + 3 * m, "resolved", resolution_code="RESOLUTION_CODE_SOLVED"),
        _ev("a5", "T1", T0 + 4 * m, "satisfaction_rated", rating=2),
        _ev("a6", "T1", T0 + 5 * m, "reopened", reason="REOPEN_REASON_ISSUE_PERSISTS"),
        _ev(
            "a7",
            "T1",
            T0 + 5 * m,
            "status_changed",
            from_status="TICKET_STATUS_RESOLVED",
            to_status="TICKET_STATUS_OPEN",
        ),
        # T2: timestamp ties broken by event_id; resolved again after a reopen; team moves on
        _ev("b1", "T2", T0, "ticket_created"),
        _ev("b3", "T2", T0 + m, "satisfaction_rated", rating=5),
        _ev("b2", "T2", T0 + m, "satisfaction_rated", rating=1),
        _ev("b4", "T2", T0 + 2 * m, "resolved", resolution_code="RESOLUTION_CODE_SOLVED"),
        _ev("b5", "T2", T0 + 3 * m, "reopened"),
        _ev("b6", "T2", T0 + 4 * m, "escalated", team="engineering", level=2),
        _ev("b7", "T2", T0 + 90 * m, "resolved", team="", resolution_code="RESOLUTION_CODE_WORKAROUND"),
        # T3: no ticket_created yet -> no row
        _ev("c1", "T3", T0, "agent_replied", public=True),
    ]


def test_edge_cases_reference() -> None:
    rows = {r.ticket_id: r for r in reference.tickets(_edge_events())}
    assert set(rows) == {"T1", "T2"}
    t1, t2 = rows["T1"], rows["T2"]
    assert t1.first_response_s == 120.0
    assert (t1.resolved_at, t1.resolution_s) == (None, None)
    assert (t1.status, t1.reopen_count, t1.latest_csat) == ("TICKET_STATUS_OPEN", 1, 2)
    assert t2.status == reference.NEW_STATUS
    assert (t2.latest_csat, t2.csat_count) == (5, 2)  # tie at T0+1m: event id "b3" > "b2"
    assert (t2.resolution_s, t2.team, t2.escalation_count) == (90 * 60.0, "engineering", 1)
    assert t1.day == date(2026, 1, 5)
    daily = reference.csat_daily(rows.values())
    assert [(d.team, d.tickets_created, d.tickets_resolved, d.csat_pct) for d in daily] == [
        ("compute", 1, 0, 0.0),
        ("engineering", 1, 1, 100.0),
    ]


def test_edge_cases_sql_equals_reference() -> None:
    events = _edge_events()
    c = _connect(events)
    assert _rows(c, models.TICKETS_SQL + TICKETS_ORDER) == _expected(reference.tickets(events))
    c.execute(f"CREATE TABLE support.tickets AS {models.TICKETS_SQL}")
    assert _rows(c, models.CSAT_DAILY_SQL + DAILY_ORDER) == _expected(
        reference.csat_daily(reference.tickets(events))
    )


@pytest.mark.parametrize("q", [0.0, 0.1, 0.5, 0.9, 0.99, 1.0])
def test_quantile_cont_matches_duckdb_bit_for_bit(q: float) -> None:
    rng = random.Random(int(q * 100))
    c = duckdb.connect()
    for _ in range(150):
        values = [rng.randint(0, 10**10) / 1e6 for _ in range(rng.randint(1, 60))]
        want = c.execute(
            "SELECT quantile_cont(x, ?) FROM (SELECT unnest(?::DOUBLE[]) AS x)", [q, values]
        ).fetchone()
        assert want is not None
        assert reference.quantile_cont(values, q) == want[0]
    assert reference.quantile_cont([], q) is None


def test_round_half_away_matches_duckdb() -> None:
    c = duckdb.connect()
    for good in range(0, 120, 7):
        for rated in range(max(good, 1), 400, 3):
            x = 100 * float(good) / rated
            row = c.execute("SELECT round(?::DOUBLE, 2)", [x]).fetchone()
            assert row is not None
            assert reference.round_half_away(x, 2) == row[0]
    edge = c.execute("SELECT round(2.675::DOUBLE, 2), round(-0.125::DOUBLE, 2)").fetchone()
    assert edge == (reference.round_half_away(2.675, 2), reference.round_half_away(-0.125, 2))


def test_models_declaration() -> None:
    declared = models.models()
    by_name = {m.name: m for m in declared}
    assert by_name["support.tickets"].incremental_by == ("ticket_id",)
    assert by_name["support.csat_daily"].unique_key == ("day", "team", "product")
    assert by_name["support.csat_daily"].upstream == ("support.tickets",)

"""``billing.charges_hourly``'s Arrow path (``charges_incremental``) against its definition, the
incremental SQL, on the same inputs: the same rows, or None where it hands back to the SQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from test_billing_models import SPECS, START, materialize, sym_diff, to_arrow

from shoal.models import ScopeInputs, SliceInputs
from shoal.usecases.billing.charges import _sum_by, charges_incremental, charges_scope
from shoal.usecases.billing.events import USAGE, BillingEvent
from shoal.usecases.billing.simulator import BillingSimulator

CHARGES = SPECS["billing.charges_hourly"]
LINES = SPECS["billing.invoice_lines"]


@pytest.fixture(scope="module")
def sim_events() -> list[BillingEvent]:
    # January (caps reached at ~hour 672) plus Feb 1, so late events cross the month
    sim = BillingSimulator(seed=11, start=START, days=32, users=250, late_share=0.07, dup_share=0.012)
    return list(sim.events())


def _inputs(
    head: Sequence[BillingEvent], new: pa.Table, whole_every: int = 0
) -> tuple[duckdb.DuckDBPyConnection, SliceInputs]:
    """A connection holding the models built from ``head`` and the relations the incremental SQL
    reads for the change rows ``new``; and the same inputs for the Arrow path. ``whole_every``:
    every so many slices restate whole (NULL ``__shoal_from``)."""
    c = duckdb.connect()
    c.execute("SET TimeZone = 'America/Los_Angeles'")  # results must not depend on the session zone
    materialize(c, head, [CHARGES, LINES])
    changes = new.append_column("_change_type", pa.array(["insert"] * len(new), pa.string()))
    c.register("__shoal_changes", changes)
    whole = f"hash(resource_id) % {whole_every} = 0" if whole_every else "FALSE"
    c.execute(
        "CREATE TEMP TABLE __shoal_touched AS SELECT billing_month, resource_id, "
        f"  CASE WHEN {whole} THEN NULL ELSE min(billing_hour) END AS __shoal_from "
        "FROM __shoal_changes GROUP BY billing_month, resource_id"
    )
    c.execute(
        "CREATE TEMP TABLE __shoal_old AS SELECT * FROM billing.charges_hourly f WHERE EXISTS ("
        "SELECT 1 FROM __shoal_touched t WHERE t.billing_month = f.billing_month AND t.resource_id = "
        "f.resource_id AND (t.__shoal_from IS NULL OR f.billing_hour >= t.__shoal_from))"
    )
    schema = c.execute("SELECT * FROM billing.charges_hourly LIMIT 0").arrow().read_all().schema
    inputs = SliceInputs(
        touched=c.execute("SELECT * FROM __shoal_touched").arrow().read_all(),
        changes=changes,
        old=c.execute("SELECT * FROM __shoal_old").arrow().read_all(),
        schema=schema,
        query=lambda sql: c.execute(sql).arrow().read_all(),
    )
    return c, inputs


def _same_as_sql(c: duckdb.DuckDBPyConnection, got: pa.Table | None) -> pa.Table:
    assert got is not None, "the Arrow path handed back to the SQL"
    assert CHARGES.incremental_sql is not None
    want = c.execute(CHARGES.incremental_sql).arrow().read_all()
    assert got.schema == want.schema
    assert got.num_rows == want.num_rows
    c.register("__got", got)
    assert sym_diff(c, "SELECT * FROM __got", CHARGES.incremental_sql) == 0
    return want


def test_the_same_rows_as_the_sql_with_late_events_duplicates_and_caps(
    sim_events: list[BillingEvent],
) -> None:
    """A delivery suffix late in January: late events restate billed hours past cap crossings,
    re-sent duplicates repeat events already charged and each other."""
    cut = next(i for i, e in enumerate(sim_events) if e.billing_hour >= datetime(2026, 1, 30, tzinfo=UTC))
    head, tail = sim_events[:cut], sim_events[cut:]
    resent = tail[:: len(tail) // 40]  # duplicates within the new rows too, at later offsets
    new = to_arrow(sim_events + resent).slice(cut)
    c, inputs = _inputs(head, new, whole_every=7)
    assert inputs.old.num_rows > 0
    assert inputs.touched["__shoal_from"].null_count > 0
    want = _same_as_sql(c, charges_incremental(inputs))
    capped = c.execute("SELECT count(*) FROM __got WHERE charge < uncapped_charge").fetchone()
    assert capped is not None
    assert capped[0] > 0
    assert want.num_rows > len({e.event_id for e in tail}) // 2


def _usage(i: int, hour: int, *, price: int = 3_333_333, qty: int = 1_000_000, cap: int | None = 10_000_000,
           resource: str = "r1", event_id: str | None = None) -> BillingEvent:  # fmt: skip
    at = datetime(2026, 3, 1, tzinfo=UTC) + timedelta(hours=hour)
    return BillingEvent(
        event_id or f"e{i:03d}", USAGE, "u1", "t1", "nyc3", resource, "vm", "p", "hour", qty, price, cap,
        "USD", at + timedelta(minutes=5), at, "2026-03",
    )  # fmt: skip


def test_uncapped_resources_and_a_new_month_are_computed_here() -> None:
    head = [_usage(i, h) for i, h in enumerate([1, 2, 3])]
    new = [_usage(10, 0), _usage(11, 4, cap=None, resource="r2"), _usage(12, 5, resource="r3"), _usage(10, 0)]
    c, inputs = _inputs(head, to_arrow(head + new).slice(len(head)))
    _same_as_sql(c, charges_incremental(inputs))


def test_an_empty_change_set_gives_no_rows() -> None:
    head = [_usage(i, h) for i, h in enumerate([1, 2])]
    c, inputs = _inputs(head, to_arrow(head).slice(0, 0))
    assert _same_as_sql(c, charges_incremental(inputs)).num_rows == 0


@pytest.mark.parametrize(
    ("event", "why"),
    [
        (_usage(20, 6, price=-1), "a negative price"),
        (_usage(21, 6, qty=-5), "a negative quantity"),
        (_usage(22, 6, price=4_000_000_000, qty=4_000_000_000), "a product past int64"),
        (_usage(23, 6, cap=-1), "a negative cap"),
    ],
)
def test_inputs_it_does_not_compute_exactly_go_to_the_sql(event: BillingEvent, why: str) -> None:
    head = [_usage(i, h) for i, h in enumerate([1, 2])]
    _c, inputs = _inputs(head, to_arrow([*head, event]).slice(len(head)))
    assert charges_incremental(inputs) is None, why


def test_a_null_price_or_event_id_goes_to_the_sql() -> None:
    head = [_usage(i, h) for i, h in enumerate([1, 2])]
    new = to_arrow([*head, _usage(30, 6)]).slice(len(head))
    for column in ("hourly_price_micros", "event_id", "billing_hour"):
        i = new.schema.get_field_index(column)
        nulled = new.set_column(i, column, pa.nulls(new.num_rows, new.schema.field(column).type))
        _, inputs = _inputs(head, nulled)
        assert charges_incremental(inputs) is None, column


def test_sums_by_slice_stay_exact_past_float_precision() -> None:
    big = (1 << 53) + 1  # not a float64: a float sum would round it
    values = np.array([big, 1, 2, big], dtype=np.int64)
    assert _sum_by(np.array([0, 1, 1, 2]), values, 3).tolist() == [big, 3, big]
    assert _sum_by(np.array([0, 0]), np.array([5, 7], dtype=np.int64), 2).tolist() == [12, 0]


# -- restate_scope (ADR 0055): which slices a refresh may leave unread --------------------------------
def _scope_inputs(c: duckdb.DuckDBPyConnection, inputs: SliceInputs) -> ScopeInputs:
    """What the runner hands ``charges_scope``: every touched slice as a candidate with its least
    cap among the charged rows, and the change rows less those whose event id is charged already
    (the runner drops them, ``dedupe_by``)."""
    lows = (
        c.execute(
            "SELECT t.billing_month, t.resource_id, t.__shoal_from, min(f.monthly_cap) AS monthly_cap "
            "FROM __shoal_touched t LEFT JOIN billing.charges_hourly f USING (billing_month, resource_id) "
            "GROUP BY ALL"
        )
        .arrow()
        .read_all()
    )
    assert inputs.changes is not None
    charged = pa.array([r[0] for r in c.execute("SELECT event_id FROM billing.charges_hourly").fetchall()])
    fresh = inputs.changes.filter(pc.invert(pc.is_in(inputs.changes["event_id"], value_set=charged)))
    return ScopeInputs(lows, fresh, inputs.query)


def _first_at(events: Sequence[BillingEvent], at: datetime) -> int:
    return next(i for i, e in enumerate(events) if e.occurred_at >= at)


def _writes(
    c: duckdb.DuckDBPyConnection, kept: pa.Table | None, changes: pa.Table
) -> tuple[set[tuple], set[tuple]]:
    """(rows the refresh writes, keys it deletes) from ``changes`` with ``__shoal_old`` read for
    ``kept`` only (all touched slices when None): what the runner commits."""
    assert CHARGES.incremental_sql is not None
    c.register("__shoal_changes", changes)
    if kept is not None:
        c.register("__kept", kept)
        c.execute(
            "CREATE OR REPLACE TEMP TABLE __shoal_old AS SELECT o.* FROM __shoal_old_all o "
            "SEMI JOIN __kept k USING (billing_month, resource_id)"
        )
    else:
        c.execute("CREATE OR REPLACE TEMP TABLE __shoal_old AS SELECT * FROM __shoal_old_all")
    new = f"({CHARGES.incremental_sql})"
    changed = set(c.execute(f"SELECT * FROM {new} EXCEPT SELECT * FROM __shoal_old").fetchall())
    key = "billing_month, resource_id, billing_hour, event_id"
    stale = set(c.execute(f"SELECT {key} FROM __shoal_old EXCEPT SELECT {key} FROM {new}").fetchall())
    return changed, stale


def test_the_slices_it_leaves_unread_change_nothing_but_their_new_rows(
    sim_events: list[BillingEvent],
) -> None:
    """Deliveries through January and into February (caps are reached from ~hour 672): for every
    slice ``charges_scope`` leaves unread, with re-sent events already charged dropped, the
    refresh must write exactly what it writes reading every slice from all the changes. Most late
    slices are left unread; those whose caps the new events may cross are read."""
    left = kept_total = 0
    for day in (10, 27, 29, 31):
        cut = _first_at(sim_events, START + timedelta(days=day))
        end = _first_at(sim_events, START + timedelta(days=day, hours=6))
        c, inputs = _inputs(sim_events[:cut], to_arrow(sim_events).slice(cut, end - cut))
        assert inputs.changes is not None
        c.execute("CREATE TEMP TABLE __shoal_old_all AS SELECT * FROM __shoal_old")
        scope = _scope_inputs(c, inputs)
        assert scope.changes.num_rows < inputs.changes.num_rows  # re-sent events were charged
        kept = charges_scope(scope)
        assert kept is not None
        assert _writes(c, kept, scope.changes) == _writes(c, None, inputs.changes), f"day {day}"
        left += inputs.touched.num_rows - kept.num_rows
        kept_total += kept.num_rows
    assert left > 0
    assert kept_total > 0


def test_what_keeps_a_slice_read() -> None:
    """One candidate slice per rule: under its caps (left out), an uncapped resource (left out), a
    total past the new event's cap, a total past a lower cap among the charged rows (a downsize),
    a NULL quantity."""
    head = [
        _usage(1, 1, resource="under"),
        _usage(2, 1, cap=None, resource="nocap"),
        _usage(3, 1, resource="crosses"),
        _usage(4, 1, cap=4_000_000, resource="downsized"),
        _usage(6, 1, resource="nullqty"),
    ]
    new = [
        _usage(11, 0, resource="under"),  # 3.33 + 3.33 <= 10
        _usage(12, 0, cap=None, resource="nocap", price=9_000_000_000, qty=1_000_000),
        _usage(13, 0, resource="crosses", price=8_000_000),  # 3.33 + 8 > 10
        _usage(14, 0, resource="downsized"),  # 3.33 + 3.33 > 4, the charged row's cap
        _usage(16, 0, resource="nullqty"),
    ]
    table = to_arrow(head + new).slice(len(head))
    i = table.schema.get_field_index("quantity_micros")
    quantities = table["quantity_micros"].to_pylist()
    quantities[-1] = None
    table = table.set_column(i, "quantity_micros", pa.array(quantities, pa.int64()))
    c, inputs = _inputs(head, table)
    c.execute("CREATE TEMP TABLE __shoal_old_all AS SELECT * FROM __shoal_old")
    kept = charges_scope(_scope_inputs(c, inputs))
    assert kept is not None
    assert sorted(kept["resource_id"].to_pylist()) == ["crosses", "downsized", "nullqty"]
    assert _writes(c, kept, inputs.changes) == _writes(c, None, inputs.changes)
    # a change other than an insert: every candidate is read
    updated = inputs.changes.set_column(
        inputs.changes.schema.get_field_index("_change_type"),
        "_change_type",
        pa.array(["update_postimage"] * inputs.changes.num_rows, pa.string()),
    )
    scope = _scope_inputs(c, inputs)
    assert charges_scope(ScopeInputs(scope.candidates, updated, scope.query)) is None

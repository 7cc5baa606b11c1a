"""Keyed sums (shoal.models.keyed): a held model's copy as numpy sums found by a hash of the key,
exact against a reference of Python Decimals, refusing (with nothing changed) what it cannot do
exactly: a hash collision, a sum beyond its type."""

from __future__ import annotations

import random
from decimal import Decimal

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from shoal.models import Model
from shoal.models.keyed import KeyedSums

MONEY = pa.decimal128(18, 6)
SCHEMA = pa.schema(
    [("month", pa.string()), ("resource", pa.string()), ("hours", pa.int64()), ("amount", MONEY)]
)
MODEL = Model(
    name="s.lines",
    sql="SELECT 1",
    unique_key=("month", "resource"),
    additive_sql="SELECT 1",
    additive=("hours", "amount"),
    additive_count="hours",
    upstream=("s.charges",),
)


def _rows(rows: list[tuple[str | None, str | None, int, Decimal]]) -> pa.Table:
    month, resource, hours, amount = (list(c) for c in zip(*rows, strict=True)) if rows else ([], [], [], [])
    return pa.table([month, resource, pa.array(hours, pa.int64()), pa.array(amount, MONEY)], schema=SCHEMA)


def _as_dict(table: pa.Table) -> dict[tuple[str | None, str | None], tuple[int, Decimal]]:
    return {(r["month"], r["resource"]): (r["hours"], r["amount"]) for r in table.to_pylist()}


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


def test_random_adds_match_a_decimal_reference_with_nulls_deletes_and_revivals(con) -> None:
    rng = random.Random(7)
    keys = [(m, r) for m in ("2026-01", "2026-02", None) for r in [*(f"r{i}" for i in range(40)), None]]
    reference: dict[tuple[str | None, str | None], tuple[int, Decimal]] = {}
    start = [(m, r, 2, Decimal("1.500001")) for m, r in keys[:30]]
    for m, r, h, a in start:
        reference[(m, r)] = (h, a)
    sums = KeyedSums.of(con, MODEL, _rows(start))
    assert sums is not None
    for _ in range(60):
        batch = []
        for m, r in rng.sample(keys, 25):
            have = reference.get((m, r), (0, Decimal(0)))[0]
            # take a key back to zero now and then (its row goes), or add to it
            hours = -have if have and rng.random() < 0.2 else rng.randint(1, 3)
            amount = Decimal(rng.randint(-(10**9), 10**12)) / Decimal(10**6)
            if hours == -have:
                amount = -reference[(m, r)][1]
            batch.append((m, r, hours, amount))
        counts = sums.add(con, _rows(batch))
        assert counts is not None
        for (m, r, h, a), count in zip(batch, counts.tolist(), strict=True):
            old_h, old_a = reference.get((m, r), (0, Decimal(0)))
            reference[(m, r)] = (old_h + h, old_a + a)
            assert count == old_h + h
        reference = {k: v for k, v in reference.items() if v[0] != 0}
        assert _as_dict(sums.table()) == reference
    # what DuckDB reads is the same table (registered as the arrangement's copy is)
    con.register("copy", sums.table())
    assert con.sql("SELECT count(*), sum(amount) FROM copy").fetchone() == (
        len(reference),
        sum((v[1] for v in reference.values()), Decimal(0)),
    )


def test_a_key_that_went_to_zero_starts_again_from_its_new_change(con) -> None:
    sums = KeyedSums.of(con, MODEL, _rows([("m", "a", 1, Decimal("2.000000"))]))
    assert sums is not None
    # hours back to 0 but an amount left over (as a non-exact upstream could leave): the row goes,
    # as a MERGE deletes it, and a later add does not inherit the amount
    assert sums.add(con, _rows([("m", "a", -1, Decimal("-1.000000"))])).tolist() == [0]  # type: ignore[union-attr]
    assert sums.table().num_rows == 0
    assert sums.add(con, _rows([("m", "a", 3, Decimal("0.250000"))])).tolist() == [3]  # type: ignore[union-attr]
    assert _as_dict(sums.table()) == {("m", "a"): (3, Decimal("0.250000"))}


def test_a_hash_collision_is_refused_and_changes_nothing(con, monkeypatch) -> None:
    sums = KeyedSums.of(con, MODEL, _rows([("m", "a", 1, Decimal(1)), ("m", "b", 1, Decimal(2))]))
    assert sums is not None
    before = sums.table()
    real = KeyedSums._hash

    def colliding(self: KeyedSums, con: duckdb.DuckDBPyConnection, rows: pa.Table) -> np.ndarray:
        hashes = real(self, con, rows)
        # "c" takes the hash of "a" (found at a's row, whose key differs), "e" the hash of "d"
        (a_hash, d_hash) = real(self, con, _rows([("m", "a", 0, Decimal(0)), ("m", "d", 0, Decimal(0))]))
        resource = np.array(rows["resource"].to_pylist())
        hashes = np.where(resource == "c", a_hash, hashes)
        return np.where(resource == "e", d_hash, hashes).astype(np.uint64)

    monkeypatch.setattr(KeyedSums, "_hash", colliding)
    assert sums.add(con, _rows([("m", "c", 1, Decimal(5)), ("m", "b", 1, Decimal(1))])) is None
    assert sums.table().equals(before)
    # two new keys of one change sharing a hash are refused too
    assert sums.add(con, _rows([("m", "d", 1, Decimal(5)), ("m", "e", 1, Decimal(1))])) is None
    assert sums.table().equals(before)


def test_a_sum_beyond_its_decimal_precision_is_refused_and_changes_nothing(con) -> None:
    big = Decimal("999999999999.000000")  # 18 digits: DECIMAL(18,6)'s largest magnitude
    sums = KeyedSums.of(con, MODEL, _rows([("m", "a", 1, big)]))
    assert sums is not None
    before = sums.table()
    assert sums.add(con, _rows([("m", "a", 1, Decimal("1.000000")), ("m", "b", 1, Decimal(1))])) is None
    assert sums.table().equals(before)


def test_only_key_and_sum_columns_of_exact_types_fit() -> None:
    assert KeyedSums.fits(MODEL, SCHEMA)
    assert not KeyedSums.fits(MODEL, SCHEMA.append(pa.field("note", pa.string())))
    assert not KeyedSums.fits(MODEL, SCHEMA.set(3, pa.field("amount", pa.float64())))
    assert not KeyedSums.fits(MODEL, SCHEMA.set(3, pa.field("amount", pa.decimal128(38, 6))))


def test_an_arrangement_keeps_keyed_sums_and_turns_them_back_into_a_temp_table(con) -> None:
    from shoal.models.arrangements import Arrangements

    con.execute("CREATE SCHEMA s")  # the model's view lives there, as a lake's namespace would
    arranged = Arrangements(lambda: con, lambda name: None)
    arranged.models = frozenset({MODEL.name})
    rows = _rows([("m", "a", 1, Decimal("1.5")), ("m", "b", 2, Decimal("2.25"))])
    arranged.replace(MODEL.name, 3, rows)
    copy = arranged.copy_table(MODEL.name)
    sums = arranged.keyed(MODEL)
    assert sums is not None
    assert arranged.is_keyed(MODEL.name)
    sums.add(con, _rows([("m", "a", -1, Decimal("-1.5")), ("m", "c", 1, Decimal("0.5"))]))
    arranged.publish(MODEL.name)
    want = [("m", "b", 2, Decimal("2.25")), ("m", "c", 1, Decimal("0.5"))]
    assert con.sql(f"SELECT * FROM {copy} ORDER BY resource").fetchall() == want
    # a refused add: from now on the copy is a temp table with the same rows, never keyed again
    arranged.unkey(MODEL.name)
    assert not arranged.is_keyed(MODEL.name)
    assert arranged.keyed(MODEL) is None
    con.execute(f"UPDATE {copy} SET hours = hours + 1 WHERE resource = 'b'")
    assert con.sql(f"SELECT hours FROM {copy} WHERE resource = 'b'").fetchone() == (3,)
    arranged.drop(MODEL.name)
    assert con.sql(
        f"SELECT count(*) FROM duckdb_tables() WHERE table_name = '{copy.strip(chr(34))}'"
    ).fetchone() == (0,)


def test_keys_handed_over_as_string_views_are_the_same_keys(con) -> None:
    sums = KeyedSums.of(con, MODEL, _rows([("m", "a", 1, Decimal(1))]))
    assert sums is not None
    change = _rows([("m", "a", 1, Decimal(2)), ("m", "b", 1, Decimal(3))])
    views = change.cast(change.schema.set(1, pa.field("resource", pa.string_view())))
    assert sums.add(con, views).tolist() == [2, 1]  # type: ignore[union-attr]
    assert _as_dict(sums.table()) == {("m", "a"): (2, Decimal(3)), ("m", "b"): (1, Decimal(3))}

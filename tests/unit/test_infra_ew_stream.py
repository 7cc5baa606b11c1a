"""The streaming detector on a compact state (EW moments): a batch after a stored state scores as the
whole history does, and the detector is online, adaptive and calibrated on synthetic series."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

from shoal.usecases.infra.ew_stream import STATE_COLUMNS, EwConfig, empty_state_sql, ew_stream_sql

DAY = 288
CFG = EwConfig(rel_floor=0.01)


def _series(days: int, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(days * DAY)
    daily = 100 + 30 * np.sin(2 * np.pi * t / DAY)
    weekly = 10 * (((t // DAY) % 7) >= 5)
    return np.asarray(daily + weekly + 0.002 * t + rng.normal(0, 1.0, len(t)))


def _run(con: duckdb.DuckDBPyConnection, source: str, state: str, cfg: EwConfig = CFG) -> pa.Table:
    return con.sql(
        f"SELECT * FROM ({ew_stream_sql(source, state, cfg)}) ORDER BY series, ts"
    ).to_arrow_table()


def _samples(values: dict[str, np.ndarray]) -> pa.Table:
    return pa.table(
        {
            "series": [k for k, v in values.items() for _ in v],
            "ts": np.concatenate([np.arange(len(v)) for v in values.values()]),
            "value": np.concatenate(list(values.values())),
        }
    )


def test_a_batch_after_the_stored_state_scores_like_the_whole_history() -> None:
    # long enough for several EW epochs of the short spans (a = 0.5: an epoch is 433 samples)
    a, b = _series(6, seed=1), _series(6, seed=2)
    b[4 * DAY :] += 25  # an alarm inside the batch
    con = duckdb.connect()
    con.register("samples", _samples({"a": a, "b": b}))
    whole = _run(con, "SELECT * FROM samples", empty_state_sql())
    con.register("whole", whole)
    cut = 3 * DAY + 17  # the state after the last sample before the cut, for each series
    state = f"SELECT series, {', '.join(STATE_COLUMNS)} FROM whole WHERE ts = {cut - 1}"
    batch = _run(con, f"SELECT * FROM samples WHERE ts >= {cut}", state)
    tail = whole.filter(pa.compute.greater_equal(whole.column("ts"), cut))
    assert batch.num_rows == tail.num_rows
    for col in ("score", "z", "baseline", *STATE_COLUMNS[1:6]):
        np.testing.assert_allclose(batch.column(col).to_numpy(), tail.column(col).to_numpy(), rtol=1e-9)
    for col in ("hot", "alarm", "n", "last_hot_n"):
        assert batch.column(col).to_pylist() == tail.column(col).to_pylist()
    assert any(batch.column("alarm").to_pylist())
    # and a prefix scored alone equals the same rows of the whole history (each score from the past)
    head = _run(con, f"SELECT * FROM samples WHERE ts < {cut}", empty_state_sql())
    first = whole.filter(pa.compute.less(whole.column("ts"), cut))
    np.testing.assert_allclose(head.column("score").to_numpy(), first.column("score").to_numpy(), rtol=1e-12)


def test_quiet_on_seasonal_drifting_noise_and_one_alarm_for_a_level_shift() -> None:
    con = duckdb.connect()
    calm = _series(14)
    shifted = _series(14)
    shift_at = 10 * DAY + 37
    shifted[shift_at:] += 40
    con.register("samples", _samples({"calm": calm, "shifted": shifted}))
    out = _run(con, "SELECT * FROM samples", empty_state_sql())
    score = out.column("score").to_numpy()
    assert ((score >= 0) & (score <= 1)).all()
    series = np.asarray(out.column("series").to_pylist())
    alarm = out.column("alarm").to_numpy(zero_copy_only=False)
    hot = out.column("hot").to_numpy(zero_copy_only=False)
    assert int(alarm[series == "calm"].sum()) <= 3  # measured: 2 in 14 days
    s_alarm, s_hot = alarm[series == "shifted"], hot[series == "shifted"]
    c_hot = hot[series == "calm"]
    after = np.flatnonzero(s_alarm[shift_at:])
    assert len(after) >= 1
    assert after[0] <= 2  # fires early
    assert int(s_alarm[shift_at : shift_at + DAY].sum()) == 1  # once for the episode
    # a day later the new level is normal: the shifted series (same noise) is hot where the calm one is
    assert (s_hot[shift_at + DAY :] == c_hot[shift_at + DAY :]).all()


def test_spans_below_two_samples_are_refused() -> None:
    with pytest.raises(ValidationError, match="baseline_steps"):
        EwConfig(baseline_steps=1)

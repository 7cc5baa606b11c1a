"""The streaming detector on a compact state: exponentially weighted moments per series (ADR 0036).

The window detector (``streaming.py``) keeps its state as the samples themselves, so an incremental
refresh rescores ``lookback_steps`` (about 4 days) per touched series. This one keeps, per series, a
handful of numbers after its last sample (``STATE_COLUMNS``): the sample count and five
exponentially weighted (EW) sums, so a refresh reads the state rows and the new samples only.

Per sample ``x`` (every statistic is of the samples *before* it, except the short mean that judges it):

1. baseline ``m`` = EW mean of the values (span ``baseline_steps``); residual ``dev = x - m``;
2. scale = sqrt of the EW mean of ``dev^2`` (span ``scale_steps``), floored like the window detector;
   ``z = |dev| / scale``, ``u = ln(1 + z)``;
3. likelihood (Numenta's, as in ``streaming.py``): the EW mean of ``u`` over ``short_steps`` (this
   sample included) against the EW mean and variance of ``u`` over ``long_steps``, through the
   logistic approximation of the normal CDF: ``score`` in [0, 1], 0 during ``warmup_steps``;
4. ``hot`` = score >= threshold; ``alarm`` = hot with no hot sample in the previous ``cooldown_steps``.

How an EW recursion runs in SQL without a recursive query: with ``r = 1 - a``, the EW sum after ``p``
new samples is ``r^p * state + a * sum_i r^(p - i) * y_i``, i.e. ``a * r^p * sum_i r^(-i) * y_i``: a
running window sum. ``r^(-i)`` would overflow on long runs, so positions are cut into epochs of ``E``
samples with ``r^E < e^-300``: an epoch starts from the previous epoch's last value and anything
older weighs less than e^-300 (below double precision). EW sums start at 0 and are divided by
``1 - r^n`` (``n`` samples seen), so early values are unbiased. The same SQL scores a whole history
(state = zeros) and a batch of new samples after a stored state; a unit test holds the two equal.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

# the state after a series' last sample: count, the five EW sums, the count at the last hot sample
STATE_COLUMNS = ("n", "ew_m", "ew_s2", "ew_mu", "ew_q", "ew_sh", "last_hot_n")
_NEG = 300.0  # epoch length: r^E < e^-300, and r^-E stays far from overflow


class EwConfig(BaseModel):
    """Spans in samples (5-minute steps in the defaults); ``a = 2 / (span + 1)`` as pandas' ``ewm``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # spans of at least 2 samples (a = 2/3 at most): an EW over one sample has no memory
    baseline_steps: int = Field(default=12, ge=2)  # 1 h
    scale_steps: int = Field(default=288, ge=2)  # 1 day
    abs_floor: float = 0.01
    rel_floor: float = 0.0
    short_steps: int = Field(default=3, ge=2)
    long_steps: int = Field(default=576, ge=2)  # 2 days
    threshold: float = 0.99
    cooldown_steps: int = 24
    warmup_steps: int = 288

    def alpha(self, span: int) -> float:
        return 2.0 / (span + 1.0)


def empty_state_sql(series_type: str = "VARCHAR") -> str:
    """A state relation with no rows: every series starts afresh (a whole history)."""
    cols = ", ".join(f"NULL::{'DOUBLE' if c.startswith('ew_') else 'BIGINT'} AS {c}" for c in STATE_COLUMNS)
    return f"SELECT NULL::{series_type} AS series, {cols} WHERE false"


def _epoch(a: float) -> int:
    return max(1, math.ceil(_NEG / -math.log1p(-a)))


def _ew(rel: str, y: str, a: float, state: str, out: str) -> str:
    """``rel`` with ``out`` = the raw EW sum of ``y`` (factor ``a``) after each row, from ``state``
    (the sum before the batch) and the batch position ``p`` (1, 2, …) per ``series``."""
    r = 1.0 - a
    e = _epoch(a)
    return f"""
        WITH e0 AS (SELECT *, (p - 1) // {e} AS ep_{out}, p - ((p - 1) // {e}) * {e} AS q_{out} FROM ({rel})),
        e1 AS (SELECT *, {a!r} * pow({r!r}, q_{out}) * sum(pow({r!r}, -q_{out}) * {y}) OVER (
                   PARTITION BY series, ep_{out} ORDER BY p ROWS UNBOUNDED PRECEDING) AS in_{out}
               FROM e0)
        SELECT * EXCLUDE (ep_{out}, q_{out}, in_{out}),
               in_{out} + pow({r!r}, q_{out}) * CASE WHEN ep_{out} = 0 THEN {state}
                   ELSE lag(in_{out}, q_{out}) OVER (PARTITION BY series ORDER BY p) END AS {out}
        FROM e1
    """


def _unbias(raw: str, a: float, n: str) -> str:
    return f"CASE WHEN {n} > 0 THEN {raw} / (1 - pow({1.0 - a!r}, {n})) END"


def ew_stream_sql(source: str, state: str, cfg: EwConfig) -> str:
    """``source`` (series, ts, value): the samples to score, after those ``state`` summarises;
    ``state`` (series, STATE_COLUMNS…) has at most one row per series (none: a new series).
    Returns per sample ``series, ts, value, baseline, dev, z, score, hot, alarm`` and the state after
    it (``STATE_COLUMNS``)."""
    am, a2 = cfg.alpha(cfg.baseline_steps), cfg.alpha(cfg.scale_steps)
    al, ash = cfg.alpha(cfg.long_steps), cfg.alpha(cfg.short_steps)
    base = """
        SELECT s.series, s.ts, s.value,
               row_number() OVER (PARTITION BY s.series ORDER BY s.ts) AS p,
               coalesce(st.n, 0) AS n0, coalesce(st.ew_m, 0.0) AS m0, coalesce(st.ew_s2, 0.0) AS s20,
               coalesce(st.ew_mu, 0.0) AS mu0, coalesce(st.ew_q, 0.0) AS q0,
               coalesce(st.ew_sh, 0.0) AS sh0, st.last_hot_n AS hot0
        FROM __ew_src AS s LEFT JOIN __ew_state AS st ON st.series = s.series"""
    with_n = f"SELECT *, n0 + p AS n FROM ({base})"
    m = _ew(with_n, "value", am, "m0", "ew_m")
    # the baseline of the samples before: the previous row's, or the stored state's (none at first)
    prev = "coalesce(lag({}) OVER (PARTITION BY series ORDER BY p), {})"
    with_dev = f"""
        SELECT *, value - baseline AS dev
        FROM (SELECT *, {prev.format(_unbias("ew_m", am, "n"), _unbias("m0", am, "n0"))} AS baseline
              FROM ({m}))"""
    # the scale's EW counts residuals: one fewer than samples (the first sample has none)
    s2 = _ew(f"SELECT *, coalesce(dev * dev, 0.0) AS dev2 FROM ({with_dev})", "dev2", a2, "s20", "ew_s2")
    scored = f"""
        SELECT *, CASE WHEN prev_s2 IS NULL THEN 0.0
                       ELSE abs(dev) / greatest(sqrt(prev_s2), {cfg.abs_floor},
                                                {cfg.rel_floor} * abs(baseline)) END AS z
        FROM (SELECT *, {prev.format(_unbias("ew_s2", a2, "n - 1"), _unbias("s20", a2, "n0 - 1"))} AS prev_s2
              FROM ({s2}))"""
    with_u = f"SELECT *, ln(1 + z) AS u, ln(1 + z) * ln(1 + z) AS u2 FROM ({scored})"
    mu = _ew(with_u, "u", al, "mu0", "ew_mu")
    q = _ew(mu, "u2", al, "q0", "ew_q")
    sh = _ew(q, "u", ash, "sh0", "ew_sh")
    like = f"""
        SELECT *, CASE WHEN n > {cfg.warmup_steps} THEN
                      1 / (1 + exp(-1.702 * ({_unbias("ew_sh", ash, "n")} - prev_mu)
                                   / greatest(sqrt(greatest(prev_q - prev_mu * prev_mu, 0)), 1e-3)))
                  ELSE 0 END AS score
        FROM (
            SELECT *, {prev.format(_unbias("ew_mu", al, "n"), _unbias("mu0", al, "n0"))} AS prev_mu,
                      {prev.format(_unbias("ew_q", al, "n"), _unbias("q0", al, "n0"))} AS prev_q
            FROM ({sh}))"""
    hot = f"SELECT *, score >= {cfg.threshold} AS hot FROM ({like})"
    # the inputs materialised once, at the top: with a joined source inside the stacked windows
    # DuckDB's planner took minutes instead of a second on a 4-day fleet
    return f"""
        WITH __ew_src AS MATERIALIZED ({source}), __ew_state AS MATERIALIZED ({state})
        SELECT series, ts, value, baseline, dev, z, score, hot,
               hot AND coalesce(n - prev_hot > {cfg.cooldown_steps}, true) AS alarm,
               n, ew_m, ew_s2, ew_mu, ew_q, ew_sh,
               CASE WHEN hot THEN n ELSE prev_hot END AS last_hot_n
        FROM (
            SELECT *, coalesce(max(CASE WHEN hot THEN n END) OVER (PARTITION BY series ORDER BY p
                                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), hot0) AS prev_hot
            FROM ({hot}))
    """

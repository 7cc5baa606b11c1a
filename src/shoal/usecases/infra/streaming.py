"""The streaming detector: per series, online, adaptive, a calibrated score and one alarm per episode.

Every statistic is a trailing window that ends *before* the sample it judges, so each score uses only
the past and the detector adapts as the windows roll (no fit, no retraining; see ADR 0014):

1. residual ``dev`` = value - median of the previous ``baseline_steps`` samples. The short median
   follows daily/weekly profiles and slow drift, and after a level shift it catches up within
   ``baseline_steps / 2`` samples, so a shift raises one short episode, not alarms forever;
2. raw score ``z`` = the larger of |dev| / robust scale (1.4826 x the median |dev| over the previous
   ``scale_steps`` samples) and, with ``level_score``, the sample's distance to the median of the
   previous ``scale_steps`` samples over its robust spread (a sustained change stays visible for up to
   a day before the window absorbs it); scales are floored at ``abs_floor`` and ``rel_floor`` x the
   level (flat and quantised series);
3. likelihood (after Numenta's anomaly likelihood, Ahmad et al. 2017): ``u = ln(1 + z)``; the mean of
   ``u`` over the last ``short_steps`` samples is compared with the mean and standard deviation of
   ``u`` over the previous ``long_steps`` samples; ``score`` = Phi(that standardised difference), in
   [0, 1] (Phi by the logistic approximation 1 / (1 + exp(-1.702 x)), error < 0.01). It is calibrated
   per series by construction: the reference distribution is the series' own recent past;
4. a sample is *hot* when ``score >= threshold``; an *alarm* is a hot sample with no hot sample in
   the previous ``cooldown_steps`` samples, so an episode raises one alarm at its start.

The first ``warmup_steps`` samples of a series score 0 (not enough past to judge).

The SQL reads a relation ``(series, ts, value)`` and returns ``(series, ts, value, baseline, dev, z,
score, hot, alarm)``; the same SQL serves ``infra evaluate`` on ASD, the model in the lake and the
benchmark. :func:`likelihood_sql` alone serves series whose raw scores are combined first (ASD's
per-server score is the mean of the top 3 per-metric ``z``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StreamConfig(BaseModel):
    """Window lengths in samples (5-minute steps in the defaults); fixed for every series."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    baseline_steps: int = 12  # 1 h
    scale_steps: int = 288  # 1 day
    abs_floor: float = 0.01
    rel_floor: float = 0.0
    short_steps: int = 3  # 15 min
    long_steps: int = 576  # 2 days (a week scored the same on the dev servers, with 2.2x the lookback)
    threshold: float = 0.99
    cooldown_steps: int = 24  # 2 h
    warmup_steps: int = 288
    level_score: bool = True
    level_steps: int = 288  # 1 day

    @property
    def lookback_steps(self) -> int:
        """Samples before a new one that its alarm depends on (an incremental refresh reads these):
        the raw score reaches back ``max(baseline + scale, 2 x scale)`` (the level's spread is taken
        over level medians), the likelihood ``long_steps`` raw scores more, the alarm ``cooldown_steps``."""
        raw = max(self.baseline_steps + self.scale_steps, 2 * self.level_steps)
        return raw + max(self.long_steps, self.short_steps - 1) + self.cooldown_steps


def raw_score_sql(source: str, cfg: StreamConfig) -> str:
    """``(series, ts, value)`` → ``(series, ts, value, baseline, dev, z, n)``; ``n`` counts samples."""
    level_weight = 1.0 if cfg.level_score else 0.0
    return f"""
        WITH b AS (
            SELECT series, ts, value,
                   median(value) OVER (PARTITION BY series ORDER BY ts
                       ROWS BETWEEN {cfg.baseline_steps} PRECEDING AND 1 PRECEDING) AS baseline,
                   row_number() OVER (PARTITION BY series ORDER BY ts) AS n
            FROM ({source})),
        r AS (SELECT *, value - baseline AS dev FROM b),
        m AS (SELECT *,
                  median(abs(dev)) OVER (PARTITION BY series ORDER BY ts
                      ROWS BETWEEN {cfg.scale_steps} PRECEDING AND 1 PRECEDING) AS mad,
                  median(value) OVER (PARTITION BY series ORDER BY ts
                      ROWS BETWEEN {cfg.level_steps} PRECEDING AND 1 PRECEDING) AS level
              FROM r),
        l AS (SELECT *, median(abs(value - level)) OVER (PARTITION BY series ORDER BY ts
                  ROWS BETWEEN {cfg.level_steps} PRECEDING AND 1 PRECEDING) AS level_mad
              FROM m)
        SELECT series, ts, value, baseline, dev, n,
               coalesce(greatest(
                   abs(dev) / greatest(1.4826 * mad, {cfg.abs_floor}, {cfg.rel_floor} * abs(baseline)),
                   {level_weight} * abs(value - level)
                       / greatest(1.4826 * level_mad, {cfg.abs_floor}, {cfg.rel_floor} * abs(level))), 0) AS z
        FROM l
    """


def likelihood_sql(source: str, cfg: StreamConfig, extra: str = "") -> str:
    """``(series, ts, z, n[, extra columns])`` → adds ``score``, ``hot``, ``alarm``."""
    keep = f", {extra}" if extra else ""
    return f"""
        WITH u AS (SELECT series, ts, z, n{keep}, ln(1 + z) AS u FROM ({source})),
        s AS (
            SELECT *,
                   avg(u) OVER (PARTITION BY series ORDER BY ts
                       ROWS BETWEEN {cfg.short_steps - 1} PRECEDING AND CURRENT ROW) AS short_u,
                   avg(u) OVER (PARTITION BY series ORDER BY ts
                       ROWS BETWEEN {cfg.long_steps} PRECEDING AND 1 PRECEDING) AS mean_u,
                   stddev_samp(u) OVER (PARTITION BY series ORDER BY ts
                       ROWS BETWEEN {cfg.long_steps} PRECEDING AND 1 PRECEDING) AS sd_u
            FROM u),
        c AS (
            SELECT *, CASE WHEN n > {cfg.warmup_steps}
                           THEN 1 / (1 + exp(-1.702 * (short_u - mean_u) / greatest(sd_u, 1e-3)))
                           ELSE 0 END AS score
            FROM s),
        h AS (SELECT *, score >= {cfg.threshold} AS hot FROM c)
        SELECT * EXCLUDE (u, short_u, mean_u, sd_u),
               hot AND coalesce(max(hot::INT) OVER (PARTITION BY series ORDER BY ts
                   ROWS BETWEEN {cfg.cooldown_steps} PRECEDING AND 1 PRECEDING), 0) = 0 AS alarm
        FROM h
    """


def stream_sql(source: str, cfg: StreamConfig) -> str:
    """The whole detector for independent series: ``(series, ts, value)`` → scores and alarms."""
    return likelihood_sql(raw_score_sql(source, cfg), cfg, extra="value, baseline, dev")

"""``infra.stream_ew``: the compact-state streaming detector (``ew_stream.py``) in the model runner.

The table holds, per PDU power/current series, every *hot* sample (score over the threshold, with
``alarm`` where an episode opens), every *warm* one (score from ``PARTNER_SCORE``, under the
threshold: what the host rule of :func:`ew_episodes_sql` reads from a partner) and one **state
row**: ``is_state``, at ``ts = STATE_TS`` (a fixed far-future instant, so it always lies in the slice
a refresh restates), with the series' last sample time (``last_ts``) and its EW state
(``ew_stream.STATE_COLUMNS``). A refresh is incremental per series
from the first new sample (``restate_from = ts``): it reads the touched series' state rows (in
``__shoal_old``, which the runner reads anyway) and the new samples from the upstream's change feed
(``__shoal_changes``), so its work follows the samples that landed, not the history (ADR 0036).

A series whose new samples are not all later than its state (a late or rewritten sample), or that
has no state yet, is rescored from its first sample: the result is always the full SQL's.
"""

from __future__ import annotations

import pyarrow as pa

from shoal.models import Model
from shoal.usecases.infra.anomalies import ANOMALY_SCHEMA, ENTITY_SQL, LEVEL_SQL, runs_sql, windows_sql
from shoal.usecases.infra.ew_stream import STATE_COLUMNS, EwConfig, empty_state_sql, ew_stream_sql
from shoal.usecases.infra.power import SqlConnection

STREAM_EW = "infra.stream_ew"
STREAM_METRICS = ("pdu_outlet_power_watts", "pdu_phase_current_amperes")
STEP_MINUTES = 5
STATE_TS = "TIMESTAMPTZ '9999-12-31 00:00:00+00'"
# power and current: the scale never below 3 % of the level (idle and quantised outlets), as the
# window detector's fleet configuration
FLEET_EW = EwConfig(abs_floor=1e-6, rel_floor=0.03)
# the host rule asks whether the partner series shows an episode it already knows happened: that
# needs less evidence than raising one, so a partner "shows it" from this likelihood on (one fixed
# level for every series, under the threshold). The table keeps these warm samples beside the hot ones
# (on the demo fleet 1.6 % of scored samples against 0.3 % hot: 5.7x the rows, still a small table)
PARTNER_SCORE = 0.95

_METRICS = ", ".join(f"'{m}'" for m in STREAM_METRICS)
_STATE_NULLS = ", ".join(
    f"NULL::{'DOUBLE' if c.startswith('ew_') else 'BIGINT'} AS {c}" for c in STATE_COLUMNS
)
_STATE_OUT = ", ".join(f"l.{c}" for c in STATE_COLUMNS)


def _output(detector: str, scope: str = "") -> str:
    """Hot samples and one state row per series from the detector's rows."""
    return f"""
        WITH x AS MATERIALIZED ({detector}),
        last AS (SELECT * FROM x QUALIFY row_number() OVER (PARTITION BY series ORDER BY ts DESC) = 1)
        SELECT x.series AS series_id, x.ts, {ENTITY_SQL} AS entity, {LEVEL_SQL} AS level, se.metric,
               x.value, x.baseline, x.dev AS deviation, x.z, x.score, x.alarm,
               false AS is_state, NULL::TIMESTAMPTZ AS last_ts, {_STATE_NULLS}
        FROM x JOIN metrics.series AS se ON se.series_id = x.series
        WHERE x.score >= {PARTNER_SCORE}{scope}
        UNION ALL
        SELECT l.series AS series_id, {STATE_TS} AS ts, {ENTITY_SQL} AS entity, {LEVEL_SQL} AS level,
               se.metric, l.value, l.baseline, l.dev AS deviation, l.z, l.score, false AS alarm,
               true AS is_state, l.ts AS last_ts, {_STATE_OUT}
        FROM last AS l JOIN metrics.series AS se ON se.series_id = l.series
    """


def stream_ew_sql(cfg: EwConfig = FLEET_EW) -> str:
    source = f"""
        SELECT sa.series_id AS series, sa.ts, sa.value
        FROM metrics.samples AS sa JOIN metrics.series AS se USING (series_id)
        WHERE se.metric IN ({_METRICS})"""
    return _output(ew_stream_sql(source, empty_state_sql("BIGINT"), cfg))


def stream_ew_incremental_sql(cfg: EwConfig = FLEET_EW) -> str:
    # per touched series: continue from its state when every change is a new sample after it
    plan = f"""
        SELECT t.series_id, t.__shoal_from,
               st.series_id IS NOT NULL AND t.__shoal_from IS NOT NULL AND t.__shoal_from > st.last_ts
               AND NOT EXISTS (SELECT 1 FROM __shoal_changes AS c
                               WHERE c.series_id = t.series_id AND c._change_type <> 'insert') AS cont
        FROM __shoal_touched AS t
        JOIN metrics.series AS se ON se.series_id = t.series_id AND se.metric IN ({_METRICS})
        LEFT JOIN (SELECT * FROM __shoal_old WHERE is_state) AS st ON st.series_id = t.series_id"""
    source = f"""
        SELECT c.series_id AS series, c.ts, c.value
        FROM __shoal_changes AS c JOIN ({plan}) AS p ON p.series_id = c.series_id AND p.cont
        UNION ALL
        SELECT sa.series_id AS series, sa.ts, sa.value
        FROM metrics.samples AS sa JOIN ({plan}) AS p ON p.series_id = sa.series_id AND NOT p.cont"""
    state = f"""
        SELECT o.series_id AS series, {", ".join(f"o.{c}" for c in STATE_COLUMNS)}
        FROM __shoal_old AS o JOIN ({plan}) AS p ON p.series_id = o.series_id AND p.cont
        WHERE o.is_state"""
    scope = """
          AND x.ts >= coalesce((SELECT __shoal_from FROM __shoal_touched AS t
                                WHERE t.series_id = x.series), x.ts)"""
    return _output(ew_stream_sql(source, state, cfg), scope)


def ew_models() -> list[Model]:
    return [
        Model(
            name=STREAM_EW,
            sql=stream_ew_sql(),
            unique_key=("series_id", "ts"),
            incremental_by=("series_id",),
            restate_from="ts",
            incremental_sql=stream_ew_incremental_sql(),
            upstream=("metrics.samples",),
            description="Streaming detector on a compact state (EW moments; ADR 0036): every PDU "
            "power/current sample whose likelihood is over the threshold, whether it opened an episode "
            "(alarm), and per series one state row (is_state) that the next refresh continues from",
            owner="infra",
        )
    ]


# the series that sees the same load through the other feed: a host's PSU on the other PDU (outlets),
# the same phase on the rack's other PDU (phases)
PARTNER_SQL = """CASE
    WHEN se.metric LIKE 'pdu_outlet_%' THEN se.labels['host']
    WHEN se.metric LIKE 'pdu_phase_%' THEN se.labels['rack'] || '/' || se.labels['phase'] END"""
# two episodes are one event when they overlap within this many steps (alarm times differ by noise)
PARTNER_SLACK_STEPS = 3


def _windows(runs: str) -> str:
    return f"""
        SELECT series_id, grp, any_value(metric) AS metric, any_value(partner) AS partner,
               any_value(rack) AS rack, epoch_ms(min(ts)) AS s, epoch_ms(max(ts)) AS e,
               arg_min(deviation, ts) AS dev0
        FROM ({runs}) GROUP BY series_id, grp"""


def ew_episodes(con: SqlConnection, cfg: EwConfig = FLEET_EW, hosts: bool = True) -> pa.Table:
    """``infra.stream_ew``'s hot samples as anomaly windows (detector ``stream_ew``): see
    :func:`ew_episodes_sql`, which the runner model ``infra.anomalies`` runs."""
    tbl: pa.Table = con.sql(ew_episodes_sql(cfg, hosts)).to_arrow_table()
    return tbl.cast(ANOMALY_SCHEMA)


def ew_episodes_sql(cfg: EwConfig = FLEET_EW, hosts: bool = True) -> str:
    """``infra.stream_ew``'s hot samples as anomaly windows (detector ``stream_ew``): hot samples of a
    series less than ``cooldown_steps`` apart form one episode.

    With ``hosts``, an episode that only one host shows is left out: its partner series shows it too
    (the host's other PSU, or the same phase on the rack's other PDU) and no other host or phase of
    the rack does. Both feeds of one host moving together is the host's load changing (a reboot, a
    migration), not a fault of a feed; a rack-wide change (many hosts at once) stays. The temporal
    batch detector had the partner half of this rule. It is applied here, on the stored samples, so
    it holds whichever refresh brought each partner's samples (docs/benchmarks.md, issue 16).

    The partner shows an episode when one of its hot episodes overlaps it, or when it has a *warm*
    sample (score >= ``PARTNER_SCORE``) deviating the same way at the episode's onset (± the slack):
    on mixed-workload fleets a nightly-batch host's ramp took one feed over the threshold while the
    other peaked at 0.98-0.99, and the rule kept a load change as a feed fault (sixth session). The
    change is the rack's when another host's hot episode overlaps it (as before) or when at least two
    other hosts have a warm sample moving the same way at its onset: with the partner's warm samples
    alone, a rack draw seen hot on one feed only (its partner and the other hosts warm) was dropped."""
    step_ms = STEP_MINUTES * 60_000
    cols = "entity, level, metric, ts, value, baseline, deviation AS dev, z"
    hot = f"NOT is_state AND score >= {cfg.threshold}"
    if not hosts:
        flagged = f"SELECT {cols} FROM {STREAM_EW} WHERE {hot}"
        return windows_sql("stream_ew", flagged, step_ms=step_ms, gap=cfg.cooldown_steps)
    slack, gap = PARTNER_SLACK_STEPS * step_ms, cfg.cooldown_steps * step_ms
    flagged = f"""
        WITH h AS (
            SELECT x.series_id, x.entity, x.level, x.metric, x.ts, x.value, x.baseline, x.deviation, x.z,
                   x.score >= {cfg.threshold} AS hot, {PARTNER_SQL} AS partner, se.labels['rack'] AS rack
            FROM {STREAM_EW} AS x JOIN metrics.series AS se USING (series_id)
            WHERE NOT x.is_state AND x.score >= {PARTNER_SCORE}),
        g AS ({runs_sql("SELECT * FROM h WHERE hot", "series_id", gap)}),
        w AS ({_windows("SELECT * FROM g")}),
        -- the partner shows the episode: one of its hot episodes overlaps it, or at the episode's
        -- onset (± slack) it has a warm sample moving the same way. The onset, not anywhere in the
        -- episode: 1.6 % of samples are warm or hot (demo fleet; 0.3 % hot), about one in 5 hours
        -- per series, so a long episode of one feed would often hold one of the partner's by chance
        shows AS (SELECT a.series_id, a.grp
                  FROM w AS a JOIN w AS b
                    ON b.rack = a.rack AND b.metric = a.metric AND b.partner = a.partner
                   AND b.series_id <> a.series_id AND b.s <= a.e + {slack} AND b.e >= a.s - {slack}
                  UNION
                  SELECT a.series_id, a.grp
                  FROM w AS a JOIN h AS b
                    ON b.rack = a.rack AND b.metric = a.metric AND b.partner = a.partner
                   AND b.series_id <> a.series_id AND sign(b.deviation) = sign(a.dev0)
                   AND epoch_ms(b.ts) BETWEEN a.s - {slack} AND a.s + {slack}),
        -- a change of the rack, not of the host: another host (or phase) of the rack has a hot
        -- episode overlapping it, or at least two others have a warm sample moving the same way at
        -- its onset (one is often there by chance; a rack-wide draw moves them all)
        others AS (SELECT DISTINCT a.series_id, a.grp
                   FROM w AS a JOIN w AS b
                     ON b.rack = a.rack AND b.metric = a.metric AND b.partner <> a.partner
                    AND b.s <= a.e + {slack} AND b.e >= a.s - {slack}
                   UNION
                   SELECT a.series_id, a.grp
                   FROM w AS a JOIN h AS b
                     ON b.rack = a.rack AND b.metric = a.metric AND b.partner <> a.partner
                    AND sign(b.deviation) = sign(a.dev0)
                    AND epoch_ms(b.ts) BETWEEN a.s - {slack} AND a.s + {slack}
                   GROUP BY a.series_id, a.grp HAVING count(DISTINCT b.partner) >= 2),
        host_only AS (SELECT * FROM shows EXCEPT SELECT * FROM others)
        SELECT {cols} FROM g ANTI JOIN host_only USING (series_id, grp)"""
    return windows_sql("stream_ew", flagged, step_ms=step_ms, gap=cfg.cooldown_steps)


def models() -> list[Model]:
    """For ``models:`` in shoal.yaml (``shoal.usecases.infra.ew_models``)."""
    return ew_models()

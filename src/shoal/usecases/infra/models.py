"""Infrastructure models for the runner: the streaming detector over the lake's metric samples.

``infra.stream_alarms`` holds every *hot* sample (score over the threshold) of the PDU power and
current series, with its score and whether it opened an episode (``alarm``). It is incremental per
series from the first new sample on (``restate_from = ts``): a refresh reads, for each series that got
samples, the ``StreamConfig.lookback_steps`` samples before the first new one (the state the trailing
windows need, kept in the lake as the samples themselves) and scores only the new ones, so the work
per refresh follows what landed, not the history. List ``shoal.usecases.infra.models`` under
``models:`` in shoal.yaml to keep it (and the hypervisor profiles, ``profiles.py``) up to date with
``shoal refresh`` / the watcher.

``metrics.series`` (labels, read for the entity names) is a lookup, not an upstream: a series' labels
do not change once written.
"""

from __future__ import annotations

import pyarrow as pa

from shoal.models import Model
from shoal.usecases.infra.anomalies import ENTITY_SQL, LEVEL_SQL, flagged_windows
from shoal.usecases.infra.power import SqlConnection
from shoal.usecases.infra.streaming import StreamConfig, stream_sql

STREAM_ALARMS = "infra.stream_alarms"
STREAM_METRICS = ("pdu_outlet_power_watts", "pdu_phase_current_amperes")
STEP_MINUTES = 5
# power and current: the scale is never below 3 % of the level (idle and quantised outlets), as the
# SQL temporal detector's floor
FLEET_STREAM = StreamConfig(abs_floor=1e-6, rel_floor=0.03)
# an incremental refresh prunes history older than this many steps before the first new sample;
# the exact lookback is then taken by row count (3x allows scrape gaps averaging up to 10 minutes)
_PRUNE_FACTOR = 3

_METRICS = ", ".join(f"'{m}'" for m in STREAM_METRICS)
_OUTPUT = """
SELECT x.series AS series_id, x.ts, {entity} AS entity, {level} AS level, se.metric, x.value,
       x.baseline, x.dev AS deviation, x.z, x.score, x.alarm
FROM ({detector}) AS x JOIN metrics.series AS se ON se.series_id = x.series{join}
WHERE x.hot{scope}
"""


def stream_alarms_sql(cfg: StreamConfig = FLEET_STREAM) -> str:
    source = f"""
        SELECT sa.series_id AS series, sa.ts, sa.value
        FROM metrics.samples AS sa JOIN metrics.series AS se USING (series_id)
        WHERE se.metric IN ({_METRICS})"""
    return _OUTPUT.format(
        entity=ENTITY_SQL, level=LEVEL_SQL, detector=stream_sql(source, cfg), join="", scope=""
    )


def stream_alarms_incremental_sql(cfg: StreamConfig = FLEET_STREAM) -> str:
    lookback = cfg.lookback_steps
    prune = lookback * STEP_MINUTES * _PRUNE_FACTOR
    source = f"""
        SELECT sa.series_id AS series, sa.ts, sa.value
        FROM metrics.samples AS sa
        JOIN metrics.series AS se USING (series_id)
        JOIN __shoal_touched AS t USING (series_id)
        WHERE se.metric IN ({_METRICS})
          AND (t.__shoal_from IS NULL OR sa.ts >= t.__shoal_from - INTERVAL {prune} MINUTE)
          AND sa.ts >= (SELECT min(__shoal_from) FROM __shoal_touched) - INTERVAL {prune} MINUTE
        QUALIFY t.__shoal_from IS NULL OR sa.ts >= t.__shoal_from
            OR row_number() OVER (PARTITION BY sa.series_id, sa.ts < t.__shoal_from ORDER BY sa.ts DESC)
               <= {lookback}"""
    return _OUTPUT.format(
        entity=ENTITY_SQL,
        level=LEVEL_SQL,
        detector=stream_sql(source, cfg),
        join="\nJOIN __shoal_touched AS t ON t.series_id = x.series",
        scope="\n  AND (t.__shoal_from IS NULL OR x.ts >= t.__shoal_from)",
    )


def models() -> list[Model]:
    """Every infrastructure model: the streaming detector and the hypervisor profiles."""
    from shoal.usecases.infra.profiles import models as profile_models

    return stream_models() + profile_models()


def stream_models() -> list[Model]:
    return [
        Model(
            name=STREAM_ALARMS,
            sql=stream_alarms_sql(),
            unique_key=("series_id", "ts"),
            incremental_by=("series_id",),
            restate_from="ts",
            incremental_sql=stream_alarms_incremental_sql(),
            upstream=("metrics.samples",),
            description="Streaming detector (online, adaptive; ADR 0014): every PDU power/current sample "
            "whose likelihood score is over the threshold, and whether it opened an episode (alarm)",
            owner="infra",
        )
    ]


def stream_episodes(con: SqlConnection, cfg: StreamConfig = FLEET_STREAM) -> pa.Table:
    """``infra.stream_alarms`` as anomaly windows in the ``infra.anomalies`` layout (detector ``stream``):
    hot samples of a series less than ``cooldown_steps`` apart form one window, so the streaming
    detector is scored against fault labels like the batch detectors (``evaluate.score_events``)."""
    flagged = f"SELECT entity, level, metric, ts, value, baseline, deviation AS dev, z FROM {STREAM_ALARMS}"
    return flagged_windows(con, "stream", flagged, step_ms=STEP_MINUTES * 60_000, gap=cfg.cooldown_steps)

"""Outlier mining over the lake's metric tables, in DuckDB SQL.

Detectors (each returns rows in the ``infra.anomalies`` layout; the functions here run them in batch
over a time range, ``shoal infra detect`` writes them to ``infra.anomalies_batch``, and the runner
model ``infra.anomalies`` runs the peer detectors' SQL beside the streaming one, anomaly_models.py):

- temporal: per series, robust z-score of each sample against a trailing baseline
  (median of the previous ``baseline_steps`` samples) scaled by the trailing median absolute
  residual (MAD over ``scale_steps``, floored at ``rel_floor`` x baseline); a sample whose partner
  series (the host's other PSU outlet / the same phase on the rack's other PDU) deviates as well is a
  host load change and is not flagged; consecutive flagged samples (gaps <= ``gap_steps``) form one
  anomaly window.
- rack peers: hourly rack power as a share of the podlet's median rack, relative to that rack's usual
  share at that hour of day (its seasonal median over the analysed range), less the podlet's common
  shift that hour; z-score against the spread across the podlet's racks.
- phase balance: hourly max/min phase-current ratio per PDU against the PDU's own seasonal median
  (same hour of day) and MAD.
- disk peers: daily growth of reallocated + pending sectors against disks of the same model that day.

Entity ids are rebuilt from labels exactly as the topology names them (outlet ``<pdu>/<phase>/<outlet>``,
phase ``<pdu>/<phase>``, disk ``<host>/<device>``), so anomalies can be joined to inventory and labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa

from shoal.lake import Lake
from shoal.usecases.infra.power import SqlConnection, time_filter

ANOMALIES = "infra.anomalies"  # the runner model (anomaly_models.py)
ANOMALIES_BATCH = "infra.anomalies_batch"  # what `shoal infra detect` writes
_TS = pa.timestamp("ms", tz="UTC")
ANOMALY_SCHEMA = pa.schema(
    [
        pa.field("entity", pa.string(), nullable=False),
        pa.field("level", pa.string(), nullable=False),
        pa.field("window_start", _TS, nullable=False),
        pa.field("window_end", _TS, nullable=False),
        pa.field("score", pa.float64()),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("value", pa.float64()),
        pa.field("baseline", pa.float64()),
        pa.field("deviation", pa.float64()),
        pa.field("detector", pa.string(), nullable=False),
    ]
)

# UTC buckets from epoch arithmetic: date_trunc on TIMESTAMPTZ would follow the session time zone
HOUR = "to_timestamp((epoch_ms(ts) // 3600000) * 3600)"
HOUR_SA = "to_timestamp((epoch_ms(sa.ts) // 3600000) * 3600)"
DAY = "to_timestamp((epoch_ms(ts) // 86400000) * 86400)"
ENTITY_SQL = """CASE
    WHEN se.metric LIKE 'pdu_outlet_%'
        THEN se.labels['pdu'] || '/' || se.labels['phase'] || '/' || se.labels['outlet']
    WHEN se.metric LIKE 'pdu_phase_%' THEN se.labels['pdu'] || '/' || se.labels['phase']
    WHEN se.metric LIKE 'smart_%' THEN se.labels['host'] || '/' || se.labels['device']
    WHEN se.metric LIKE 'hypervisor_%' THEN se.labels['host']
    ELSE coalesce(se.labels['instance'], se.metric) END"""
LEVEL_SQL = """CASE
    WHEN se.metric LIKE 'pdu_outlet_%' THEN 'outlet'
    WHEN se.metric LIKE 'pdu_phase_%' THEN 'phase'
    WHEN se.metric LIKE 'smart_%' THEN 'disk'
    WHEN se.metric LIKE 'hypervisor_%' THEN 'hypervisor'
    ELSE 'series' END"""


@dataclass(frozen=True)
class DetectorConfig:
    """Thresholds; defaults were chosen on a training fleet (seed 101), see evaluate.tune_threshold."""

    temporal_metrics: tuple[str, ...] = ("pdu_outlet_power_watts", "pdu_phase_current_amperes")
    baseline_steps: int = 12  # trailing median over 1 hour follows the daily profile
    scale_steps: int = 288  # residual spread over the previous day
    rel_floor: float = 0.03  # the scale is never below 3 % of the baseline (quantised / idle series)
    temporal_z: float = 8.0
    gap_steps: int = 3
    min_points: int = 2  # flagged samples an event needs (2 ignores one-sample metering glitches)
    # an outlet's partner is the same host's PSU on the other PDU; a phase's, the same phase on the other
    # PDU: if the partner moved too, the host's load changed (reboot, migration), not the feed
    partner_ratio: float = 0.5
    rack_z: float = 5.0
    rack_floor: float = 0.03
    phase_z: float = 6.0
    phase_floor: float = 0.03
    disk_z: float = 4.0
    disk_floor: float = 1.0  # sectors/day: the spread used when all peers are flat


def runs_sql(rows_sql: str, by: str, gap_ms: int) -> str:
    """``rows_sql`` numbered into runs per ``by`` (``grp``, in ``ts`` order): a new run starts after
    a gap of more than ``gap_ms`` (gaps and islands)."""
    return f"""
        SELECT *, sum(CASE WHEN prev IS NULL OR epoch_ms(ts) - epoch_ms(prev) > {gap_ms} THEN 1 ELSE 0 END)
                      OVER (PARTITION BY {by} ORDER BY ts) AS grp
        FROM (SELECT *, lag(ts) OVER (PARTITION BY {by} ORDER BY ts) AS prev FROM ({rows_sql}))"""


def _events(flagged_sql: str, step_ms: int, gap: int, min_points: int = 1) -> str:
    """Gaps-and-islands over flagged points (entity, level, metric, ts, value, baseline, dev, z)."""
    return f"""
        WITH f AS ({flagged_sql}),
        g AS ({runs_sql("SELECT * FROM f", "entity, metric", gap * step_ms)})
        SELECT entity, any_value(level) AS level, min(ts) AS window_start,
               max(ts) + to_milliseconds({step_ms}) AS window_end, max(abs(z)) AS score, metric,
               arg_max(value, abs(z)) AS value, arg_max(baseline, abs(z)) AS baseline,
               arg_max(dev, abs(z)) AS deviation
        FROM g GROUP BY entity, metric, grp HAVING count(*) >= {min_points}
    """


def temporal_anomalies(
    con: SqlConnection,
    config: DetectorConfig | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pa.Table:
    cfg = config or DetectorConfig()
    where, params = time_filter("sa.ts", since, until)
    metrics = ", ".join("'" + m.replace("'", "''") + "'" for m in cfg.temporal_metrics)
    scale = f"greatest(1.4826 * mad, {cfg.rel_floor} * abs(baseline), 1e-9)"
    flagged = f"""
        WITH s AS (
            SELECT {ENTITY_SQL} AS entity, {LEVEL_SQL} AS level, se.metric, sa.series_id, sa.ts, sa.value,
                   CASE WHEN se.metric LIKE 'pdu_outlet_%' THEN se.labels['host']
                        WHEN se.metric LIKE 'pdu_phase_%' THEN se.labels['rack'] || '/' || se.labels['phase']
                        ELSE CAST(sa.series_id AS VARCHAR) END AS partner
            FROM metrics.samples sa JOIN metrics.series se USING (series_id)
            WHERE se.metric IN ({metrics}) AND {where}),
        b AS (SELECT *,
                median(value) OVER (PARTITION BY series_id ORDER BY ts
                    ROWS BETWEEN {cfg.baseline_steps} PRECEDING AND 1 PRECEDING) AS baseline,
                row_number() OVER (PARTITION BY series_id ORDER BY ts) AS n
              FROM s),
        r AS (SELECT *, value - baseline AS dev FROM b),
        m AS (SELECT *,
                median(abs(dev)) OVER (PARTITION BY series_id ORDER BY ts
                    ROWS BETWEEN {cfg.scale_steps} PRECEDING AND 1 PRECEDING) AS mad
              FROM r),
        z AS (SELECT *, dev / {scale} AS z FROM m WHERE n > {cfg.baseline_steps * 2}),
        p AS (SELECT *, min(abs(z)) OVER (PARTITION BY metric, partner, ts) AS partner_z FROM z)
        SELECT entity, level, metric, ts, value, baseline, dev, z
        FROM p WHERE abs(z) > {cfg.temporal_z} AND partner_z < {cfg.temporal_z * cfg.partner_ratio}
    """
    return _run(
        con, "temporal", flagged, params, step_ms=300_000, gap=cfg.gap_steps, min_points=cfg.min_points
    )


# The peer detectors in two stages. Their inputs (hourly rack power, the hourly phase imbalance ratio
# per PDU, daily bad-sector growth per disk) depend on one UTC day's samples each, so the runner keeps
# them per day (``infra.peer_inputs``, anomaly_models.py) and a refresh rereads only the days samples
# landed in; the flagging compares those inputs across the whole range, which is small (a row per rack,
# PDU or disk per hour or day). The batch functions below run the same two stages over a time range.
PEER_KINDS = ("rack", "phase", "disk")
_KIND_METRICS = {
    "rack": ("pdu_outlet_power_watts",),
    "phase": ("pdu_phase_current_amperes",),
    "disk": ("smart_reallocated_sectors", "smart_pending_sectors"),
}


def peer_inputs_sql(where: str = "TRUE", kinds: tuple[str, ...] = PEER_KINDS) -> str:
    """``(kind, grp, entity, ts, day, value)`` from ``metrics.samples`` rows matching ``where`` (on
    ``sa``): ``rack`` (grp podlet, entity rack, hourly watts), ``phase`` (grp and entity the PDU, hourly
    max/min phase-current ratio), ``disk`` (grp the drive model, entity ``host/device``, daily growth of
    reallocated + pending sectors). Every row depends on the samples of its ``day`` only."""
    parts = []
    if "rack" in kinds:
        parts.append(f"""
        SELECT 'rack' AS kind, coalesce(podlet, '') AS grp, coalesce(rack, '') AS entity, hour AS ts, day,
               sum(value) / count(DISTINCT ts) AS value
        FROM (SELECT se.labels['podlet'] AS podlet, se.labels['rack'] AS rack, {HOUR_SA} AS hour, sa.day,
                     sa.ts, sa.value
              FROM metrics.samples sa JOIN metrics.series se USING (series_id)
              WHERE se.metric = 'pdu_outlet_power_watts' AND {where})
        GROUP BY podlet, rack, hour, day""")
    if "phase" in kinds:
        parts.append(f"""
        SELECT 'phase' AS kind, coalesce(pdu, '') AS grp, coalesce(pdu, '') AS entity, ts, day,
               max(amps) / nullif(min(amps), 0) AS value
        FROM (SELECT se.labels['pdu'] AS pdu, se.labels['phase'] AS phase, {HOUR_SA} AS ts, sa.day,
                     avg(sa.value) AS amps
              FROM metrics.samples sa JOIN metrics.series se USING (series_id)
              WHERE se.metric = 'pdu_phase_current_amperes' AND {where}
              GROUP BY ALL)
        GROUP BY pdu, ts, day""")
    if "disk" in kinds:
        parts.append(f"""
        SELECT 'disk' AS kind, coalesce(model, '') AS grp, entity, {DAY} AS ts, day,
               max(bad) - min(bad) AS value
        FROM (SELECT se.labels['host'] || '/' || se.labels['device'] AS entity, se.labels['model'] AS model,
                     sa.ts, sa.day, sum(sa.value) AS bad
              FROM metrics.samples sa JOIN metrics.series se USING (series_id)
              WHERE se.metric IN ('smart_reallocated_sectors', 'smart_pending_sectors') AND {where}
              GROUP BY ALL)
        GROUP BY ALL""")
    return " UNION ALL ".join(parts)


# UTC hour of day of an hourly input row
HOUR_OF_DAY = "CAST((epoch_ms(ts) // 3600000) % 24 AS INTEGER)"
# days of one hour of day a seasonal median needs: with fewer, one faulty day would move it
SEASONAL_MIN_DAYS = 3


def _seasonal(col: str, entity: str) -> str:
    """The median of ``col`` over the same UTC hour of day (``hod``) of ``entity``'s range, or over the
    whole range while fewer than ``SEASONAL_MIN_DAYS`` days hold that hour. An entity whose daily
    cycle does not cancel out (a PDU whose phases feed hosts of different workload types, a rack of
    another mix than its podlet's) would otherwise leave its daily peaks against a flat median."""
    return f"""CASE WHEN count({col}) OVER (PARTITION BY {entity}, hod) >= {SEASONAL_MIN_DAYS}
                     THEN median({col}) OVER (PARTITION BY {entity}, hod)
                     ELSE median({col}) OVER (PARTITION BY {entity}) END"""


def rack_flagged_sql(inputs: str, cfg: DetectorConfig) -> str:
    """Rack power as a share of the podlet's median rack, relative to that rack's usual share at that
    hour of day (``_seasonal``: a rack of another workload mix than its podlet's has a share with a
    daily cycle), less the podlet's median relative share that hour; z-score against the spread of
    the podlet's racks around that median.

    Centring matters on small podlets: a rack drawing 30 % more can become one of the middle racks
    the podlet median is taken from, which moves every other rack's share the same way; measured
    around zero, that common shift counted as spread and hid the fault (ADR 0014, issue 16 fifth
    session)."""
    return f"""
        WITH h AS (SELECT grp AS podlet, entity AS rack, ts, value AS watts, {HOUR_OF_DAY} AS hod
                   FROM ({inputs}) WHERE kind = 'rack'),
        sh AS (SELECT *, watts / median(watts) OVER (PARTITION BY podlet, ts) AS share FROM h),
        bs AS (SELECT *, {_seasonal("share", "rack")} AS base FROM sh),
        d0 AS (SELECT *, share / base - 1.0 AS rel0 FROM bs),
        -- the podlet's common shift that hour (its median rack moved) is no rack's own deviation
        d AS (SELECT *, rel0 - median(rel0) OVER (PARTITION BY podlet, ts) AS rel FROM d0),
        sc AS (SELECT *, greatest(1.4826 * median(abs(rel)) OVER (PARTITION BY podlet, ts), {cfg.rack_floor})
                   AS scale FROM d)
        SELECT rack AS entity, 'rack' AS level, 'rack_power_share' AS metric, ts, share AS value,
               base AS baseline, rel AS dev, rel / scale AS z
        FROM sc WHERE abs(rel / scale) > {cfg.rack_z}
    """


def phase_flagged_sql(inputs: str, cfg: DetectorConfig) -> str:
    """The hourly phase imbalance ratio of each PDU against the PDU's own median at that hour of day
    (``_seasonal``: phases feeding hosts of different workload types peak at different hours, so the
    ratio has a daily cycle) and the MAD of the deviations over the range."""
    return f"""
        WITH r AS (SELECT entity AS pdu, ts, value AS ratio, {HOUR_OF_DAY} AS hod
                   FROM ({inputs}) WHERE kind = 'phase'),
        b AS (SELECT *, {_seasonal("ratio", "pdu")} AS base FROM r),
        d AS (SELECT *, ratio - base AS dev FROM b),
        sc AS (SELECT *, greatest(1.4826 * median(abs(dev)) OVER (PARTITION BY pdu), {cfg.phase_floor} * base)
                   AS scale FROM d)
        SELECT pdu AS entity, 'pdu' AS level, 'phase_imbalance_ratio' AS metric, ts, ratio AS value,
               base AS baseline, dev, dev / scale AS z
        FROM sc WHERE abs(dev / scale) > {cfg.phase_z}
    """


def disk_flagged_sql(inputs: str, cfg: DetectorConfig) -> str:
    """A disk's daily bad-sector growth against the disks of the same model that day."""
    return f"""
        WITH d AS (SELECT entity, grp AS model, ts, value AS growth FROM ({inputs}) WHERE kind = 'disk'),
        p AS (SELECT *, median(growth) OVER (PARTITION BY model, ts) AS base FROM d),
        sc AS (SELECT *, growth - base AS dev,
                   greatest(1.4826 * median(abs(growth - base)) OVER (PARTITION BY model, ts),
                            {cfg.disk_floor})
                   AS scale FROM p)
        SELECT entity, 'disk' AS level, 'smart_bad_sector_growth' AS metric, ts, growth AS value,
               base AS baseline, dev, dev / scale AS z
        FROM sc WHERE dev / scale > {cfg.disk_z}
    """


# detector name -> (kind of input, flagging SQL, step of its buckets)
PEER_DETECTORS = {
    "rack_peers": ("rack", rack_flagged_sql, 3_600_000),
    "phase_balance": ("phase", phase_flagged_sql, 3_600_000),
    "disk_peers": ("disk", disk_flagged_sql, 86_400_000),
}


def peer_windows_sql(inputs: str, config: DetectorConfig | None = None) -> str:
    """Every peer detector's anomaly windows (with ``detector``) from a SELECT of peer inputs."""
    cfg = config or DetectorConfig()
    return " UNION ALL ".join(
        windows_sql(name, flag(inputs, cfg), step_ms=step) for name, (_, flag, step) in PEER_DETECTORS.items()
    )


def _peer(
    detector: str,
    con: SqlConnection,
    config: DetectorConfig | None,
    since: datetime | None,
    until: datetime | None,
) -> pa.Table:
    kind, flag, step_ms = PEER_DETECTORS[detector]
    where, params = time_filter("sa.ts", since, until)
    inputs = peer_inputs_sql(where, (kind,))
    return _run(con, detector, flag(inputs, config or DetectorConfig()), params, step_ms=step_ms)


def rack_peer_anomalies(
    con: SqlConnection,
    config: DetectorConfig | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pa.Table:
    return _peer("rack_peers", con, config, since, until)


def phase_anomalies(
    con: SqlConnection,
    config: DetectorConfig | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pa.Table:
    return _peer("phase_balance", con, config, since, until)


def disk_peer_anomalies(
    con: SqlConnection,
    config: DetectorConfig | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pa.Table:
    return _peer("disk_peers", con, config, since, until)


def windows_sql(detector: str, flagged_sql: str, *, step_ms: int, gap: int = 1, min_points: int = 1) -> str:
    """A detector's anomaly windows (the ``infra.anomalies`` columns) from its flagged points."""
    cols = ", ".join(ANOMALY_SCHEMA.names)
    events = _events(flagged_sql, step_ms, gap, min_points)
    return f"SELECT {cols} FROM (SELECT *, '{detector}' AS detector FROM ({events}))"


def _run(
    con: SqlConnection,
    detector: str,
    flagged_sql: str,
    params: Any,
    *,
    step_ms: int,
    gap: int = 1,
    min_points: int = 1,
) -> pa.Table:
    """Group a detector's flagged points into anomaly windows, in the anomalies schema."""
    query = windows_sql(detector, flagged_sql, step_ms=step_ms, gap=gap, min_points=min_points)
    tbl: pa.Table = con.sql(query, params=params).to_arrow_table()
    return tbl.cast(ANOMALY_SCHEMA)


def detect_all(
    con: SqlConnection,
    config: DetectorConfig | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pa.Table:
    """All detectors, concatenated and sorted by window start."""
    parts = [
        fn(con, config, since, until)
        for fn in (temporal_anomalies, rack_peer_anomalies, phase_anomalies, disk_peer_anomalies)
    ]
    return pa.concat_tables(parts).sort_by([("window_start", "ascending"), ("entity", "ascending")])


def write_anomalies(lake: Lake, anomalies: pa.Table) -> int:
    """Upsert batch detections into ``infra.anomalies_batch`` (key: entity, metric, detector,
    window_start); returns the version. ``infra.anomalies`` is the runner's model (anomaly_models.py),
    which nothing else writes (ADR 0045)."""
    table = lake.create_table(
        ANOMALIES_BATCH,
        ANOMALY_SCHEMA,
        description="Batch detections of `shoal infra detect` over a time range (temporal and peer-group "
        "detectors), one row per anomaly window",
        source="shoal.usecases.infra",
    )
    if anomalies.num_rows == 0:
        return table.version
    return table.merge(anomalies.cast(ANOMALY_SCHEMA), keys=["entity", "metric", "detector", "window_start"])

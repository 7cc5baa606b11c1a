"""``infra.anomalies`` in the model runner: the streaming detector's episodes and the peer detectors'
windows, kept fresh by ``shoal refresh`` / the watcher as samples land (issue 16, ADR 0045).

Two models, after ``infra.stream_ew`` (ew_models.py):

- ``infra.peer_inputs``: what the peer detectors compare (hourly rack power, the hourly phase imbalance
  ratio per PDU, daily bad-sector growth per disk; ``anomalies.peer_inputs_sql``). Each row depends on
  its UTC day's samples only, so the model is incremental by ``day``: a refresh rereads the days new
  samples landed in (today, as a rollup does), never the history.
- ``infra.anomalies``: rebuilt whenever an upstream moves, from small tables only: the hot samples of
  ``infra.stream_ew`` grouped into episodes (``ew_models.ew_episodes_sql``) and the peer detectors'
  flagging over ``infra.peer_inputs`` (a row per rack, PDU or disk per hour or day). The peer
  detectors compare each rack or PDU with its own median (per hour of day) over the whole range, so a
  new hour can move every window: a rebuild over the inputs is exact where a per-slice refresh would not be.

The table equals the batch computation over all samples (``ew_episodes`` plus the batch peer
functions of anomalies.py, the same SQL): ``tests/unit/test_infra_anomaly_models.py``.
"""

from __future__ import annotations

from shoal.models import Model
from shoal.sources.prometheus.tables import SAMPLES, SERIES
from shoal.usecases.infra.anomalies import ANOMALIES, peer_inputs_sql, peer_windows_sql
from shoal.usecases.infra.ew_models import STREAM_EW, ew_episodes_sql

PEER_INPUTS = "infra.peer_inputs"


def anomalies_sql() -> str:
    """The whole ``infra.anomalies`` table from ``infra.stream_ew`` and ``infra.peer_inputs``."""
    return f"""
        SELECT * FROM ({ew_episodes_sql()})
        UNION ALL
        SELECT * FROM ({peer_windows_sql(f"SELECT * FROM {PEER_INPUTS}")})"""


def anomaly_models() -> list[Model]:
    return [
        Model(
            name=PEER_INPUTS,
            sql=peer_inputs_sql(),
            unique_key=("kind", "grp", "entity", "ts"),
            incremental_by=("day",),
            # not metrics.series: a series id hashes its metric and labels and writers commit a series
            # before its samples, so a new series row never changes what a day's samples give, while
            # as an upstream (it has no day) every new series anywhere would rebuild the whole history
            upstream=(SAMPLES,),
            description="What the peer detectors compare, per UTC day: hourly rack power (kind rack: "
            "grp podlet, entity rack), hourly max/min phase-current ratio (phase: entity the PDU), daily "
            "reallocated + pending sector growth (disk: grp the drive model, entity host/device)",
            owner="infra",
        ),
        Model(
            name=ANOMALIES,
            sql=anomalies_sql(),
            unique_key=("entity", "metric", "detector", "window_start"),
            upstream=(STREAM_EW, PEER_INPUTS, SERIES),
            description="Power and disk anomaly windows: the streaming detector's episodes (stream_ew) "
            "and the rack, phase and disk peer detectors, one row per window; rebuilt from "
            "infra.stream_ew's hot samples and infra.peer_inputs as samples land",
            owner="infra",
        ),
    ]

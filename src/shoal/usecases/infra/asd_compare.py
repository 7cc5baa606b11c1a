"""ASD: the streaming detector against the fitted detector and a rolling z-score, in one run.

Protocol (named ``asd-stream-v1`` in the output): each server's rows are streamed in order (the
unlabelled ``train`` part first, then ``test``); figures are computed on the ``test`` part only.
No threshold looks at a label or at a later sample of the same series:

- ``streaming``: every metric is a series of the streaming detector on a compact state
  (``ew_stream.py``, ADR 0036; ``ASD_EW``: a 2-sample EW baseline, one configuration for every
  server); a server's score is its metrics' third-largest likelihood (three metrics must agree), hot
  over 0.99, an alarm opens an episode as in the SQL;
- ``window``: the same with the trailing-window detector (``streaming.py``, ADR 0014; ``ASD_STREAM``:
  the defaults without the level term), second-largest likelihood over 0.99. Each series of both
  calibrates its likelihood against its own past;
- ``fitted`` (the detector before issue 16, ``asd.fit``): fitted once on the train part, threshold the
  train scores' 99th percentile, never adapts;
- ``rolling_z``: |value - mean| / std over the previous 288 samples (one day), threshold the 99th
  percentile of the server's own train-part scores.

``fitted`` and ``rolling_z`` combine metrics by the mean of the top 3 per-metric scores (as before).

Alarms for ``fitted`` and ``rolling_z`` follow the same episode rule as the streaming detector (a flag
with no flag in the previous ``cooldown_steps`` steps), so event-wise and early-detection figures compare.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from shoal.usecases.infra.asd import Server, fit, load_asd
from shoal.usecases.infra.ew_stream import EwConfig, empty_state_sql, ew_stream_sql
from shoal.usecases.infra.scoring import Tally, alarm_onsets
from shoal.usecases.infra.streaming import StreamConfig, stream_sql

PROTOCOL = "asd-stream-v1"
# chosen on the dev servers omi-1..omi-4 only (docs/benchmarks.md): two metrics agreeing at 0.99
# scored 40-48 for thresholds 0.985-0.993, against 32 for the largest metric at 0.999; the level term
# (a day's median) kept slow drifts hot for hours and cost events
ASD_STREAM = StreamConfig(threshold=0.99, level_score=False)
ASD_AGREE = 2  # a server's score: its metrics' ASD_AGREE-th largest likelihood
# chosen on omi-1..omi-4 only: a 2-sample baseline (the EW detector then judges each step against the
# last few), three metrics agreeing; 62-69 there for thresholds 0.98-0.99 (two agreeing: 56-61)
ASD_EW = EwConfig(baseline_steps=2, threshold=0.99)
ASD_EW_AGREE = 3
TOP_K = 3
ROLLING_STEPS = 288
QUANTILE = 0.99


def _top_k_mean(z: np.ndarray, k: int = TOP_K) -> np.ndarray:
    k = min(k, z.shape[1])
    return np.asarray(np.mean(np.sort(z, axis=1)[:, -k:], axis=1))


def stream_scores(
    servers: list[Server], cfg: StreamConfig | EwConfig, agree: int = ASD_AGREE
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per server, over train+test: (score, hot, alarm). Each metric is a series of the streaming SQL
    (run in DuckDB); the server's score is its metrics' ``agree``-th largest, hot over
    ``cfg.threshold``, and an alarm is a hot step with no hot step in the previous ``cooldown_steps``
    (the SQL's rule)."""
    parts = []
    for srv in servers:
        values = np.concatenate([srv.train, srv.test], axis=0)
        n, m = values.shape
        parts.append(
            pa.table(
                {
                    "series": pa.array([f"{srv.name}/m{j}" for j in range(m)] * n),
                    "ts": pa.array(np.repeat(np.arange(n, dtype=np.int64), m)),
                    "value": pa.array(values.reshape(-1)),
                }
            )
        )
    samples = pa.concat_tables(parts)
    con = duckdb.connect()
    con.register("asd_samples", samples)
    source = "SELECT series, ts, value FROM asd_samples"
    if isinstance(cfg, EwConfig):
        detector = ew_stream_sql(source, empty_state_sql(), cfg)
    else:
        detector = stream_sql(source, cfg)
    tbl = con.sql(
        f"SELECT split_part(series, '/', 1) AS server, ts, "
        f"coalesce(list_sort(list(score), 'DESC')[{agree}], 0) AS score FROM ({detector}) "
        "GROUP BY ALL ORDER BY server, ts"
    ).to_arrow_table()
    con.close()
    names = np.asarray(tbl.column("server").to_pylist())
    score = tbl.column("score").to_numpy()
    result: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for srv in servers:
        s = score[names == srv.name]
        hot = s >= cfg.threshold
        result[srv.name] = (s, hot, alarm_onsets(hot, cfg.cooldown_steps))
    return result


def rolling_z_scores(values: np.ndarray, window: int = ROLLING_STEPS, floor: float = 0.01) -> np.ndarray:
    """Per step, the top-3 mean of |x - mean| / std over the previous ``window`` steps (0 before that)."""
    csum = np.concatenate([np.zeros((1, values.shape[1])), np.cumsum(values, axis=0)])
    csq = np.concatenate([np.zeros((1, values.shape[1])), np.cumsum(values**2, axis=0)])
    n = len(values)
    idx = np.arange(n)
    lo = np.maximum(idx - window, 0)
    count = (idx - lo)[:, None].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (csum[idx] - csum[lo]) / count
        var = (csq[idx] - csq[lo]) / count - mean**2
        z = np.abs(values - mean) / np.maximum(np.sqrt(np.maximum(var, 0)), floor)
    z[idx < window] = 0.0
    return _top_k_mean(np.nan_to_num(z))


def compare_on_asd(
    directory: Path, cfg: StreamConfig | None = None, servers: list[str] | None = None
) -> dict[str, Any]:
    cfg = cfg or ASD_STREAM
    data = [s for s in load_asd(directory) if not servers or s.name in servers]
    ew = stream_scores(data, ASD_EW, ASD_EW_AGREE)
    streamed = stream_scores(data, cfg)
    tallies = {"streaming": Tally(), "window": Tally(), "fitted": Tally(), "rolling_z": Tally()}
    per_server: list[dict[str, Any]] = []
    for srv in data:
        n_train = len(srv.train)
        _score, hot, alarm = streamed[srv.name]
        _ew_score, ew_hot, ew_alarm = ew[srv.name]
        det = fit(srv.train)
        fitted_flags = det.score(srv.test, history=srv.train) > det.threshold
        rz = rolling_z_scores(np.concatenate([srv.train, srv.test], axis=0))
        rz_threshold = float(np.quantile(rz[ROLLING_STEPS:n_train], QUANTILE))
        rz_flags = rz[n_train:] > rz_threshold
        runs = {
            "streaming": (ew_hot[n_train:], ew_alarm[n_train:]),
            "window": (hot[n_train:], alarm[n_train:]),
            "fitted": (fitted_flags, alarm_onsets(fitted_flags, cfg.cooldown_steps)),
            "rolling_z": (rz_flags, alarm_onsets(rz_flags, cfg.cooldown_steps)),
        }
        row: dict[str, Any] = {"server": srv.name}
        for name, (flags, alarms) in runs.items():
            tallies[name].add(srv.labels, flags, alarms, cfg.cooldown_steps)
            one = Tally()
            one.add(srv.labels, flags, alarms, cfg.cooldown_steps)
            row[name] = one.report()
        per_server.append(row)
    return {
        "protocol": PROTOCOL,
        "config": {"streaming": ASD_EW.model_dump(), "window": cfg.model_dump()},
        "overall": {name: t.report() for name, t in tallies.items()},
        "servers": per_server,
    }


def summary_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One table row per detector (overall figures), point-adjusted last."""
    rows = []
    for name, rep in result["overall"].items():
        row: dict[str, Any] = {"detector": name, "protocol": result["protocol"]}
        for kind in ("point", "event"):
            row.update({f"{kind}_{k}": v for k, v in rep[kind].items()})
        row.update(
            early_detection_score=rep["early_detection_score"],
            alarms=rep["alarms"],
            false_alarms=rep["false_alarms"],
            point_adjusted_f1=rep["point_adjusted"]["f1"],
        )
        rows.append(row)
    return rows

"""The ASD application-server dataset (12 servers, 19 metrics, 5-minute steps): loader, detector, scores.

Detector (unsupervised, fitted on each server's unlabelled ``train`` split only):
- per metric, a *level* z-score against the train median / MAD, and a *temporal* z-score of the
  residual against the trailing median of the previous ``window`` steps, scaled by the train
  residuals' MAD (floors keep flat metrics from exploding);
- per step, the score is the mean of the ``top_k`` largest per-metric max(|level z|, |temporal z|);
- the threshold is the ``quantile`` of the train scores (a contamination assumption fixed before
  looking at the test labels; the test labels are never used to pick it).

Scoring protocols (per server and overall; overall = micro average over all test points):
- ``point``: point-wise precision / recall / F1 of the thresholded predictions;
- ``point_adjust``: the usual point adjustment (a labelled segment counts as entirely detected if
  any point in it is flagged), as in the InterFusion / OmniAnomaly papers;
- ``best_f1_point_adjust``: the threshold that maximises point-adjusted F1 on the test labels — an
  *oracle* upper bound the papers report; not a deployable score.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.csv as pacsv

from shoal.errors import ConfigError, NotFoundError
from shoal.usecases.infra.evaluate import f1_score

ASD_DIR_ENV = "SHOAL_ASD_DIR"


def resolve_asd_dir(directory: Path | None = None) -> Path:
    """``directory`` if given, else ``$SHOAL_ASD_DIR``; no filesystem search (the caller says where)."""
    if directory is not None:
        return directory
    env = os.environ.get(ASD_DIR_ENV)
    if env:
        return Path(env)
    raise ConfigError(f"no ASD directory given: pass --asd-dir or set ${ASD_DIR_ENV}")


@dataclass(frozen=True)
class Server:
    name: str
    train: np.ndarray  # (n_train, n_metrics)
    test: np.ndarray  # (n_test, n_metrics)
    labels: np.ndarray  # (n_test,) bool


@dataclass(frozen=True)
class AsdDetectorConfig:
    window: int = 12
    top_k: int = 3
    quantile: float = 0.99
    floor: float = 0.01


def load_server(path: Path) -> Server:
    if not path.exists():
        raise NotFoundError(f"ASD file not found: {path}")
    with gzip.open(path, "rb") as fh:
        tbl = pacsv.read_csv(fh)
    metrics = [c for c in tbl.column_names if c.startswith("m") and c[1:].isdigit()]
    split = np.asarray(tbl.column("split").to_pylist())
    values = np.column_stack(
        [tbl.column(m).to_numpy(zero_copy_only=False).astype(np.float64) for m in metrics]
    )
    labels = tbl.column("label").to_numpy(zero_copy_only=False)
    is_test = split == "test"
    lab = np.nan_to_num(labels[is_test].astype(np.float64)) > 0
    return Server(path.name.removesuffix(".csv.gz"), values[~is_test], values[is_test], lab)


def load_asd(directory: Path) -> list[Server]:
    files = sorted(directory.glob("omi-*.csv.gz"), key=lambda p: int(p.name.split("-")[1].split(".")[0]))
    if not files:
        raise NotFoundError(f"no omi-*.csv.gz files in {directory}")
    return [load_server(p) for p in files]


def _trailing_median(x: np.ndarray, window: int) -> np.ndarray:
    padded = np.concatenate([np.repeat(x[:1], window, axis=0), x[:-1]], axis=0)
    win = np.lib.stride_tricks.sliding_window_view(padded, window, axis=0)  # (n, m, window)
    return np.asarray(np.median(win, axis=-1))


def _mad(x: np.ndarray, center: np.ndarray) -> np.ndarray:
    return np.asarray(1.4826 * np.median(np.abs(x - center), axis=0))


@dataclass(frozen=True)
class FittedDetector:
    config: AsdDetectorConfig
    median: np.ndarray
    scale: np.ndarray
    resid_scale: np.ndarray
    threshold: float

    def score(self, x: np.ndarray, history: np.ndarray | None = None) -> np.ndarray:
        """Scores of the rows of ``x``; ``history`` (the preceding rows) seeds the trailing window."""
        w = self.config.window
        full = x if history is None else np.concatenate([history[-w:], x], axis=0)
        resid = (full - _trailing_median(full, w))[len(full) - len(x) :]
        level_z = np.abs(x - self.median) / self.scale
        temp_z = np.abs(resid) / self.resid_scale
        z = np.maximum(level_z, temp_z)
        k = min(self.config.top_k, z.shape[1])
        return np.asarray(np.mean(np.sort(z, axis=1)[:, -k:], axis=1))


def fit(train: np.ndarray, config: AsdDetectorConfig | None = None) -> FittedDetector:
    cfg = config or AsdDetectorConfig()
    med = np.median(train, axis=0)
    scale = np.maximum(_mad(train, med), cfg.floor)
    resid = train - _trailing_median(train, cfg.window)
    resid_scale = np.maximum(_mad(resid, np.zeros(train.shape[1])), cfg.floor)
    det = FittedDetector(cfg, med, scale, resid_scale, np.inf)
    threshold = float(np.quantile(det.score(train), cfg.quantile))
    return FittedDetector(cfg, med, scale, resid_scale, threshold)


def point_adjust(pred: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Predictions where every labelled segment containing a flagged point is flagged entirely."""
    out = pred.copy()
    edges = np.diff(np.concatenate([[0], labels.astype(np.int8), [0]]))
    for s, e in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
        if pred[s:e].any():
            out[s:e] = True
    return out


def _counts(pred: np.ndarray, labels: np.ndarray) -> tuple[int, int, int]:
    tp = int(np.sum(pred & labels))
    return tp, int(np.sum(pred & ~labels)), int(np.sum(~pred & labels))


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f1_score(p, r), 4)}


def best_f1_point_adjust(scores: np.ndarray, labels: np.ndarray, n_thresholds: int = 200) -> dict[str, float]:
    """Oracle: the best point-adjusted F1 over score quantiles (uses the test labels)."""
    best = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "threshold": float("nan")}
    for t in np.unique(np.quantile(scores, np.linspace(0.5, 0.9995, n_thresholds))):
        res = _prf(*_counts(point_adjust(scores > t, labels), labels))
        if res["f1"] > best["f1"]:
            best = {**res, "threshold": round(float(t), 4)}
    return best


def evaluate_asd(
    directory: Path,
    config: AsdDetectorConfig | None = None,
    servers: list[str] | None = None,
) -> dict[str, Any]:
    """Fit on each server's train split, score its test split; per-server and overall results."""
    per_server: list[dict[str, Any]] = []
    tot_point = np.zeros(3, dtype=np.int64)
    tot_adj = np.zeros(3, dtype=np.int64)
    for srv in load_asd(directory):
        if servers and srv.name not in servers:
            continue
        det = fit(srv.train, config)
        scores = det.score(srv.test, history=srv.train)
        pred = scores > det.threshold
        c_point = _counts(pred, srv.labels)
        c_adj = _counts(point_adjust(pred, srv.labels), srv.labels)
        tot_point += c_point
        tot_adj += c_adj
        per_server.append(
            {
                "server": srv.name,
                "test_points": len(srv.labels),
                "anomaly_rate": round(float(srv.labels.mean()), 4),
                "threshold": round(det.threshold, 4),
                "point": _prf(*c_point),
                "point_adjust": _prf(*c_adj),
                "best_f1_point_adjust": best_f1_point_adjust(scores, srv.labels),
            }
        )
    overall = {
        "point": _prf(*(int(v) for v in tot_point)),
        "point_adjust": _prf(*(int(v) for v in tot_adj)),
        "mean_server_f1_point": round(float(np.mean([s["point"]["f1"] for s in per_server])), 4)
        if per_server
        else 0.0,
        "mean_server_f1_point_adjust": round(float(np.mean([s["point_adjust"]["f1"] for s in per_server])), 4)
        if per_server
        else 0.0,
        "mean_server_best_f1_point_adjust_oracle": round(
            float(np.mean([s["best_f1_point_adjust"]["f1"] for s in per_server])), 4
        )
        if per_server
        else 0.0,
    }
    cfg = config or AsdDetectorConfig()
    return {
        "protocol": "fit and threshold (train-score quantile) on the unlabelled train split; point-wise and "
        "point-adjusted P/R/F1 on test; overall = micro average; best_f1 = oracle threshold on test",
        "config": {"window": cfg.window, "top_k": cfg.top_k, "quantile": cfg.quantile},
        "overall": overall,
        "servers": per_server,
    }

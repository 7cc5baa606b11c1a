"""Score anomalies against the simulator's ground truth (event level).

Protocol:
- A labelled fault is *detected* if at least one anomaly window overlaps ``[start, end)`` of the
  fault (plus ``slack`` on each side, default one hour: hourly/daily detectors report whole buckets)
  on a *related* entity: the fault's own entity, an ancestor or a descendant (ids are prefix paths:
  a spike on outlet ``…-pdu-a/L1/o07`` is also seen on phase ``…-pdu-a/L1``; a rack fault on any of
  its outlets). Recall = detected faults / faults.
- An anomaly is a *true positive* if it overlaps some fault on a related entity, else a false positive.
  Precision = true-positive anomalies / anomalies. F1 from these two.
- ``strict=True`` requires the anomaly's entity to equal the fault's entity.
Faults are counted per kind too (recall per kind; precision per detector).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pyarrow as pa

from shoal.usecases.infra.topology import is_ancestor


@dataclass(frozen=True)
class Score:
    tp: int
    fp: int
    fn: int
    detected: int
    faults: int
    anomalies: int
    precision: float
    recall: float
    f1: float
    recall_by_kind: dict[str, float] = field(default_factory=dict)
    precision_by_detector: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "faults": self.faults,
            "detected": self.detected,
            "anomalies": self.anomalies,
            "true_positive_anomalies": self.tp,
            "false_positive_anomalies": self.fp,
            "missed_faults": self.fn,
            "recall_by_kind": {k: round(v, 4) for k, v in self.recall_by_kind.items()},
            "precision_by_detector": {k: round(v, 4) for k, v in self.precision_by_detector.items()},
        }


def f1_score(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def _related(a: str, b: str, strict: bool) -> bool:
    return a == b if strict else is_ancestor(a, b) or is_ancestor(b, a)


def score_events(
    anomalies: pa.Table,
    ground_truth: pa.Table,
    *,
    strict: bool = False,
    slack: timedelta = timedelta(hours=1),
) -> Score:
    """Event-level precision / recall / F1 (see module docstring for the protocol)."""
    faults = ground_truth.to_pylist()
    anoms = anomalies.to_pylist()
    # index faults by rack-ish prefix to avoid O(n*m) on big fleets: the first 4 '-' fields
    by_prefix: dict[str, list[int]] = defaultdict(list)
    for i, f in enumerate(faults):
        by_prefix[_rack_key(f["entity"])].append(i)
    detected = [False] * len(faults)
    tp = 0
    det_tp: dict[str, int] = defaultdict(int)
    det_n: dict[str, int] = defaultdict(int)
    for a in anoms:
        hit = False
        for i in by_prefix.get(_rack_key(a["entity"]), []):
            f = faults[i]
            if not _related(f["entity"], a["entity"], strict):
                continue
            if a["window_start"] < f["end"] + slack and a["window_end"] > f["start"] - slack:
                detected[i] = True
                hit = True
        tp += hit
        det = str(a.get("detector") or "all")
        det_n[det] += 1
        det_tp[det] += hit
    n_det = sum(detected)
    precision = tp / len(anoms) if anoms else 0.0
    recall = n_det / len(faults) if faults else 0.0
    kinds: dict[str, list[bool]] = defaultdict(list)
    for f, d in zip(faults, detected, strict=True):
        kinds[f["kind"]].append(d)
    return Score(
        tp=tp,
        fp=len(anoms) - tp,
        fn=len(faults) - n_det,
        detected=n_det,
        faults=len(faults),
        anomalies=len(anoms),
        precision=precision,
        recall=recall,
        f1=f1_score(precision, recall),
        recall_by_kind={k: sum(v) / len(v) for k, v in sorted(kinds.items())},
        precision_by_detector={k: det_tp[k] / det_n[k] for k in sorted(det_n)},
    )


def _rack_key(entity: str) -> str:
    # region-dc-podlet-rack: every related pair shares it (faults are at rack level or below)
    return "-".join(entity.split("/", 1)[0].split("-")[:4])

"""Detection scores for labelled series: point-wise, event-wise, point-adjusted, and an early-detection score.

Inputs per series: ``labels`` (bool per step), ``flags`` (bool per step: the detector's score is over
its threshold) and ``alarms`` (bool per step: the start of an episode, see ``streaming``).

- point-wise: precision/recall/F1 of ``flags`` against ``labels``, step by step;
- event-wise: a labelled *event* is a maximal run of labelled steps; an *episode* is a maximal run of
  flags with gaps shorter than the cooldown. Event recall = events overlapped by an episode / events;
  event precision = episodes overlapping an event / episodes;
- point-adjusted (reported only beside the others: it inflates recall, one flagged step credits the
  whole event): the usual adjustment of the InterFusion / OmniAnomaly papers;
- early-detection score, after the Numenta Anomaly Benchmark's standard profile (Lavin & Ahmad 2015):
  each event is a window; the first alarm inside it earns sigma(y) = 2 / (1 + exp(5 y)) - 1 with
  y = -(end - i) / (end - start + 1) the alarm's relative position (≈ 0.99 at the window's start,
  ≈ 0 at its end); later alarms in the window count nothing; a missed window costs 1; each alarm
  outside every window costs ``fp_weight`` = 0.11. Normalised to 100 x (S - S_null) / (S_perfect -
  S_null), where the null detector never alarms (S_null = -windows) and the perfect one alarms at
  each window's first step. Unlike NAB, the windows are the labelled events themselves (ASD labels
  whole segments) and false alarms all cost the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from shoal.usecases.infra.evaluate import f1_score

FP_WEIGHT = 0.11


def runs(mask: np.ndarray, max_gap: int = 1) -> list[tuple[int, int]]:
    """``[start, end)`` of the runs of True, joining runs separated by fewer than ``max_gap`` False steps."""
    idx = np.flatnonzero(mask)
    if not len(idx):
        return []
    breaks = np.flatnonzero(np.diff(idx) > max_gap)
    starts = np.concatenate([[idx[0]], idx[breaks + 1]])
    ends = np.concatenate([idx[breaks], [idx[-1]]]) + 1
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def point_adjust(flags: np.ndarray, labels: np.ndarray) -> np.ndarray:
    out = flags.copy()
    for s, e in runs(labels):
        if flags[s:e].any():
            out[s:e] = True
    return out


@dataclass
class Tally:
    """Counts summed over series (micro averages)."""

    point_tp: int = 0
    point_fp: int = 0
    point_fn: int = 0
    adj_tp: int = 0
    adj_fp: int = 0
    adj_fn: int = 0
    events: int = 0
    events_found: int = 0
    episodes: int = 0
    episodes_true: int = 0
    early_raw: float = 0.0
    early_perfect: float = 0.0
    alarms: int = 0
    false_alarms: int = 0

    def add(self, labels: np.ndarray, flags: np.ndarray, alarms: np.ndarray, cooldown: int) -> None:
        labels = labels.astype(bool)
        flags = flags.astype(bool)
        self.point_tp += int(np.sum(flags & labels))
        self.point_fp += int(np.sum(flags & ~labels))
        self.point_fn += int(np.sum(~flags & labels))
        adj = point_adjust(flags, labels)
        self.adj_tp += int(np.sum(adj & labels))
        self.adj_fp += int(np.sum(adj & ~labels))
        self.adj_fn += int(np.sum(~adj & labels))
        events = runs(labels)
        episodes = runs(flags, max_gap=cooldown + 1)
        self.events += len(events)
        self.episodes += len(episodes)
        self.events_found += sum(1 for s, e in events if flags[s:e].any())
        self.episodes_true += sum(1 for s, e in episodes if labels[s:e].any())
        self._early(events, np.flatnonzero(alarms), labels)

    def _early(self, events: list[tuple[int, int]], alarm_idx: np.ndarray, labels: np.ndarray) -> None:
        sigma_start = 2 / (1 + math.exp(-5.0)) - 1
        self.early_perfect += sigma_start * len(events)
        self.alarms += len(alarm_idx)
        outside = int(np.sum(~labels[alarm_idx])) if len(alarm_idx) else 0
        self.false_alarms += outside
        self.early_raw -= FP_WEIGHT * outside
        for s, e in events:
            inside = alarm_idx[(alarm_idx >= s) & (alarm_idx < e)]
            if len(inside):
                y = -(e - inside[0]) / (e - s)
                self.early_raw += 2 / (1 + math.exp(5 * y)) - 1
            else:
                self.early_raw -= 1.0

    def report(self) -> dict[str, Any]:
        null = -float(self.events)
        span = self.early_perfect - null
        return {
            "point": _prf(self.point_tp, self.point_fp, self.point_fn),
            "event": _ratio_prf(self.episodes_true, self.episodes, self.events_found, self.events),
            "early_detection_score": round(100 * (self.early_raw - null) / span, 2) if span else 0.0,
            "alarms": self.alarms,
            "false_alarms": self.false_alarms,
            "events": self.events,
            "point_adjusted": _prf(self.adj_tp, self.adj_fp, self.adj_fn),
        }


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    return _ratio_prf(tp, tp + fp, tp, tp + fn)


def _ratio_prf(p_num: int, p_den: int, r_num: int, r_den: int) -> dict[str, float]:
    p = p_num / p_den if p_den else 0.0
    r = r_num / r_den if r_den else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f1_score(p, r), 4)}


def alarm_onsets(flags: np.ndarray, cooldown: int) -> np.ndarray:
    """Flags with no flag in the previous ``cooldown`` steps: one alarm per episode (as ``streaming``)."""
    flags = flags.astype(bool)
    csum = np.concatenate([[0], np.cumsum(flags)])
    idx = np.arange(len(flags))
    prev = csum[idx] - csum[np.maximum(idx - cooldown, 0)]
    return np.asarray(flags & (prev == 0))

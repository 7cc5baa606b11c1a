"""Point, event, point-adjusted and early-detection scores on hand-made series."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shoal.usecases.infra.scoring import Tally, alarm_onsets, point_adjust, runs


def _b(bits: str) -> np.ndarray:
    return np.array([c == "1" for c in bits], dtype=bool)


def test_runs_join_short_gaps_only() -> None:
    assert runs(_b("0110001")) == [(1, 3), (6, 7)]
    assert runs(_b("0110101"), max_gap=2) == [(1, 7)]
    assert runs(_b("000")) == []


def test_point_adjust_fills_detected_segments_only() -> None:
    labels = _b("01110110")
    flags = _b("00100001")
    assert point_adjust(flags, labels).tolist() == _b("01110001").tolist()


def test_alarm_onsets_fire_once_per_episode() -> None:
    flags = _b("0111001100000110")
    assert np.flatnonzero(alarm_onsets(flags, cooldown=3)).tolist() == [1, 13]
    assert np.flatnonzero(alarm_onsets(flags, cooldown=1)).tolist() == [1, 6, 13]


def test_tally_counts_points_events_and_early_detection() -> None:
    labels = _b("00011110000000011000")
    flags = _b("00001100000100000000")
    alarms = alarm_onsets(flags, cooldown=2)
    t = Tally()
    t.add(labels, flags, alarms, cooldown=2)
    rep = t.report()
    assert rep["point"] == {"precision": round(2 / 3, 4), "recall": round(2 / 6, 4), "f1": 0.4444}
    # events: [3,7) found, [15,17) missed; episodes: [4,6) true, [11,12) false
    assert rep["event"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5}
    assert (rep["alarms"], rep["false_alarms"], rep["events"]) == (2, 1, 2)
    # early: first alarm at 4 in [3, 7): y = -(7 - 4) / 4; one false alarm; one missed window
    sigma = 2 / (1 + math.exp(5 * (-3 / 4))) - 1
    raw = sigma - 0.11 - 1.0
    perfect = 2 * (2 / (1 + math.exp(-5.0)) - 1)
    assert rep["early_detection_score"] == pytest.approx(round(100 * (raw + 2) / (perfect + 2), 2))
    assert rep["point_adjusted"]["recall"] == round(4 / 6, 4)


def test_earlier_alarm_scores_higher_and_false_alarms_cost() -> None:
    labels = _b("0000111111110000")

    def score(alarm_at: list[int]) -> float:
        alarms = np.zeros(len(labels), dtype=bool)
        alarms[alarm_at] = True
        t = Tally()
        t.add(labels, alarms, alarms, cooldown=0)
        return float(t.report()["early_detection_score"])

    assert score([4]) == pytest.approx(100.0)
    assert score([4]) > score([6]) > score([10]) > score([]) == 0.0
    assert score([4, 14]) < score([4])

"""Drive-risk feature sets compared on the same drives in one run (choices are made with ``--dev``).

    .venv/bin/python bench/drive_risk_features.py --data PATH [--dev] [--set NAME ...]

Builds the landmarks once, splits by drive as ``shoal infra drive-risk`` does (``--dev``: fit on part
of the training drives, evaluate on the dev slice, never on the held-out drives), then trains one
LightGBM model per feature set; a set is the full feature list with some groups left empty (masked):
- ``previous``: the features before the fourth session (no week growth, acceleration, bad-sector sum
  or model-relative ranks), still the model's default;
- ``growth``: ``previous`` plus the week growth, acceleration and bad-sector sum;
- ``all``: every feature (``growth`` plus the model-relative ranks).
Prints one JSON object: per set, per-landmark and per-drive AUC and precision at 50/67 % recall, the
failure-state figures and calibration, and the CPU seconds of the whole run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from shoal.usecases.infra.drive_risk import (
    EXTENDED,
    MODEL_RELATIVE,
    DriveRiskConfig,
    _all_scorers,
    _failure_state,
    _model_rates,
    _rule,
    calibration_summary,
    landmarks,
    last_landmarks,
    split,
    train,
)

SETS = {
    "previous": EXTENDED,  # the model's default (DriveRiskConfig.masked)
    "growth": frozenset(MODEL_RELATIVE),
    "all": frozenset(),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--dev", action="store_true", help="evaluate on the dev drives (for choices)")
    ap.add_argument("--set", dest="sets", action="append", choices=sorted(SETS), help="default: all sets")
    args = ap.parse_args()
    cpu0 = time.process_time()
    cfg = DriveRiskConfig()
    everything = landmarks(args.data, cfg, at_failure=True)
    final_day = everything.column("at_failure").to_numpy(zero_copy_only=False).astype(bool)
    rows = everything.filter(pa.array(~final_day))
    train_rows, test_rows = split(rows, cfg, args.dev)
    _, test_at_failure = split(everything.filter(pa.array(final_day)), cfg, args.dev)
    y = test_rows.column("label").to_numpy(zero_copy_only=False).astype(bool)
    last = last_landmarks(test_rows)
    rule, rates = _rule(test_rows), _model_rates(train_rows, test_rows)
    out: dict[str, object] = {"evaluated_on": "dev drives" if args.dev else "held-out drives"}
    for name in args.sets or list(SETS):
        model = train(train_rows, cfg, SETS[name])
        gbm = model.predict(test_rows)
        per_landmark = _all_scorers(y, gbm, rule, rates)
        per_drive = _all_scorers(y[last], gbm[last], rule[last], rates[last])
        state = _failure_state(model, train_rows, test_rows, test_at_failure)
        out[name] = {
            "per_landmark": per_landmark["gbm"],
            "per_drive": per_drive["gbm"],
            "failure_state": state["scorers"]["gbm"],
            "calibration": calibration_summary(y.astype(np.float64), gbm),
        }
        # the rule and the per-model rate do not depend on the feature set: once
        out.setdefault(
            "baselines",
            {
                protocol: {k: v for k, v in scorers.items() if k != "gbm"}
                for protocol, scorers in (
                    ("per_landmark", per_landmark),
                    ("per_drive", per_drive),
                    ("failure_state", state["scorers"]),
                )
            },
        )
    out["cpu_s"] = round(time.process_time() - cpu0, 1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

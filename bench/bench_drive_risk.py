"""Drive-risk scoring in SQL (the runner's path) against LightGBM's own predict, on the same drives.

    .venv/bin/python bench/bench_drive_risk.py [--data PATH] [--drives 2000] [--repeats 3]

Trains the drive-risk model on ``--data`` (default: the synthetic test sample; pass the Backblaze
``hds_dev.parquet`` for the real 200-tree model), takes ``--drives`` landmark rows, and scores them:
- ``sql``: ``drive_risk_sql.score_sql`` over the trees table in DuckDB (recursive walk, probability
  and the top-3 Saabas drivers), what ``infra.fleet_drive_risk`` runs on each refresh;
- baseline ``lightgbm``: ``booster.predict`` plus ``pred_contrib=True`` (TreeSHAP) in Python.
Checks that both give the same probabilities; prints one JSON object (medians of ``--repeats``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from shoal.usecases.infra.drive_risk import FEATURES, DriveRiskConfig, landmarks, train
from shoal.usecases.infra.drive_risk_sql import score_sql, tree_table

SAMPLE = Path(__file__).resolve().parents[1] / "tests" / "data" / "drive_risk" / "hds_synthetic.parquet"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=SAMPLE)
    ap.add_argument("--drives", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cfg = DriveRiskConfig()
    rows = landmarks(args.data, cfg)
    model = train(rows, cfg)
    pick = np.random.default_rng(3).choice(rows.num_rows, size=min(args.drives, rows.num_rows), replace=False)
    sample = rows.take(pa.array(np.sort(pick)))
    x = model.encoder.matrix(sample)
    ent, feat, val = [], [], []
    for i in range(len(x)):
        for j, name in enumerate(FEATURES):
            if not np.isnan(x[i, j]):
                ent.append(i)
                feat.append(name)
                val.append(float(x[i, j]))
    con = duckdb.connect()
    con.register("trees_t", tree_table(model.booster))
    con.register("feat_t", pa.table({"entity": ent, "feature": feat, "value": val}))
    query = f"SELECT * FROM ({score_sql('SELECT * FROM feat_t', trees='trees_t')}) ORDER BY entity"

    def sql() -> np.ndarray:
        return np.asarray(con.sql(query).to_arrow_table().column("p_fail_30d").to_numpy())

    def native() -> np.ndarray:
        model.booster.predict(x, pred_contrib=True)
        return np.asarray(model.booster.predict(x))

    out: dict[str, object] = {"drives": len(x), "trees": model.booster.num_trees(), "data": str(args.data)}
    for name, fn in (("sql", sql), ("lightgbm", native)):
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            p = fn()
            times.append(time.perf_counter() - t0)
        out[name] = {
            "wall_s": round(statistics.median(times), 3),
            "drives_per_s": round(len(x) / statistics.median(times)),
        }
        out[f"{name}_p"] = p
    same = np.allclose(out.pop("sql_p"), out.pop("lightgbm_p"), rtol=1e-9, atol=1e-12)  # type: ignore[call-overload]
    out["same_probabilities"] = bool(same)
    out["sql_vs_lightgbm"] = round(out["sql"]["wall_s"] / out["lightgbm"]["wall_s"], 1)  # type: ignore[index]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

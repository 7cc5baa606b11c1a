"""Writes hds_synthetic.parquet: a small *synthetic* SMART history in the Backblaze ``hds`` start-stop layout.

No real drive is in it (the real data's licence keeps it out of the repo). 600 drives of three models;
about 9 % fail, and a failing drive's reallocated/pending/uncorrectable counts start growing in its
last 1,500 power-on hours (one model fails twice as often). Run: ``python make_sample.py``.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from shoal.usecases.infra.drive_risk import REQUIRED, SMART

MODELS = (
    ("ST4000DM000", "ST", 4.0, 0.16),
    ("HGST HMS5C4040BLE640", "HGST", 4.0, 0.08),
    ("WDC WD30EFRX", "WDC", 3.0, 0.08),
)


def sample(n_drives: int = 600, seed: int = 11) -> pa.Table:
    rng = np.random.default_rng(seed)
    rows: dict[str, list[object]] = {k: [] for k in REQUIRED}  # the columns drive_risk reads
    for d in range(n_drives):
        model, maker, size, p_fail = MODELS[d % len(MODELS)]
        fails = rng.random() < p_fail
        life = int(rng.integers(3_000, 25_000))
        edges = np.unique(np.concatenate([[0, life], rng.integers(1, life, size=life // 600)]))
        for i, (a, b) in enumerate(itertools.pairwise(edges)):
            to_end = life - a
            wear = fails and to_end < 1_500
            bad = int(rng.poisson(40 * (1 - to_end / 1_500))) if wear else int(rng.random() < 0.02)
            rows["serial_number"].append(f"SYN{d:05d}")
            rows["model"].append(model)
            rows["manufacturer"].append(maker)
            rows["size_tb"].append(size)
            rows["tstart"].append(int(a))
            rows["tstop"].append(int(b))
            rows["fails"].append(1.0 if fails and b == life else 0.0)
            values = {
                "smart_5": bad * 8,
                "smart_10": 0,
                "smart_12": 2 + i // 4,
                "smart_187": bad // 2 if wear else 0,
                "smart_188": 0,
                "smart_189": 0,
                "smart_196": bad,
                "smart_197": bad if wear else 0,
                "smart_198": bad // 3 if wear else 0,
            }
            for k in SMART:
                rows[k].append(float(values[k]))
    types = {"tstart": pa.int32(), "tstop": pa.int32()}
    return pa.table({k: pa.array(v, types.get(k)) for k, v in rows.items()})


if __name__ == "__main__":
    pq.write_table(sample(), Path(__file__).with_name("hds_synthetic.parquet"))

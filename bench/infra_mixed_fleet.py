"""The infra detectors on daytime-only and mixed-workload fleets of the same seeds (issue 16).

    PYTHONPATH=src .venv/bin/python bench/infra_mixed_fleet.py [--seeds 202,303,101,7]

For each seed, a fleet with daytime hosts only and the same fleet with ``MIXED_WORKLOADS`` (the same
faults: workload types draw from their own stream), scored against the injected faults
(``evaluate.score_events``) in two shapes, over DuckDB views of the simulated tables (no lake):

- ``detect``: ``test_infra_detect.py``'s shape (2 podlets x 4 racks x 8 hosts, 3 days): the batch
  detectors of ``shoal infra detect`` (``detect_all``: temporal, rack, phase, disk);
- ``anomalies``: the demo's small shape (2 podlets x 4 racks x 6 hosts, 3 days): what the runner
  model ``infra.anomalies`` holds (``infra.stream_ew`` built whole, its episodes with the host rule,
  and the peer windows), and the streaming episodes alone.

Prints one JSON line per seed, fleet and shape: P/R/F1, faults found, windows, precision per
detector. A quality measurement, not a timing: a few seconds per fleet.
"""

from __future__ import annotations

import argparse
import json
from datetime import date
from typing import cast

import pyarrow as pa

from shoal.usecases.infra.anomalies import detect_all, peer_inputs_sql, peer_windows_sql
from shoal.usecases.infra.evaluate import Score, score_events
from shoal.usecases.infra.ew_models import ew_episodes, stream_ew_sql
from shoal.usecases.infra.history import Fleet
from shoal.usecases.infra.power import SqlConnection, connect_tables
from shoal.usecases.infra.topology import MIXED_WORKLOADS, TopologyConfig

FLEETS = {"daytime": (1.0, 0.0, 0.0, 0.0), "mixed": MIXED_WORKLOADS}
SHAPES = {"detect": 8, "anomalies": 6}  # hosts per rack; 2 podlets x 4 racks either way


def _summary(score: Score) -> dict[str, object]:
    d = score.as_dict()
    keys = ("precision", "recall", "f1", "detected", "faults", "anomalies", "precision_by_detector")
    return {k: d[k] for k in keys}


def run(seed: int, fleet_name: str, shape: str) -> dict[str, object]:
    cfg = TopologyConfig(
        seed=seed,
        datacenters_per_region=1,
        podlets_per_datacenter=2,
        racks_per_podlet=4,
        hypervisors_per_rack=SHAPES[shape],
        disks_per_hypervisor=2,
        workload_mix=FLEETS[fleet_name],
    )
    fleet = Fleet.build(cfg, start=date(2026, 1, 5), days=3, seed=seed)
    samples = pa.concat_tables([t for _, t in fleet.iter_days()])
    con = connect_tables({"metrics.series": fleet.series_table(), "metrics.samples": samples})
    truth = fleet.ground_truth()
    out: dict[str, object] = {"seed": seed, "fleet": fleet_name, "shape": shape}
    try:
        if shape == "detect":
            out["all"] = _summary(score_events(detect_all(cast(SqlConnection, con)), truth))
            return out
        con.register("__stream_ew", con.sql(stream_ew_sql()).to_arrow_table())
        con.execute("CREATE SCHEMA IF NOT EXISTS infra")
        con.execute("CREATE VIEW infra.stream_ew AS SELECT * FROM __stream_ew")
        episodes = ew_episodes(cast(SqlConnection, con))
        peers = con.sql(peer_windows_sql(peer_inputs_sql())).to_arrow_table().cast(episodes.schema)
        out["all"] = _summary(score_events(pa.concat_tables([episodes, peers]), truth))
        out["stream_ew"] = _summary(score_events(episodes, truth))
        return out
    finally:
        con.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="202,303,101,7")
    args = ap.parse_args()
    for seed in (int(s) for s in args.seeds.split(",")):
        for shape in SHAPES:
            for name in FLEETS:
                print(json.dumps(run(seed, name, shape)), flush=True)


if __name__ == "__main__":
    main()

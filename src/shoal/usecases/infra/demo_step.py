"""The infra demo step: a small fleet's PDU, host and disk history with injected faults → infra.anomalies."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shoal.usecases.registry import StepContext


def run(ctx: StepContext) -> dict[str, Any]:
    from shoal.query import connect_lake
    from shoal.usecases.infra.anomalies import ANOMALIES, detect_all, write_anomalies
    from shoal.usecases.infra.evaluate import score_events
    from shoal.usecases.infra.history import FAULT_LABELS, Fleet, write_history
    from shoal.usecases.infra.topology import TopologyConfig, build_topology

    cfg = TopologyConfig(
        seed=7,
        regions=1,
        datacenters_per_region=1 if ctx.small else 2,
        podlets_per_datacenter=2 if ctx.small else 3,
        racks_per_podlet=4 if ctx.small else 6,
        hypervisors_per_rack=6 if ctx.small else 12,
        disks_per_hypervisor=2,
    )
    days = 3 if ctx.small else 7
    fleet = Fleet(build_topology(cfg), date(2026, 1, 5), days, seed=7)
    lake = ctx.project.lake
    hist = write_history(lake, fleet)
    ctx.say(
        f"  wrote {hist.samples:,} samples of {hist.series:,} series "
        f"({days} days, {hist.faults} faults injected)"
    )
    with connect_lake(lake) as con:
        found = detect_all(con)
    write_anomalies(lake, found)
    score = score_events(lake.table(ANOMALIES).to_arrow(), lake.table(FAULT_LABELS).to_arrow())
    s = score.as_dict()
    ctx.say(
        f"  found {found.num_rows} anomalies; against the injected faults: "
        f"precision {s.get('precision', 0):.2f}, recall {s.get('recall', 0):.2f}, F1 {s.get('f1', 0):.2f}"
    )
    ctx.suggest_sql(
        "select level, entity, metric, round(score, 1) score, window_start "
        "from infra.anomalies order by score desc limit 10"
    )
    return {
        "samples": hist.samples,
        "series": hist.series,
        "faults": hist.faults,
        "anomalies": found.num_rows,
        "score": s,
    }

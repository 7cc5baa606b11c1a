"""The infra demo step: a small fleet's PDU, host and disk history with injected faults → infra.anomalies.

The model runner refreshes the infrastructure models (``shoal.usecases.infra.models``): the PDU series
are judged by the streaming detector on a compact state (``infra.stream_ew``) and the peer-group
detectors (rack, phase, disks), whose windows the model ``infra.anomalies`` keeps (ADR 0045); the
temporal batch detector is no longer used. The step prints precision/recall of that table against the
injected faults, the streaming detector's alone beside it, and the hypervisor profiles with their
placement hint (runner models).

The fleet mixes the four workload types (``topology.MIXED_WORKLOADS``: daytime, nightly-batch,
steady, memory-heavy), as real fleets do: the profile clustering then has several classes to find
and the detectors face racks and phases whose loads peak at different hours (sixth session; before,
the demo fleet was daytime-only because the streaming detector's false alarms at nightly-batch
ramps took it under its F1 floor).
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shoal.usecases.infra.topology import TopologyConfig
    from shoal.usecases.registry import StepContext

#: the demo fleet's seed (its topology, history and faults)
SEED = 7


def demo_topology(*, small: bool) -> TopologyConfig:
    """The demo's fleet: four workload types mixed; ``small`` is the one ``shoal demo --small`` uses."""
    from shoal.usecases.infra.topology import MIXED_WORKLOADS, TopologyConfig

    return TopologyConfig(
        seed=SEED,
        regions=1,
        datacenters_per_region=1 if small else 2,
        podlets_per_datacenter=2 if small else 3,
        racks_per_podlet=4 if small else 6,
        hypervisors_per_rack=6 if small else 12,
        disks_per_hypervisor=2,
        workload_mix=MIXED_WORKLOADS,
    )


def run(ctx: StepContext) -> dict[str, Any]:
    import pyarrow.compute as pc

    from shoal.models import ModelRunner
    from shoal.query import connect_lake
    from shoal.usecases.infra.anomalies import ANOMALIES
    from shoal.usecases.infra.evaluate import score_events
    from shoal.usecases.infra.history import FAULT_LABELS, Fleet, write_history
    from shoal.usecases.infra.models import models
    from shoal.usecases.infra.profiles import HYPERVISOR_CLASSES, PLACEMENT_HINTS
    from shoal.usecases.infra.topology import WORKLOADS, build_topology

    cfg = demo_topology(small=ctx.small)
    days = 3 if ctx.small else 7
    fleet = Fleet(build_topology(cfg), date(2026, 1, 5), days, seed=SEED)
    workloads = {w: int((fleet.topology.host_workload == i).sum()) for i, w in enumerate(WORKLOADS)}
    lake = ctx.project.lake
    hist = write_history(lake, fleet)
    ctx.say(
        f"  wrote {hist.samples:,} samples of {hist.series:,} series "
        f"({days} days, {hist.faults} faults injected); hypervisor workloads: "
        + ", ".join(f"{n} {w}" for w, n in workloads.items())
    )
    # the models a project lists (the demo's does): what `shoal refresh` / the watcher keep fresh
    with ModelRunner(lake, models()) as runner:
        runner.refresh()
    found = lake.table(ANOMALIES).to_arrow()
    stream = found.filter(pc.equal(found.column("detector"), "stream_ew"))
    with connect_lake(lake) as con:
        classes = con.query_arrow(
            f"SELECT cluster, profile_class, count(*) AS hosts FROM {HYPERVISOR_CLASSES} "
            "GROUP BY ALL ORDER BY cluster"
        ).to_pylist()
        best = con.query_arrow(
            f"SELECT vm_profile, rack, vms_fit, limited_by, round(peak_rise_w, 1) AS rise "
            f"FROM {PLACEMENT_HINTS} WHERE fit_rank = 1 ORDER BY cluster"
        ).to_pylist()
    labels = lake.table(FAULT_LABELS).to_arrow()
    s = score_events(found, labels).as_dict()
    alone = score_events(stream, labels).as_dict()
    ctx.say(
        f"  found {found.num_rows} anomalies; against the injected faults: "
        f"precision {s.get('precision', 0):.2f}, recall {s.get('recall', 0):.2f}, F1 {s.get('f1', 0):.2f} "
        f"(streaming detector alone: precision {alone.get('precision', 0):.2f}, "
        f"recall {alone.get('recall', 0):.2f})"
    )
    ctx.say(f"  hypervisor profiles: {len(classes)} cluster(s)")
    for c in classes:
        ctx.say(f"    {c['hosts']:4d} hosts  {c['profile_class']}")
    for hint in best:
        ctx.say(
            f"  placement hint: {hint['vm_profile'].split(':')[0]} VMs: rack {hint['rack']} takes the most, "
            f"{hint['vms_fit']} ({hint['limited_by']} limits; +{hint['rise']} W at its peak hour each)"
        )
    ctx.suggest_sql(
        "select level, entity, metric, round(score, 1) score, window_start "
        "from infra.anomalies order by score desc limit 10"
    )
    ctx.suggest_sql(f"select * from {PLACEMENT_HINTS} where fit_rank <= 2 order by vm_profile, fit_rank")
    return {
        "samples": hist.samples,
        "series": hist.series,
        "faults": hist.faults,
        "workloads": workloads,
        "anomalies": found.num_rows,
        "score": s,
        "stream_score": alone,
        "profile_classes": classes,
        "placement": best,
    }

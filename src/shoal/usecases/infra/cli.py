"""The ``shoal infra`` command group: ``simulate | serve | detect | evaluate | drive-risk``."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from shoal import open_project
from shoal.options import FormatOpt, ProjectOpt
from shoal.output import OutputFormat, emit, err_console

if TYPE_CHECKING:
    # The use case pulls in numpy, pyarrow and the simulator: imported when a command runs, so
    # `shoal --help` and unrelated commands start fast.
    from shoal.usecases.infra.topology import TopologyConfig

DateOpt = Annotated[
    datetime | None, typer.Option(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"], help="UTC date or time.")
]


# The fleet's shape, shared by the commands that build one.
SeedOpt = Annotated[int, typer.Option(help="Seed of the fleet and its faults.")]
RegionsOpt = Annotated[int, typer.Option(help="Regions (1-4).")]
DatacentersOpt = Annotated[int, typer.Option(help="Datacenters per region.")]
PodletsOpt = Annotated[int, typer.Option(help="Podlets per datacenter.")]
RacksOpt = Annotated[int, typer.Option(help="Racks per podlet.")]
HostsOpt = Annotated[int, typer.Option(help="Hypervisors per rack.")]
DisksOpt = Annotated[int, typer.Option(help="Disks per hypervisor.")]


def _fleet_config(  # noqa: PLR0917
    seed: int,
    regions: int,
    datacenters: int,
    podlets: int,
    racks: int,
    hosts: int,
    disks: int,
    mixed: bool = False,
) -> TopologyConfig:
    from shoal.usecases.infra.topology import MIXED_WORKLOADS, TopologyConfig

    return TopologyConfig(
        workload_mix=MIXED_WORKLOADS if mixed else (1.0, 0.0, 0.0, 0.0),
        seed=seed,
        regions=regions,
        datacenters_per_region=datacenters,
        podlets_per_datacenter=podlets,
        racks_per_podlet=racks,
        hypervisors_per_rack=hosts,
        disks_per_hypervisor=disks,
    )


def _utc(ts: datetime | None) -> datetime | None:
    return None if ts is None else ts.replace(tzinfo=UTC)


app = typer.Typer(
    help="Simulated fleet: history, live targets, power outliers and their evaluation; drive failure risk."
)


@app.command("simulate")
def simulate(  # noqa: PLR0917 (typer options)
    project: ProjectOpt = None,
    days: Annotated[int, typer.Option(help="Days of 5-minute history to write.")] = 7,
    start: Annotated[str, typer.Option(help="First UTC day (YYYY-MM-DD).")] = "2026-01-05",
    seed: SeedOpt = 7,
    regions: RegionsOpt = 1,
    datacenters: DatacentersOpt = 2,
    podlets: PodletsOpt = 3,
    racks: RacksOpt = 6,
    hosts: HostsOpt = 12,
    disks: DisksOpt = 2,
    mixed_workloads: Annotated[
        bool,
        typer.Option(
            help="Hypervisors of four workload types (daytime, nightly-batch, steady, memory-heavy) "
            "instead of daytime only: what the profile clustering (infra.hypervisor_classes) can find."
        ),
    ] = False,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Write simulated history (metrics.series/samples) and fault labels (infra.fault_labels)."""
    from shoal.usecases.infra.history import Fleet, write_history
    from shoal.usecases.infra.topology import build_topology

    cfg = _fleet_config(seed, regions, datacenters, podlets, racks, hosts, disks, mixed_workloads)
    fleet = Fleet(build_topology(cfg), date.fromisoformat(start), days, seed=seed)
    res = write_history(open_project(project).lake, fleet)
    emit(
        {
            "days_written": res.days_written,
            "days_skipped": res.days_skipped,
            "series": res.series,
            "samples": res.samples,
            "faults": res.faults,
            "seconds": round(res.seconds, 2),
            "samples_per_second": round(res.samples_per_second),
        },
        fmt,
    )


@app.command("serve")
def serve(  # noqa: PLR0917 (typer options)
    targets_file: Annotated[Path, typer.Argument(help="file_sd JSON file to write (one group per target).")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 = any free port).")] = 0,
    seed: SeedOpt = 7,
    regions: RegionsOpt = 1,
    datacenters: DatacentersOpt = 2,
    podlets: PodletsOpt = 3,
    racks: RacksOpt = 6,
    hosts: HostsOpt = 12,
    disks: DisksOpt = 2,
) -> None:
    """Serve the fleet's current values as Prometheus targets (/targets/<id>/metrics) until Ctrl-C."""
    from shoal.usecases.infra.exporter import ExporterServer, FleetExporter
    from shoal.usecases.infra.simulator import FleetSimulator
    from shoal.usecases.infra.topology import build_topology

    topo = build_topology(_fleet_config(seed, regions, datacenters, podlets, racks, hosts, disks))
    exporter = FleetExporter(FleetSimulator(topo, seed=seed))
    with ExporterServer(exporter, host, port) as server:
        server.write_file_sd(targets_file)
        err_console.print(
            f"serving {len(exporter.targets())} targets at {server.url}; file_sd: {targets_file}"
        )
        try:
            while True:
                time.sleep(1.0)
        except KeyboardInterrupt:
            err_console.print("exporter stopped")


@app.command("detect")
def detect(
    project: ProjectOpt = None,
    since: DateOpt = None,
    until: DateOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Mine power and disk outliers from metrics.* over a time range and upsert them into
    infra.anomalies_batch: the batch detectors (the SQL temporal detector from before issue 16, rack,
    phase and disk peers). infra.anomalies is the runner's model (shoal refresh): the streaming
    detector's episodes and the same peers, kept fresh as samples land."""
    from shoal.query.engine import connect_lake
    from shoal.usecases.infra.anomalies import detect_all, write_anomalies

    lake = open_project(project).lake
    with connect_lake(lake) as con:
        found = detect_all(con, since=_utc(since), until=_utc(until))
    version = write_anomalies(lake, found)
    counts: dict[str, int] = {}
    for det in found.column("detector").to_pylist():
        counts[det] = counts.get(det, 0) + 1
    emit({"anomalies": found.num_rows, "table_version": version, **counts}, fmt)


@app.command("evaluate")
def evaluate(  # noqa: PLR0917 (typer options)
    project: ProjectOpt = None,
    asd: Annotated[bool, typer.Option("--asd", help="Evaluate on the labelled ASD dataset instead.")] = False,
    asd_dir: Annotated[
        Path | None,
        typer.Option(help="Directory of omi-*.csv.gz (default: $SHOAL_ASD_DIR; required with --asd)."),
    ] = None,
    strict: Annotated[bool, typer.Option(help="Only an anomaly on the fault's own entity counts.")] = False,
    table: Annotated[
        str,
        typer.Option(
            help="Anomaly windows to score: infra.anomalies (the runner's model, shoal refresh) or "
            "infra.anomalies_batch (shoal infra detect)."
        ),
    ] = "infra.anomalies",
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Precision/recall/F1 of infra.anomalies (or --table) against infra.fault_labels (event level), or
    on ASD: the streaming detector (EW state), the trailing-window one, the fitted one and a rolling
    z-score, each with thresholds from its series' own past: point-wise and event-wise precision/recall/F1, an
    early-detection score (NAB-like: early alarms earn, false alarms cost; defined in
    docs/adr/0016-detection-evaluation-protocol.md), point-adjusted figures beside (protocol
    asd-stream-v1)."""
    if asd:
        from shoal.usecases.infra.asd import resolve_asd_dir
        from shoal.usecases.infra.asd_compare import compare_on_asd, summary_rows

        result = compare_on_asd(resolve_asd_dir(asd_dir))
        emit(result if fmt is OutputFormat.json else summary_rows(result), fmt)
        return
    from shoal.usecases.infra.evaluate import score_events
    from shoal.usecases.infra.history import FAULT_LABELS

    lake = open_project(project).lake
    score = score_events(lake.table(table).to_arrow(), lake.table(FAULT_LABELS).to_arrow(), strict=strict)
    emit(score.as_dict(), fmt)


@app.command("drive-risk")
def drive_risk(
    data: Annotated[
        Path,
        typer.Option(
            "--data", help="Start-stop SMART history (parquet, Backblaze hds layout), read in place."
        ),
    ],
    project: ProjectOpt = None,
    write: Annotated[
        bool,
        typer.Option(
            help="Write the held-out drives' scores to infra.drive_risk and the trees to "
            "infra.drive_risk_trees (what infra.fleet_drive_risk scores the fleet with)."
        ),
    ] = True,
    dev: Annotated[
        bool,
        typer.Option(
            "--dev",
            help="Evaluate on the dev drives (a slice of the training side) instead of the held-out "
            "ones, for making choices; writes nothing.",
        ),
    ] = False,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Train the 30-day drive failure model, split by drive; AUC and precision at 50/67 % recall
    against the 'reallocated or pending > 0' rule and the per-model failure rate, in one run, per
    landmark, per drive (each drive at its last landmark) and in the failure state (failed drives on
    their last day against healthy drive-time, as per-record studies count; precision also at a
    balanced class ratio)."""
    from shoal.usecases.infra.drive_risk import latest_risk, train_and_evaluate, write_drive_risk
    from shoal.usecases.infra.drive_risk_sql import write_trees

    with err_console.status("training and evaluating the drive failure model"):
        run = train_and_evaluate(data, dev=dev)
    report = dict(run.report)
    if write and not dev:
        lake = open_project(project).lake
        report["table_version"] = write_drive_risk(lake, latest_risk(run))
        report["trees_version"] = write_trees(lake, run.model.booster)
    if fmt is OutputFormat.json:
        emit(report, fmt)
    else:
        per_drive = report["per_drive"]["scorers"]
        state = report["failure_state"]["scorers"]
        emit(
            [{"protocol": "per landmark", "scorer": k, **v} for k, v in report["scorers"].items()]
            + [{"protocol": "per drive", "scorer": k, **v} for k, v in per_drive.items()]
            + [{"protocol": "failure state", "scorer": k, **v} for k, v in state.items()],
            fmt,
        )

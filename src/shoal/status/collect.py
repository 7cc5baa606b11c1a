"""``shoal status``: one report of what runs and how late it is, problems first.

Every item carries ``status`` (``failing`` > ``late`` > ``warning`` > ``ok``) and a one-line ``why``;
each section is sorted worst first and ``problems`` lists every item that is not ok, worst first.
The children and jobs come from the supervisor's run directory (:mod:`shoal.status.runstate`),
everything else from the lake, the pipeline files and (for lag) the brokers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from shoal.errors import ShoalError
from shoal.ingest import load_pipeline
from shoal.lake import Lake
from shoal.lake.progress import model_input
from shoal.status.pipelines import BROKER_TIMEOUT_S, pipeline_status
from shoal.status.runstate import RunDir, run_dir

if TYPE_CHECKING:
    from shoal.project import Project

SEVERITY = {"failing": 0, "late": 1, "warning": 2, "ok": 3}
#: Delta operations that count as maintenance of a table
MAINTENANCE_OPS = ("OPTIMIZE", "VACUUM END", "VACUUM START")
HISTORY_LIMIT = 100

CanRead = Callable[[str], bool]


def _item(status: str, why: str, **fields: Any) -> dict[str, Any]:
    return {**fields, "status": status, "why": why}


def _worst_first(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda i: (SEVERITY.get(i.get("status", "ok"), 3), str(i.get("name", ""))))


def _age_s(iso: str | None, now: datetime) -> float | None:
    if not iso:
        return None
    try:
        then = datetime.fromisoformat(iso)
    except ValueError:
        return None
    return round((now - then).total_seconds(), 3)


# -- the supervisor's children and jobs ---------------------------------------------------------------
def supervisor_status(
    rd: RunDir, declared_jobs: dict[str, dict[str, Any]] | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """The supervisor, its children and the maintenance jobs (``declared_jobs``: those of
    shoal.yaml, shown even before ``shoal up`` ever ran)."""
    state = rd.read_state() or {}
    sup = dict(state.get("supervisor") or {})
    live = rd.supervisor_pid()
    sup["running"] = live is not None
    sup["pid"] = live
    children = []
    for recorded in state.get("children") or []:
        c = dict(recorded)
        last = c.get("last_exit") or {}
        how = last.get("signal") or f"exit {last.get('exit_code')}"
        if not live:
            c["state"] = "down"
            children.append(_item("failing", "shoal up is not running", **c))
        elif c.get("state") == "backoff":
            why = f"crashed ({how}), restart {c.get('restarts', 0) + 1} in {c.get('restart_in_s')} s"
            children.append(_item("failing", why, **c))
        elif c.get("state") == "running" and c.get("restarts"):
            children.append(_item("warning", f"running, restarted {c['restarts']} time(s), last {how}", **c))
        elif c.get("state") == "running":
            children.append(_item("ok", "running", **c))
        else:
            children.append(_item("warning", str(c.get("state")), **c))
    # the last run of each job survives the supervisor: take it from the event log
    last_runs: dict[str, dict[str, Any]] = {}
    for event in rd.events(frozenset({"job"})):
        name = str(event.get("job"))
        # a run stopped at shutdown says nothing of the job: keep the last one that finished
        if event.get("outcome") != "stopped" or name not in last_runs:
            last_runs[name] = event
    jobs = []
    declared = {name: {"name": name, **j} for name, j in (declared_jobs or {}).items()}
    if live:
        declared.update({str(j.get("name")): dict(j) for j in state.get("jobs") or []})
    for name in sorted(set(declared) | set(last_runs)):
        j = declared.get(name, {"name": name})
        run = last_runs.get(name)
        j["last_run"] = run
        if run is None:
            when = f"next at {j['next_run_at']}" if j.get("next_run_at") else "shoal up is not running"
            jobs.append(_item("ok", f"not run yet; {when}", kind="maintenance", **j))
        elif run.get("outcome") == "stopped":
            jobs.append(
                _item(
                    "ok",
                    f"last run stopped by the supervisor at {run.get('finished')}",
                    kind="maintenance",
                    **j,
                )
            )
        elif run.get("outcome") != "ok":
            why = f"last run failed ({run.get('signal') or 'exit ' + str(run.get('exit_code'))}): "
            jobs.append(_item("failing", why + str(run.get("detail") or "")[:300], kind="maintenance", **j))
        else:
            jobs.append(_item("ok", f"last run ok at {run.get('finished')}", kind="maintenance", **j))
    return sup, children, jobs


# -- pipelines ------------------------------------------------------------------------------------------
def pipelines_section(
    project: Project,
    children: list[dict[str, Any]],
    *,
    can_read: CanRead,
    late_after_s: float,
    broker_timeout_s: float,
    now: datetime,
) -> list[dict[str, Any]]:
    out = []
    for name, path in project.pipeline_files.items():
        workers = [c for c in children if c.get("kind") == "pipeline" and c.get("target") == name]
        running = sum(1 for c in workers if c.get("state") == "running")
        try:
            spec = load_pipeline(path, project.dir)
        except ShoalError as exc:
            out.append(
                _item("failing", str(exc), name=name, workers={"declared": len(workers), "running": running})
            )
            continue
        if not can_read(spec.table):
            continue
        st = pipeline_status(project.lake, spec, broker_timeout_s=broker_timeout_s, now=now)
        info = project.lake.describe(spec.table) if project.lake.exists(spec.table) else None
        last_commit = info.last_commit.isoformat() if info and info.last_commit else None
        st["workers"] = {
            "declared": len(workers),
            "running": running,
            "children": [c["name"] for c in workers],
        }
        st["last_commit"] = last_commit
        st["last_commit_age_s"] = _age_s(last_commit, now)
        age = st["last_commit_age_s"]
        lag = st.get("lag")
        if not st["broker"]["reachable"]:
            item = _item("failing", f"broker unreachable: {st['broker']['error']}", **st)
        elif workers and running == 0:
            item = _item("failing", f"no worker running (0 of {len(workers)})", **st)
        elif lag and (age is None or age > late_after_s):
            since = "never committed" if age is None else f"last commit {age:.0f} s ago"
            item = _item("late", f"{lag} events behind, {since}", **st)
        elif st["dead_letters"]["last_hour"]:
            item = _item("warning", f"{st['dead_letters']['last_hour']} dead letters in the last hour", **st)
        else:
            item = _item("ok", f"lag {lag if lag is not None else '?'}", **st)
        out.append(item)
    return out


# -- models -----------------------------------------------------------------------------------------------
def _commit_time(lake: Lake, table: str, version: int) -> datetime | None:
    for commit in lake.table(table).history(HISTORY_LIMIT):
        if int(commit.get("version", -1)) == version and commit.get("timestamp"):
            return datetime.fromtimestamp(float(commit["timestamp"]) / 1000, tz=UTC)
    return None


def models_section(
    project: Project, *, can_read: CanRead, late_after_s: float, now: datetime
) -> list[dict[str, Any]]:
    lake = project.lake
    out = []
    try:
        models = project.models
    except ShoalError as exc:
        return [_item("failing", f"models cannot be loaded: {exc}", name="models")]
    for m in models:
        if not can_read(m.name):
            continue
        inputs = []
        consumed: dict[str, int | None] = {}
        if lake.exists(m.name):
            _, versions = lake.table(m.name).app_versions([model_input(u) for u in m.upstream])
            consumed = {u: versions.get(model_input(u)) for u in m.upstream}
        late_since: datetime | None = None
        for u in m.upstream:
            latest = lake.table(u).version if lake.exists(u) else None
            used = consumed.get(u)
            behind = None if latest is None else latest - (used if used is not None else -1)
            entry: dict[str, Any] = {"table": u, "consumed_version": used, "latest_version": latest,
                                     "versions_behind": behind}  # fmt: skip
            if behind:
                first = _commit_time(lake, u, (used if used is not None else -1) + 1)
                entry["behind_since"] = first.isoformat() if first else None
                if first is not None and (late_since is None or first < late_since):
                    late_since = first
            inputs.append(entry)
        behind_total = sum(i["versions_behind"] or 0 for i in inputs)
        fields = {"name": m.name, "inputs": inputs, "versions_behind": behind_total}
        if not lake.exists(m.name) and behind_total:
            out.append(_item("late", "never refreshed, its inputs have data", **fields))
        elif behind_total and late_since is not None and (now - late_since).total_seconds() > late_after_s:
            lag_s = (now - late_since).total_seconds()
            out.append(
                _item("late", f"{behind_total} input version(s) not consumed for {lag_s:.0f} s", **fields)
            )
        elif behind_total:
            out.append(_item("ok", f"{behind_total} input version(s) to consume (recent)", **fields))
        else:
            out.append(_item("ok", "up to date with its inputs", **fields))
    return out


# -- tables -----------------------------------------------------------------------------------------------
def tables_section(
    project: Project, *, can_read: CanRead, small_file_mb: float, now: datetime
) -> list[dict[str, Any]]:
    lake = project.lake
    small_bytes = int(small_file_mb * 1024 * 1024)
    out = []
    for name in lake.table_names():
        if not can_read(name):
            continue
        try:
            info = lake.describe(name)
            t = lake.table(name)
            sizes = pa.table(t.delta().get_add_actions(flatten=True))["size_bytes"]
            small = int(pc.sum(pc.less(sizes, small_bytes)).as_py() or 0) if len(sizes) else 0
            last_maint = next(
                (h for h in t.history(HISTORY_LIMIT) if h.get("operation") in MAINTENANCE_OPS), None
            )
        except ShoalError as exc:
            out.append(_item("failing", str(exc), name=name))
            continue
        maint = None
        if last_maint is not None:
            maint = {
                "operation": last_maint.get("operation"),
                "version": last_maint.get("version"),
                "at": datetime.fromtimestamp(float(last_maint["timestamp"]) / 1000, tz=UTC).isoformat()
                if last_maint.get("timestamp") else None,
            }  # fmt: skip
        fields = {
            "name": name, "size_bytes": info.size_bytes, "files": info.num_files, "small_files": small,
            "rows": info.num_rows, "version": info.version,
            "last_commit": info.last_commit.isoformat() if info.last_commit else None,
            "last_maintenance": maint, "last_checkpoint": t.last_checkpoint(),
        }  # fmt: skip
        if small >= 100 and small * 2 > info.num_files:
            out.append(
                _item("warning", f"{small} of {info.num_files} files are small: compaction due", **fields)
            )
        else:
            out.append(_item("ok", f"{info.num_files} files, {small} small", **fields))
    return out


# -- all of it ----------------------------------------------------------------------------------------------
def collect_status(
    project: Project,
    *,
    can_read: CanRead | None = None,
    admin: bool = True,
    broker_timeout_s: float = BROKER_TIMEOUT_S,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The whole report. ``can_read`` filters tables, pipelines and models (a served reader's
    grants); ``admin=False`` leaves out the supervisor, its children and the jobs."""
    now = now or datetime.now(UTC)
    up = project.settings.up
    readable: CanRead = can_read or (lambda _n: True)
    declared = {
        n: {"action": m.action, "schedule": m.schedule, "tables": m.tables} for n, m in up.maintenance.items()
    }
    sup, children, jobs = supervisor_status(run_dir(project.dir, up.run_dir), declared)
    syncs = [dict(c, kind="sync") for c in children if c.get("kind") == "sync"]
    report: dict[str, Any] = {
        "generated_at": now.isoformat(timespec="milliseconds"),
        "project": project.settings.name,
        "pipelines": _worst_first(
            pipelines_section(
                project,
                children,
                can_read=readable,
                late_after_s=up.late_after_s,
                broker_timeout_s=broker_timeout_s,
                now=now,
            )
        ),
        "models": _worst_first(
            models_section(project, can_read=readable, late_after_s=up.late_after_s, now=now)
        ),
        "tables": _worst_first(
            tables_section(project, can_read=readable, small_file_mb=up.small_file_mb, now=now)
        ),
    }
    if admin:
        report["supervisor"] = sup
        report["children"] = _worst_first(children)
        report["jobs"] = _worst_first([*jobs, *syncs])
    problems = []
    for section in ("children", "jobs", "pipelines", "models", "tables"):
        for item in report.get(section, []):
            if item.get("status", "ok") != "ok":
                problems.append({"section": section, "name": item.get("name"), "status": item["status"],
                                 "why": item["why"]})  # fmt: skip
    report["problems"] = sorted(problems, key=lambda p: SEVERITY[p["status"]])
    return report

"""From ``shoal.yaml`` to what ``shoal up`` runs: the registry of child builders.

Each builder turns the project into the :class:`ChildSpec` s of one kind; :data:`BUILDERS` lists
them. A new long-running process (a log shipper, a dead-letter replayer) is one more builder and
one more line in that tuple.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shoal.errors import ConfigError, ShoalError
from shoal.ingest import load_pipeline
from shoal.ingest.follow import models_to_refresh
from shoal.jsonsafe import dumps
from shoal.models import select_models
from shoal.project import Project
from shoal.supervise.schedule import Schedule
from shoal.supervise.spec import ChildSpec, JobSpec, fingerprint_text, shoal_argv

Builder = Callable[[Project], list[ChildSpec]]


def pipeline_workers(project: Project) -> list[ChildSpec]:
    """N workers per pipeline file (consumer-group members; ``up.pipelines`` overrides N)."""
    up = project.settings.up
    unknown = sorted(set(up.pipelines) - set(project.pipeline_files))
    if unknown:
        raise ConfigError(f"up.pipelines: no pipeline file for {', '.join(unknown)}")
    out: list[ChildSpec] = []
    for name, path in project.pipeline_files.items():
        count = up.pipelines.get(name, up.workers)
        if count == 0:
            continue
        # a broken file fails the plan (one line naming file and field) instead of a crash loop
        load_pipeline(path, project.dir)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read pipeline file: {exc}") from exc
        for i in range(count):
            child = f"ingest-{name}-{i}"
            args = ["ingest", name]
            if up.static_membership:
                # a restarted worker takes its partitions back at once instead of a group rebalance
                # the host in it: the same project run on two machines must not fence the other's workers
                instance = f"{project.settings.name}-{socket.gethostname()}-{child}"
                args += ["--client", f"group.instance.id={instance}"]
            out.append(
                ChildSpec(
                    name=child,
                    argv=tuple(shoal_argv(project.dir, *args)),
                    kind="pipeline",
                    target=name,
                    fingerprint=fingerprint_text(text),
                )
            )
    return out


def refreshed_in_commits(project: Project) -> dict[str, str]:
    """Models the pipelines ``shoal up`` runs refresh in their commits (``refresh:``), with the
    state models they read: model name -> pipeline name."""
    up = project.settings.up
    out: dict[str, str] = {}
    for name, path in project.pipeline_files.items():
        spec = load_pipeline(path, project.dir)
        if spec.refresh and up.pipelines.get(name, up.workers) != 0:
            for m in models_to_refresh(spec.table, spec.refresh, project.models):
                out[m.name] = name
    return out


def model_watchers(project: Project) -> list[ChildSpec]:
    """``shoal refresh --watch`` per declared watcher (default: one over every model that no
    pipeline refreshes in its commits)."""
    watchers = project.settings.up.watchers
    inline = refreshed_in_commits(project) if project.settings.models else {}
    if watchers is None:
        if not project.settings.models:
            return []
        from shoal.config.settings import UpWatcher

        rest = [m.name for m in project.models if m.name not in inline]
        if not rest:
            return []
        watchers = {"models": UpWatcher(models=rest if inline else [])}
    out = []
    for name, w in watchers.items():
        # the models load and the names exist, or the plan fails with the one-line reason
        chosen = select_models(project.models, w.models)
        both = sorted(m.name for m in chosen if m.name in inline)
        if both:
            # two runners of one model would only conflict and retry: one writer per model
            raise ConfigError(
                f"up.watchers.{name}: {', '.join(both)} already refreshed by pipeline "
                f"{inline[both[0]]} in its commits (refresh:); leave them out of the watcher"
            )
        args = ["refresh", *w.models, "--watch", "--interval", str(w.interval_s), "--format", "json"]
        out.append(
            ChildSpec(
                name=f"watch-{name}",
                argv=tuple(shoal_argv(project.dir, *args)),
                kind="watcher",
                target=",".join(w.models) or "all models",
                # the model list of shoal.yaml decides what "all" and each model's SQL are
                fingerprint=fingerprint_text(*project.settings.models),
            )
        )
    return out


def database_syncs(project: Project) -> list[ChildSpec]:
    """``shoal sync NAME --follow`` per database (default: every declared one)."""
    dbs = project.settings.databases
    names = list(dbs) if project.settings.up.syncs is None else project.settings.up.syncs
    unknown = sorted(set(names) - set(dbs))
    if unknown:
        raise ConfigError(f"up.syncs: no database {', '.join(unknown)} under databases:")
    return [
        ChildSpec(
            name=f"sync-{name}",
            argv=tuple(shoal_argv(project.dir, "sync", name, "--follow", "--format", "json")),
            kind="sync",
            target=name,
            fingerprint=fingerprint_text(dumps(dbs[name].model_dump(mode="json"))),
        )
        for name in names
    ]


def server(project: Project) -> list[ChildSpec]:
    if not project.settings.up.serve:
        return []
    return [
        ChildSpec(
            name="serve",
            argv=tuple(shoal_argv(project.dir, "serve", "--format", "json")),
            kind="serve",
            target=f"{project.settings.serve.host}:{project.settings.serve.port}",
            fingerprint=fingerprint_text(dumps(project.settings.serve.model_dump(mode="json"))),
        )
    ]


def metrics_children(project: Project) -> list[ChildSpec]:
    """Prometheus scrapers and remote_write receivers."""
    up = project.settings.up
    out = []
    for name, s in up.scrape.items():
        targets = project.dir / s.targets_file
        args = ["metrics", "scrape", str(targets), "--job", s.job, "--interval", str(s.interval_s)]
        args += ["--format", "json"]
        out.append(ChildSpec(f"scrape-{name}", tuple(shoal_argv(project.dir, *args)), "scrape", target=s.job))
    for name, r in up.remote_write.items():
        args = ["metrics", "remote-write", "--host", r.host, "--port", str(r.port)]
        out.append(
            ChildSpec(
                f"remote-write-{name}",
                tuple(shoal_argv(project.dir, *args)),
                "remote_write",
                target=f"{r.host}:{r.port}",
            )
        )
    return out


def log_children(project: Project) -> list[ChildSpec]:
    """``shoal logs receive`` / ``consume`` / ``index --follow`` as ``up.logs`` declares."""
    logs = project.settings.up.logs
    if logs is None:
        return []
    if logs.topics and not logs.brokers:
        raise ConfigError("up.logs: topics given without brokers")
    fp = fingerprint_text(dumps(logs.model_dump(mode="json")))
    out = []
    if logs.receive:
        args = ["logs", "receive", "--host", logs.host, "--port", str(logs.port)]
        target = f"{logs.host}:{logs.port}"
        out.append(_logs_child("logs-receive", project, args, target, fp))
    if logs.topics:
        assert logs.brokers is not None
        args = ["logs", "consume", "--brokers", logs.brokers, "--format", "json"]
        for topic in logs.topics:
            args += ["--topic", topic]
        target = ",".join(logs.topics)
        out.append(_logs_child("logs-consume", project, args, target, fp))
    if logs.index:
        args = ["logs", "index", "--follow", "--format", "json"]
        out.append(_logs_child("logs-index", project, args, "logs.lines", fp))
    return out


def _logs_child(name: str, project: Project, args: list[str], target: str, fingerprint: str) -> ChildSpec:
    argv = tuple(shoal_argv(project.dir, *args))
    return ChildSpec(name=name, argv=argv, kind="logs", target=target, fingerprint=fingerprint)


#: every kind of long-running child, in start order (writers before the watchers reading them)
BUILDERS: tuple[Builder, ...] = (
    pipeline_workers,
    database_syncs,
    metrics_children,
    log_children,
    model_watchers,
    server,
)


def maintenance_jobs(project: Project) -> list[JobSpec]:
    out = []
    for name, m in project.settings.up.maintenance.items():
        out.append(
            JobSpec(
                name=name,
                argv=tuple(shoal_argv(project.dir, "maintain", name, "--format", "json")),
                schedule=Schedule(m.schedule),
                timeout_s=m.timeout_s,
                action=m.action,
                tables=tuple(m.tables),
            )
        )
    return out


@dataclass(frozen=True)
class Plan:
    children: tuple[ChildSpec, ...]
    jobs: tuple[JobSpec, ...]

    def describe(self) -> dict[str, Any]:
        return {
            "children": [c.describe() for c in self.children],
            "jobs": [j.describe() for j in self.jobs],
        }


def build_plan(project: Project, builders: tuple[Builder, ...] = BUILDERS) -> Plan:
    """Everything the project declares, checked: child names are unique."""
    children: list[ChildSpec] = []
    for build in builders:
        try:
            children.extend(build(project))
        except ShoalError:
            raise
        except (OSError, ValueError) as exc:
            raise ConfigError(f"up: {build.__name__}: {exc}") from exc
    names = [c.name for c in children]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"up: two children are named {', '.join(dupes)}")
    return Plan(tuple(children), tuple(maintenance_jobs(project)))

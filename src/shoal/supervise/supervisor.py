"""The supervisor loop of ``shoal up``: start every child, restart crashed ones with backoff, run the
maintenance jobs on their schedules, re-read ``shoal.yaml`` on SIGHUP, stop everything on SIGTERM.

One thread, polling: children are processes in their own sessions (a terminal's Ctrl-C reaches only
the supervisor, which then stops them in order), each asked to die with the supervisor
(``PR_SET_PDEATHSIG``) so a ``kill -9`` of ``shoal up`` leaves no orphan consuming. The children's own
exactly-once commits (offsets, positions and model inputs in the Delta commit) are what make a
restart, a reload or a kill lose and duplicate nothing; the supervisor only decides when to run them.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from shoal.config.settings import UpSettings
from shoal.errors import ShoalError
from shoal.project import Project
from shoal.status.runstate import RunDir, run_dir
from shoal.supervise.backoff import consecutive_crashes, restart_delay
from shoal.supervise.plan import BUILDERS, Builder, Plan, build_plan
from shoal.supervise.spec import ChildSpec, JobSpec, Restart

#: seconds between two looks at the children (exit detection latency)
TICK_S = 0.1
#: state.json is rewritten at least this often while something runs
STATE_EVERY_S = 1.0
_PR_SET_PDEATHSIG = 1

EventSink = Callable[[dict[str, Any]], None]


class SupervisorRunning(ShoalError):
    """Another ``shoal up`` already supervises this project."""


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="milliseconds")


def _libc_prctl() -> Callable[[], None] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None

    def die_with_parent() -> None:  # runs in the forked child before exec
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)

    return die_with_parent


_DIE_WITH_PARENT = _libc_prctl()


def exit_reason(code: int) -> dict[str, Any]:
    """``exit_code`` and, for a signal, its name (``SIGKILL``)."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return {"exit_code": code, "signal": name}
    return {"exit_code": code, "signal": None}


def _tail(path: Path, lines: int = 1, limit: int = 8192) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - limit))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    kept = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("=== ")]
    return "\n".join(kept[-lines:])[:500]


@dataclass
class _Proc:
    """One process the supervisor started (a child or a job run)."""

    popen: subprocess.Popen[bytes]
    log: IO[bytes]
    started: float  # wall clock
    started_mono: float
    term_sent: float | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def reap(self) -> None:
        # whatever the leader left in its group (it is a session of its own) goes too
        self.signal_group(signal.SIGKILL)
        self.log.close()


@dataclass
class _Child:
    spec: ChildSpec
    proc: _Proc | None = None
    state: str = "pending"  # pending | running | backoff | stopping | exited
    restarts: int = 0
    crashes: int = 0
    next_start: float = 0.0  # monotonic
    last_exit: dict[str, Any] | None = None


@dataclass
class _Job:
    spec: JobSpec
    next_due: float  # wall clock
    proc: _Proc | None = None
    runs: int = 0
    last_run: dict[str, Any] | None = None
    skipped: int = 0


@dataclass
class Supervisor:
    """Runs a project's :class:`Plan` until stopped. ``load`` re-reads the project (on reload)."""

    project: Project
    on_event: EventSink = lambda _e: None
    load: Callable[[], Project] | None = None
    #: the child builders (the registry of :mod:`shoal.supervise.plan`); tests pass their own
    builders: tuple[Builder, ...] = BUILDERS
    _children: dict[str, _Child] = field(default_factory=dict)
    _jobs: dict[str, _Job] = field(default_factory=dict)
    _stop: bool = False
    _reload: bool = False
    _reloads: int = 0
    _config_error: str | None = None
    _dirty: bool = True
    _started: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        self.up: UpSettings = self.project.settings.up
        self.run_dir: RunDir = run_dir(self.project.dir, self.up.run_dir).ensure()

    # -- signals ---------------------------------------------------------------------------------------
    def request_stop(self, *_: object) -> None:
        self._stop = True

    def request_reload(self, *_: object) -> None:
        self._reload = True

    def _install_signals(self) -> Callable[[], None]:
        # the handlers only set flags: the loop acts on them between two looks at the children
        old = {
            signal.SIGTERM: signal.signal(signal.SIGTERM, self.request_stop),
            signal.SIGINT: signal.signal(signal.SIGINT, self.request_stop),
            signal.SIGHUP: signal.signal(signal.SIGHUP, self.request_reload),
        }

        def restore() -> None:
            for s, h in old.items():
                signal.signal(s, h)

        return restore

    # -- the loop --------------------------------------------------------------------------------------
    def run(self, plan: Plan | None = None) -> int:
        """Supervise until SIGTERM/SIGINT (or :meth:`request_stop`); returns 0 after a clean stop."""
        other = self.run_dir.supervisor_pid()
        if other is not None and other != os.getpid():
            raise SupervisorRunning(
                f"shoal up already runs for {self.project.dir} (pid {other}); "
                "use `shoal up --reload` to apply changes"
            )
        plan = plan or build_plan(self.project, self.builders)
        self.run_dir.write_pid()
        restore = self._install_signals()
        try:
            self._event({"event": "up", "pid": os.getpid(), **plan.describe()})
            self._adopt(plan)
            last_state = 0.0
            while not self._stop:
                if self._reload:
                    self._reload = False
                    self._apply_reload()
                self._tick()
                mono = time.monotonic()
                if self._dirty or mono - last_state >= STATE_EVERY_S:
                    self._write_state()
                    last_state = mono
                time.sleep(TICK_S)
            return 0
        finally:
            # also after an unexpected error in the loop: never leave children unsupervised
            self._shutdown()
            restore()
            self._write_state(stopped=True)
            self.run_dir.remove_pid()

    def _adopt(self, plan: Plan) -> None:
        for spec in plan.children:
            self._children[spec.name] = _Child(spec)
        now = time.time()
        for job in plan.jobs:
            self._jobs[job.name] = _Job(job, next_due=job.schedule.next_after(now))
        self._dirty = True

    def _tick(self) -> None:
        mono = time.monotonic()
        for child in list(self._children.values()):
            self._watch_child(child, mono)
        for job in self._jobs.values():
            self._watch_job(job, mono)

    # -- children --------------------------------------------------------------------------------------
    def _spawn(self, name: str, argv: tuple[str, ...]) -> _Proc:
        path = self.run_dir.log_file(name)
        log = open(path, "ab")  # noqa: SIM115 (owned by the _Proc, closed when it is reaped)
        log.write(f"=== {_now_iso()} start: {' '.join(argv)}\n".encode())
        log.flush()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "SHOAL_UP_CHILD": name}
        try:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.project.dir,
                start_new_session=True,  # its own group: signals reach what it forks, not our terminal
                preexec_fn=_DIE_WITH_PARENT,  # noqa: PLW1509 (single-threaded supervisor)
            )
        except OSError:
            log.close()
            raise
        return _Proc(popen, log, time.time(), time.monotonic())

    def _start_child(self, child: _Child) -> None:
        try:
            child.proc = self._spawn(child.spec.name, child.spec.argv)
        except OSError as exc:
            self._crashed(child, {"exit_code": None, "signal": None, "error": str(exc)}, uptime=0.0)
            return
        child.state = "running"
        self._dirty = True
        self._event({"event": "start", "child": child.spec.name, "pid": child.proc.pid,
                     "restarts": child.restarts})  # fmt: skip

    def _watch_child(self, child: _Child, mono: float) -> None:
        if child.state in ("pending", "backoff") and mono >= child.next_start:
            if child.state == "backoff":
                child.restarts += 1
            self._start_child(child)
            return
        proc = child.proc
        if proc is None or proc.popen.poll() is None:
            return
        code = int(proc.popen.returncode)
        uptime = mono - proc.started_mono
        proc.reap()
        child.proc = None
        reason = {"pid": proc.pid, **exit_reason(code), "uptime_s": round(uptime, 3)}
        restart = child.spec.restart is Restart.always or (
            child.spec.restart is Restart.on_failure and code != 0
        )
        if restart:
            self._crashed(child, reason, uptime)
        else:
            child.state = "exited"
            child.last_exit = {**reason, "at": _now_iso()}
            self._event({"event": "exit", "child": child.spec.name, **reason})

    def _crashed(self, child: _Child, reason: dict[str, Any], uptime: float) -> None:
        """Record the crash and schedule the restart after the backoff delay."""
        child.crashes = consecutive_crashes(child.crashes, uptime, self.up.backoff)
        delay = restart_delay(self.up.backoff, child.crashes)
        child.state = "backoff"
        child.next_start = time.monotonic() + delay
        child.last_exit = {**reason, "at": _now_iso()}
        self._dirty = True
        self._event({
            "event": "crash", "child": child.spec.name, "kind": child.spec.kind, **reason,
            "restarts": child.restarts, "consecutive_crashes": child.crashes,
            "restart_in_s": round(delay, 3), "log": str(self.run_dir.log_file(child.spec.name)),
            "last_line": _tail(self.run_dir.log_file(child.spec.name)),
        })  # fmt: skip

    def _stop_procs(self, procs: list[tuple[str, _Proc]], timeout_s: float) -> dict[str, int | None]:
        """SIGTERM every group, wait up to ``timeout_s``, then SIGKILL what is left."""
        for _, p in procs:
            if p.popen.poll() is None:
                p.signal_group(signal.SIGTERM)
                p.term_sent = time.monotonic()
        deadline = time.monotonic() + timeout_s
        while any(p.popen.poll() is None for _, p in procs) and time.monotonic() < deadline:
            time.sleep(0.05)
        codes: dict[str, int | None] = {}
        for name, p in procs:
            killed = p.popen.poll() is None
            if killed:
                p.signal_group(signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.popen.wait(10)
            p.reap()
            codes[name] = p.popen.returncode
            self._event({"event": "stopped", "child": name, "pid": p.pid,
                         **exit_reason(int(p.popen.returncode or 0)), "killed": killed})  # fmt: skip
        return codes

    def _stop_children(self, names: list[str]) -> None:
        procs = []
        for name in names:
            child = self._children[name]
            if child.proc is not None:
                child.state = "stopping"
                procs.append((name, child.proc))
        self._write_state()
        self._stop_procs(procs, self.up.stop_timeout_s)
        for name in names:
            child = self._children[name]
            child.proc = None
            child.state = "exited"

    # -- jobs ------------------------------------------------------------------------------------------
    def _watch_job(self, job: _Job, mono: float) -> None:
        now = time.time()
        proc = job.proc
        if proc is not None:
            if proc.popen.poll() is None:
                if mono - proc.started_mono > job.spec.timeout_s and proc.term_sent is None:
                    proc.signal_group(signal.SIGTERM)
                    proc.term_sent = mono
                elif proc.term_sent is not None and mono - proc.term_sent > self.up.stop_timeout_s:
                    proc.signal_group(signal.SIGKILL)
                return
            self._job_done(job, proc)
        if now >= job.next_due:
            if job.proc is None:
                self._start_job(job)
            job.next_due = job.spec.schedule.next_after(max(now, job.next_due))
            self._dirty = True

    def _start_job(self, job: _Job) -> None:
        try:
            job.proc = self._spawn(f"job-{job.spec.name}", job.spec.argv)
        except OSError as exc:
            job.last_run = {"outcome": "failed", "detail": str(exc), "started": _now_iso(),
                            "finished": _now_iso(), "exit_code": None}  # fmt: skip
            self._event({"event": "job", "job": job.spec.name, **job.last_run})
            return
        job.runs += 1
        self._dirty = True

    def _job_done(self, job: _Job, proc: _Proc, *, stopped: bool = False) -> None:
        code = int(proc.popen.returncode if proc.popen.returncode is not None else -signal.SIGKILL)
        proc.reap()
        job.proc = None
        log = self.run_dir.log_file(f"job-{job.spec.name}")
        outcome = "stopped" if stopped else "ok" if code == 0 else "failed"
        job.last_run = {
            "started": _iso(proc.started),
            "finished": _now_iso(),
            "seconds": round(time.monotonic() - proc.started_mono, 3),
            **exit_reason(code),
            "outcome": outcome,
            "detail": "stopped by the supervisor" if stopped else _tail(log, 1),
            "pid": proc.pid,
        }
        self._dirty = True
        self._event({"event": "job", "job": job.spec.name, "action": job.spec.action, **job.last_run})

    # -- reload ----------------------------------------------------------------------------------------
    def _apply_reload(self) -> None:
        """Re-read shoal.yaml and the pipeline files; start new children, stop removed ones,
        restart changed ones; leave the others running. A broken file changes nothing."""
        try:
            project = self.load() if self.load is not None else Project.load(self.project.dir)
            plan = build_plan(project, self.builders)
        except ShoalError as exc:
            self._config_error = str(exc)
            self._dirty = True
            self._event({"event": "reload_failed", "error": str(exc)})
            return
        self._config_error = None
        self._reloads += 1
        self.project = project
        self.up = project.settings.up
        wanted = {c.name: c for c in plan.children}
        removed = [n for n in self._children if n not in wanted]
        changed = [
            n for n, c in wanted.items()
            if n in self._children and self._children[n].spec.identity != c.identity
        ]  # fmt: skip
        added = [n for n in wanted if n not in self._children]
        self._stop_children(removed + changed)
        for name in removed:
            del self._children[name]
        for name in changed:
            self._children[name] = _Child(wanted[name], restarts=self._children[name].restarts)
        for name in added:
            self._children[name] = _Child(wanted[name])
        # jobs: keep the schedule position of an unchanged job, re-plan the others
        now = time.time()
        jobs: dict[str, _Job] = {}
        for spec in plan.jobs:
            old = self._jobs.get(spec.name)
            if old is not None and old.spec.identity == spec.identity:
                jobs[spec.name] = old
            else:
                if old is not None and old.proc is not None:
                    self._job_done_after_stop(old)
                jobs[spec.name] = _Job(spec, next_due=spec.schedule.next_after(now))
        for name, old in self._jobs.items():
            if name not in jobs and old.proc is not None:
                self._job_done_after_stop(old)
        self._jobs = jobs
        # children keep their order of the plan (writers first)
        self._children = {n: self._children[n] for n in wanted}
        self._dirty = True
        self._event({"event": "reloaded", "added": added, "removed": removed, "restarted": changed,
                     "unchanged": sorted(set(wanted) - set(added) - set(changed))})  # fmt: skip

    def _job_done_after_stop(self, job: _Job) -> None:
        proc = job.proc
        assert proc is not None
        self._stop_procs([(f"job-{job.spec.name}", proc)], self.up.stop_timeout_s)
        self._job_done(job, proc, stopped=True)

    # -- shutdown ----------------------------------------------------------------------------------------
    def _shutdown(self) -> None:
        self._event({"event": "stopping", "children": len(self._children)})
        procs: list[tuple[str, _Proc]] = []
        for child in self._children.values():
            if child.proc is not None:
                child.state = "stopping"
                procs.append((child.spec.name, child.proc))
        for job in self._jobs.values():
            if job.proc is not None:
                procs.append((f"job-{job.spec.name}", job.proc))
        self._write_state()
        self._stop_procs(procs, self.up.stop_timeout_s)
        for child in self._children.values():
            child.proc = None
            child.state = "exited"
        for job in self._jobs.values():
            if job.proc is not None:
                self._job_done(job, job.proc, stopped=True)
        self._event({"event": "down"})

    # -- state -------------------------------------------------------------------------------------------
    def _event(self, event: dict[str, Any]) -> None:
        event = {"at": _now_iso(), **event}
        if event["event"] in ("crash", "exit", "stopped", "job", "reloaded", "reload_failed", "up", "down"):
            record = {k: v for k, v in event.items() if k not in ("children", "jobs")}
            self.run_dir.append_event(record)
        self.on_event(event)

    def state(self, *, stopped: bool = False) -> dict[str, Any]:
        mono = time.monotonic()
        children = []
        for c in self._children.values():
            children.append({
                "name": c.spec.name, "kind": c.spec.kind, "target": c.spec.target,
                "state": c.state, "pid": c.proc.pid if c.proc else None,
                "started_at": _iso(c.proc.started) if c.proc else None,
                "restarts": c.restarts, "consecutive_crashes": c.crashes,
                "restart_in_s": round(max(0.0, c.next_start - mono), 3) if c.state == "backoff" else None,
                "last_exit": c.last_exit, "log": str(self.run_dir.log_file(c.spec.name)),
            })  # fmt: skip
        jobs = []
        for j in self._jobs.values():
            jobs.append({
                "name": j.spec.name, "action": j.spec.action, "tables": list(j.spec.tables),
                "schedule": j.spec.schedule.expression, "state": "running" if j.proc else "idle",
                "next_run_at": _iso(j.next_due), "runs": j.runs, "last_run": j.last_run,
            })  # fmt: skip
        return {
            "supervisor": {
                "pid": os.getpid(),
                "project": str(self.project.dir),
                "started_at": _iso(self._started),
                "updated_at": _now_iso(),
                "running": not stopped,
                "reloads": self._reloads,
                "config_error": self._config_error,
            },
            "children": children,
            "jobs": jobs,
        }

    def _write_state(self, *, stopped: bool = False) -> None:
        self.run_dir.write_state(self.state(stopped=stopped))
        self._dirty = False

"""``shoal up``: one supervisor for everything a project declares (pipelines, watchers, syncs,
scrapers, the server, scheduled maintenance). See docs/operations.md "Running everything"."""

from shoal.supervise.plan import BUILDERS, Plan, build_plan
from shoal.supervise.spec import ChildSpec, JobSpec, Restart
from shoal.supervise.supervisor import Supervisor

__all__ = ["BUILDERS", "ChildSpec", "JobSpec", "Plan", "Restart", "Supervisor", "build_plan"]

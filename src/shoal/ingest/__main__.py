"""``python -m shoal.ingest --project DIR PIPELINE``: one ingest worker, without the full CLI.

Used by tests and benchmarks to run workers as subprocesses (kill -9, restarts). Extra librdkafka
settings: ``--client key=value`` (repeatable). Prints the run's stats as one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys

from shoal.errors import ShoalError
from shoal.ingest.logging import configure_json_logging
from shoal.ingest.runner import run_pipeline
from shoal.project import Project


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m shoal.ingest", description=__doc__)
    ap.add_argument("pipeline")
    ap.add_argument("--project", default=None)
    ap.add_argument("--until-drained", action="store_true")
    ap.add_argument("--metrics-port", type=int, default=None)
    ap.add_argument("--client", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--drain-idle-s", type=float, default=2.0)
    ap.add_argument("--log-level", default="INFO")
    args = ap.parse_args(argv)
    configure_json_logging(args.log_level.upper())
    extra = dict(kv.split("=", 1) for kv in args.client)
    try:
        stats = run_pipeline(
            Project.load(args.project),
            args.pipeline,
            until_drained=args.until_drained,
            metrics_port=args.metrics_port,
            extra_client_config=extra,
            drain_idle_s=args.drain_idle_s,
        )
    except ShoalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(stats.as_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

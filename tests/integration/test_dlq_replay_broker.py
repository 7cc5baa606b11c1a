"""A poison burst through a real broker lands in dead letters; after the fix (a new descriptor and a
corrected transform) ``shoal dlq replay`` moves exactly the fixable letters into the main table,
exactly once across kill -9 (between the main-table commit and the marks, and at a random point of
the CLI), and the letters that still fail stay with their new error."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from harness.cli import invoke_shoal
from harness.ingest import write_pipeline_project
from shoal.decode import DecodeSpec, build_decoder, message_class
from shoal.ingest import run_pipeline
from shoal.lake import progress
from shoal.project import Project
from shoal.sources.kafka.producer import produce_events

pytestmark = pytest.mark.integration

MESSAGE = "shoal.dlqtest.Order"
PROTO = """syntax = "proto3";
package shoal.dlqtest;
message Order {{
  string id = 1;
  int64 amount_cents = 2;
  string region = 3;{extra}
}}
"""
# v1 rejects negative amounts and the 'bad' region; v2 takes absolute amounts, still rejects 'bad'
T1 = (
    "SELECT * REPLACE (CASE WHEN amount_cents < 0 THEN error('negative amount ' || id) "
    "WHEN region = 'bad' THEN error('bad region ' || id) ELSE amount_cents END AS amount_cents) FROM batch"
)
T2 = (
    "SELECT * REPLACE (CASE WHEN region = 'bad' THEN error('region still bad ' || id) "
    "ELSE abs(amount_cents) END AS amount_cents) FROM batch"
)
DLQ = "shop.orders_dead_letters"

# run in a child process: a replay that kills itself with SIGKILL right after the main-table commit
# of batch >= N, before the letters are marked (the window a crash is worst in)
KILL_AFTER_COMMIT = """
import os, signal, sys
from shoal.project import Project
from shoal.ingest.replay import open_replay
at = int(sys.argv[2])
def hook(event):
    if event.phase == "committed" and event.batch >= at and event.version is not None:
        print(event.version, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
open_replay(Project.load(sys.argv[1]), "orders", batch_size=5).run(on_batch=hook)
"""


def _decode(proto: Path, strict: bool = True) -> dict[str, Any]:
    return {
        "format": "protobuf",
        "proto_file": str(proto),
        "message": MESSAGE,
        "strict_unknown_fields": strict,
    }


def _main(project: Project) -> list[dict[str, Any]]:
    t = project.lake.table("shop.orders").to_arrow()
    cols = ["id", "amount_cents", "region", "coupon", "_kafka_partition", "_kafka_offset"]
    rows = [{c: r.get(c) for c in cols} for r in t.to_pylist()]
    return sorted(rows, key=lambda r: r["id"])


def _letters(project: Project) -> list[dict[str, Any]]:
    return project.lake.table(DLQ).to_arrow().to_pylist()


def test_poison_burst_fixed_and_replayed_exactly_once(kafka_broker, kafka_topic, tmp_path: Path) -> None:
    rng = random.Random(15)
    protos = tmp_path / "protos"
    protos.mkdir()
    v1, v2 = protos / "order_v1.proto", protos / "order_v2.proto"
    v1.write_text(PROTO.format(extra=""))
    v2.write_text(PROTO.format(extra="\n  string coupon = 4;"))
    Order = message_class(MESSAGE, proto_file=v2)

    def order(i: str, amount: int, region: str, coupon: str = "") -> bytes:
        return Order(id=i, amount_cents=amount, region=region, coupon=coupon).SerializeToString()

    good = [(f"g{i:03d}", rng.randint(1, 10_000), rng.choice(["eu", "us"])) for i in range(300)]
    coupons = [(f"c{i:02d}", rng.randint(1, 500), "eu", f"SAVE{i}") for i in range(20)]  # new field
    negative = [(f"n{i:02d}", -rng.randint(1, 500), "us") for i in range(15)]  # v1 transform fails
    bad_region = [(f"b{i}", rng.randint(1, 500), "bad") for i in range(5)]  # fails v1 and v2
    decoders = [build_decoder(DecodeSpec.model_validate(_decode(p))) for p in (v1, v2)]
    garbage: list[bytes] = []
    while len(garbage) < 10:  # bytes neither descriptor reads
        raw = rng.randbytes(rng.randint(3, 40))
        if all(d.decode([raw]).failures for d in decoders):
            garbage.append(raw)
    burst = (
        [(i.encode(), order(i, a, r, c)) for i, a, r, c in coupons]
        + [(i.encode(), order(i, a, r)) for i, a, r in negative + bad_region]
        + [(b"junk%d" % n, raw) for n, raw in enumerate(garbage)]
    )
    rng.shuffle(burst)
    events = [(i.encode(), order(i, a, r)) for i, a, r in good]
    topic = kafka_topic(partitions=2)
    produce_events(kafka_broker.bootstrap, topic, events[:150] + burst + events[150:])

    proj_dir = tmp_path / "proj"
    fields = {"table": "shop.orders", "flush": {"max_rows": 1000}}
    project = write_pipeline_project(
        proj_dir, name="orders", topic=topic, brokers=kafka_broker.bootstrap, decode=_decode(v1),
        transform_sql=T1, **fields,
    )  # fmt: skip
    stats = run_pipeline(
        project, "orders", until_drained=True, extra_client_config=kafka_broker.consumer_overrides,
        drain_idle_s=1, drain_timeout_s=3,  # the broker may not report the end of a partition
    )  # fmt: skip
    assert (stats.committed_rows, stats.dead_lettered) == (300, 50)
    first = Counter(r["error_class"] for r in _letters(project))
    assert first["UnknownFields"] == 20
    assert first["InvalidInputException"] == 20
    assert sum(first.values()) == 50

    listed = invoke_shoal(["dlq", "list", "orders", "-p", str(proj_dir), "--since", "1h", "--format", "json"])
    assert listed.exit_code == 0, listed.output
    counts = Counter()
    for row in json.loads(listed.stdout):
        counts[row["error_class"]] += row["pending"]
    assert counts == first

    # the fix: the new descriptor and the corrected transform
    project = write_pipeline_project(
        proj_dir, name="orders", topic=topic, brokers=kafka_broker.bootstrap, decode=_decode(v2),
        transform_sql=T2, **fields,
    )  # fmt: skip
    main_v, dlq_v = project.lake.table("shop.orders").version, project.lake.table(DLQ).version
    dry = invoke_shoal(["dlq", "replay", "orders", "-p", str(proj_dir), "--dry-run", "--format", "json"])
    assert dry.exit_code == 0, dry.output
    report = json.loads(dry.stdout)
    assert (report["letters"], report["replayed"], report["still_failing"], report["rows"]) == (
        50,
        35,
        15,
        35,
    )
    assert report["still_failing_by_class"]["InvalidInputException"] == 5
    assert project.lake.table("shop.orders").version == main_v  # a dry run writes nothing
    assert project.lake.table(DLQ).version == dlq_v

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # 1. killed right after a main-table commit, before its letters are marked
    child = subprocess.run(
        [sys.executable, "-c", KILL_AFTER_COMMIT, str(proj_dir), "3"],
        check=False,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
    in_main = {(r["_kafka_partition"], r["_kafka_offset"]) for r in _main(project)}
    unmarked_but_written = [
        r for r in _letters(project) if r["replayed_at"] is None and (r["partition"], r["offset"]) in in_main
    ]
    assert unmarked_but_written  # the crash really hit the window between the two commits
    crashed_commit = int(child.stdout.decode().split()[-1])

    # live ingestion goes on meanwhile: more records arrive and a worker ingests them
    late = [(f"l{i:03d}", rng.randint(1, 10_000), "eu") for i in range(200)]
    produce_events(kafka_broker.bootstrap, topic, [(i.encode(), order(i, a, r)) for i, a, r in late])
    live: list[Any] = []
    worker = threading.Thread(
        target=lambda: live.append(
            run_pipeline(
                project, "orders", until_drained=True, extra_client_config=kafka_broker.consumer_overrides,
                drain_idle_s=1, drain_timeout_s=3,
            )
        )
    )  # fmt: skip
    worker.start()

    # 2. the CLI killed at the moment its first commit lands (or wherever it is by then)
    key = progress.dead_letter_replay("orders")
    before = project.lake.table("shop.orders").app_version(key)
    cli = subprocess.Popen(
        [sys.executable, "-m", "shoal", "dlq", "replay", "orders", "-p", str(proj_dir), "--batch-size", "3"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while cli.poll() is None and time.monotonic() < deadline:
        if project.lake.table("shop.orders").app_version(key) != before:
            time.sleep(rng.uniform(0, 0.3))
            break
        time.sleep(0.02)
    if cli.poll() is None:
        os.kill(cli.pid, signal.SIGKILL)
    cli.wait(30)

    # 3. run to the end
    done = invoke_shoal(["dlq", "replay", "orders", "-p", str(proj_dir), "--format", "json"])
    assert done.exit_code == 0, done.output
    worker.join(60)
    assert live[0].committed_rows == 200
    assert live[0].dead_lettered == 0
    assert json.loads(done.stdout)["still_failing"] == 15

    expected = sorted(
        [{"id": i, "amount_cents": a, "region": r, "coupon": None} for i, a, r in good]
        + [{"id": i, "amount_cents": a, "region": r, "coupon": ""} for i, a, r in late]
        + [{"id": i, "amount_cents": a, "region": r, "coupon": c} for i, a, r, c in coupons]
        + [{"id": i, "amount_cents": -a, "region": r, "coupon": ""} for i, a, r in negative],
        key=lambda r: r["id"],
    )
    rows = _main(project)
    # proto3 leaves an unset string empty: v2 rows say "" where v1 rows have no coupon column at all
    assert [{k: r[k] for k in ("id", "amount_cents", "region", "coupon")} for r in rows] == expected
    assert len({(r["_kafka_partition"], r["_kafka_offset"]) for r in rows}) == len(rows) == 535

    letters = _letters(project)
    assert len(letters) == 50  # marked, never deleted
    by_id: dict[str, dict[str, Any]] = {}
    for r in letters:
        key = r["key"].decode()
        by_id[key] = r
    offsets = {r["id"]: (r["_kafka_partition"], r["_kafka_offset"]) for r in rows}
    for i, *_ in coupons + negative:
        letter = by_id[i]
        assert letter["replayed_at"] is not None, letter
        assert offsets[i] == (letter["partition"], letter["offset"])  # the row is the letter's record
        version = letter["replayed_version"]
        held = project.lake.table("shop.orders").to_arrow(columns=["id"], version=version).column("id")
        assert i in held.to_pylist()
    # the letters the crash left unmarked name the commit that wrote them
    for r in unmarked_but_written:
        assert by_id[r["key"].decode()]["replayed_version"] == crashed_commit
    for i, *_ in bad_region:
        assert by_id[i]["replayed_at"] is None
        assert by_id[i]["retry_error_class"] == "InvalidInputException"
        assert "region still bad" in by_id[i]["retry_error_message"]
        assert by_id[i]["retries"] >= 1
    junk = [r for r in letters if r["key"].startswith(b"junk")]
    assert len(junk) == 10
    assert all(r["replayed_at"] is None and r["retry_error_class"] for r in junk)

    shown = invoke_shoal(["dlq", "show", "orders", "-p", str(proj_dir), "--limit", "100", "--format", "json"])
    assert shown.exit_code == 0, shown.output
    pending = json.loads(shown.stdout)
    assert len(pending) == 15
    assert sum(r["decodes_now"] for r in pending) == 5  # the 'bad' region decodes, the transform fails
    assert all('"region":"bad"' in r["preview"] for r in pending if r["decodes_now"])

    # once more: nothing new lands; the failing letters are tried again
    main_v = project.lake.table("shop.orders").version
    again = invoke_shoal(["dlq", "replay", "orders", "-p", str(proj_dir), "--format", "json"])
    assert json.loads(again.stdout)["replayed"] == 0
    assert project.lake.table("shop.orders").version == main_v
    assert _main(project) == rows

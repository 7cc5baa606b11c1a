"""Dead-letter replay: letters/s of ``shoal dlq replay`` against a plain append of the same rows.

Builds a local lake whose main table holds N rows (one topic partition, offsets 0..N-1, in files of
50,000 rows as a pipeline would write them) and a dead-letter table of L JSON letters whose offsets
are the gaps in it, then, in the same run and on copies of the same lake, R times each:

1. **replay**: ``DeadLetterReplay.run()`` (decode + transform with the current spec, the check for
   offsets the main table already holds, one commit built on that snapshot per batch, the marks);
2. **baseline**: the same letters decoded and transformed with the same decoder and transform and
   appended per batch with a plain ``Table.append`` (no check, no progress key, no marks) — what
   the rows cost to land without the exactly-once bookkeeping.

    .venv/bin/python bench/bench_dlq_replay.py --rows 1000000 --letters 20000 --repeat 3

Prints one JSON summary (medians); docs/benchmarks.md records the reference runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from shoal.decode import build_decoder
from shoal.ingest import META_FIELDS, parse_pipeline
from shoal.ingest.buffer import DeadRecord
from shoal.ingest.dead_letter import DEAD_LETTER_SCHEMA, dead_letter_table
from shoal.ingest.replay import DeadLetterReplay, LetterFilter, batches_of, read_letters
from shoal.ingest.transform import BatchTransform
from shoal.lake import Lake

TOPIC = "orders"
NOW = datetime(2026, 12, 6, tzinfo=UTC)
SPEC = {
    "name": "orders",
    "topics": [TOPIC],
    "brokers": "127.0.0.1:1",  # never contacted
    "decode": {"format": "json", "columns": [{"name": "id"}, {"name": "amount", "type": "int64"}]},
    "table": "shop.orders",
    "transform_sql": "SELECT * REPLACE (abs(amount) AS amount) FROM batch",
}
SCHEMA = pa.schema([pa.field("id", pa.string()), pa.field("amount", pa.int64()), *META_FIELDS])


def build(root: Path, rows: int, letters: int) -> None:
    lake = Lake(str(root))
    main = lake.create_table("shop.orders", SCHEMA)
    dead = set(range(0, rows, max(1, rows // letters)))
    for start in range(0, rows, 50_000):
        offs = [o for o in range(start, min(rows, start + 50_000)) if o not in dead]
        n = len(offs)
        main.append(
            pa.table(
                [
                    pa.array([f"i{o}" for o in offs]), pa.array(offs, pa.int64()),
                    pa.array([TOPIC] * n), pa.array([0] * n, pa.int32()), pa.array(offs, pa.int64()),
                    pa.nulls(n, META_FIELDS[3].type), pa.nulls(n, pa.binary()),
                    pa.array([NOW] * n, META_FIELDS[5].type),
                ],
                schema=SCHEMA,
            )
        )  # fmt: skip
    records = [
        DeadRecord(TOPIC, 0, o, None, None, json.dumps({"id": f"i{o}", "amount": -o}).encode(), (), "X", "e")
        for o in sorted(dead)
    ]
    lake.create_table("shop.orders_dead_letters", DEAD_LETTER_SCHEMA).append(
        dead_letter_table(records, "orders", now=NOW)
    )


def replay(root: Path, batch: int) -> tuple[float, int]:
    lake = Lake(str(root))
    spec = parse_pipeline(SPEC, base_dir=root)
    t0 = time.perf_counter()
    report = DeadLetterReplay(lake, spec, batch_size=batch).run()
    return time.perf_counter() - t0, report.replayed


def baseline(root: Path, batch: int) -> tuple[float, int]:
    lake = Lake(str(root))
    spec = parse_pipeline(SPEC, base_dir=root)
    t0 = time.perf_counter()
    letters = read_letters(lake.table(spec.dlq_table), LetterFilter("orders", status="pending"))
    decoder, transform, main = build_decoder(spec.decode), BatchTransform(spec), lake.table(spec.table)
    done = 0
    for start, n in batches_of(letters.num_rows, batch):
        b = letters.slice(start, n)
        res = decoder.decode(b.column("value").to_pylist())
        idx = pa.array(res.indices, pa.int64())
        meta = [
            b.column("topic").take(idx), b.column("partition").take(idx), b.column("offset").take(idx),
            b.column("timestamp").take(idx), b.column("key").take(idx),
            pa.array([NOW] * len(idx), META_FIELDS[5].type),
        ]  # fmt: skip
        table = pa.Table.from_arrays(
            [*res.batch.columns, *meta], schema=pa.schema([*res.batch.schema, *META_FIELDS])
        )
        table, _failed = transform.apply(table)
        main.append(table)
        done += table.num_rows
    transform.close()
    return time.perf_counter() - t0, done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--letters", type=int, default=20_000)
    ap.add_argument("--batch-size", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-dlq-") as tmp:
        base = Path(tmp) / "base"
        build(base, args.rows, args.letters)
        runs: dict[str, list[dict[str, Any]]] = {"replay": [], "baseline": []}
        for _ in range(args.repeat):
            for name, fn in (("replay", replay), ("baseline", baseline)):  # A/B pairs in one run
                copy = Path(tmp) / name
                shutil.rmtree(copy, ignore_errors=True)
                shutil.copytree(base, copy)
                seconds, landed = fn(copy, args.batch_size)
                runs[name].append({"seconds": round(seconds, 3), "letters_per_s": round(landed / seconds)})
        med = {k: statistics.median(r["letters_per_s"] for r in v) for k, v in runs.items()}
        summary = {
            "rows": args.rows,
            "letters": args.letters,
            "batch_size": args.batch_size,
            "runs": runs,
            "median_letters_per_s": med,
            "replay_vs_baseline": round(med["replay"] / med["baseline"], 2),
            "load_average": os.getloadavg(),
            "python": sys.version.split()[0],
        }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

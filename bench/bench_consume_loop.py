"""CPU of the ingest worker's per-message bookkeeping, as written vs column-wise (issue 14).

    .venv/bin/python bench/bench_consume_loop.py

``current`` copies the loop of ``IngestWorker._ingest`` (src/shoal/ingest/runner.py at c1b8dc2):
per message 12 Python calls and list appends for the offsets check and the Kafka metadata columns.
``columnwise`` is what the worker runs now (``shoal.ingest.runner.accept_records``, ADR 0037): the
same lists and Arrow columns (asserted equal), one comprehension per attribute and the offset
checks in numpy. Both run on 100k real ``confluent_kafka.Message`` objects;
prints median CPU seconds per million messages.
"""

import time

import numpy as np
import pyarrow as pa
from confluent_kafka import Message

from shoal.ingest.runner import accept_records

N = 100_000
msgs = [
    Message(
        topic="bench-tickets",
        partition=i % 6,
        offset=i // 6,
        key=b"TCK-%08d" % i,
        value=b"x" * 130,
        timestamp=(1, 1_767_571_200_000 + i),
    )
    for i in range(N)
]


def current(msgs):
    expected = {("bench-tickets", p): 0 for p in range(6)}
    eof = set()
    kept = []
    values = []
    keys = []
    topics = []
    parts = []
    offsets = []
    stamps = []
    ranges = {}
    skipped = 0
    for m in msgs:
        err = m.error()
        if err is not None:
            continue
        t = m.topic()
        p = m.partition()
        o = m.offset()
        tp = (t, p)
        exp = expected.get(tp)
        if exp is None or o < exp:
            skipped += 1
            continue
        expected[tp] = o + 1
        eof.discard(tp)
        r = ranges.get(tp)
        if r is None:
            ranges[tp] = [o, o + 1]
        else:
            r[1] = o + 1
        kept.append(m)
        values.append(m.value())
        keys.append(m.key())
        topics.append(t)
        parts.append(p)
        offsets.append(o)
        ts = m.timestamp()[1]
        stamps.append(ts if ts >= 0 else None)
    meta = [
        pa.array(topics, pa.string()),
        pa.array(parts, pa.int32()),
        pa.array(offsets, pa.int64()),
        pa.array(stamps, pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
        pa.array(keys, pa.binary()),
    ]
    return values, meta


def columnwise(msgs):
    # what the worker runs since ADR 0037: shoal.ingest.runner.accept_records, then the same columns
    expected = {("bench-tickets", p): 0 for p in range(6)}
    kept, offsets, parts, topics, _ranges = accept_records(msgs, expected, set())
    values = [m.value() for m in kept]
    keys = [m.key() for m in kept]
    stamps = np.fromiter((m.timestamp()[1] for m in kept), np.int64, len(kept))
    meta = [
        topics,
        pa.array(parts, pa.int32()),
        pa.array(offsets, pa.int64()),
        pa.array(stamps, mask=stamps < 0).cast(pa.timestamp("ms", tz="UTC")),
        pa.array(keys, pa.binary()),
    ]
    return values, meta


a = current(msgs)
b = columnwise(msgs)
assert a[0] == b[0], "different values"
assert all(x.equals(y) for x, y in zip(a[1], b[1], strict=True)), "different metadata columns"
for f in (current, columnwise, current, columnwise):
    c = []
    for _ in range(5):
        t = time.process_time()
        f(msgs)
        c.append(time.process_time() - t)
    print(f.__name__, "CPU s per 1M messages (median of 5):", round(sorted(c)[2] * 1e6 / N, 2))

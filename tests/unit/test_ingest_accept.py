"""The ingest loop's column-wise record checks give what the per-record loop they replace gave."""

from __future__ import annotations

import pyarrow as pa
from confluent_kafka import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.ingest.runner import accept_records

TP = tuple[str, int]


def _reference(
    msgs: list[Message], expected: dict[TP, int], eof: set[TP]
) -> tuple[list[int], dict[TP, tuple[int, int]]]:
    """The loop of IngestWorker._ingest before it went column-wise: indices kept, ranges."""
    kept: list[int] = []
    ranges: dict[TP, list[int]] = {}
    for i, m in enumerate(msgs):
        tp = (m.topic(), m.partition())
        exp = expected.get(tp)
        if exp is None or m.offset() < exp:
            continue
        expected[tp] = m.offset() + 1
        eof.discard(tp)
        r = ranges.setdefault(tp, [m.offset(), m.offset() + 1])
        r[1] = m.offset() + 1
        kept.append(i)
    return kept, {tp: (r[0], r[1]) for tp, r in ranges.items()}


records = st.lists(
    st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 3), st.integers(0, 12), st.integers(-1, 5)),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(records, st.dictionaries(st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 2)), st.integers(0, 6)))
def test_same_records_offsets_and_ranges_as_the_loop(
    rows: list[tuple[str, int, int, int]], start: dict[TP, int]
) -> None:
    # per partition, offsets mostly increase but repeat and jump back (a re-fetch after a seek)
    msgs = [
        Message(topic=t, partition=p, offset=o, key=b"k%d" % o, value=b"v", timestamp=(1, ts))
        for t, p, o, ts in rows
    ]
    eof_a = set(start) | {("a", 3)}
    eof_b = set(eof_a)
    exp_a, exp_b = dict(start), dict(start)
    want, want_ranges = _reference(msgs, exp_a, eof_a)
    kept, offsets, parts, topics, ranges = accept_records(msgs, exp_b, eof_b)
    assert [(m.topic(), m.partition(), m.offset()) for m in kept] == [
        (msgs[i].topic(), msgs[i].partition(), msgs[i].offset()) for i in want
    ]
    assert offsets.tolist() == [msgs[i].offset() for i in want]
    assert parts.tolist() == [msgs[i].partition() for i in want]
    assert topics.equals(pa.array([msgs[i].topic() for i in want], pa.string()))
    assert ranges == want_ranges
    assert (exp_b, eof_b) == (exp_a, eof_a)

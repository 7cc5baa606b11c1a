"""The ingest loop's garbage collection: start-up objects frozen, young passes per batch, not per
few hundred records.

A consumed batch creates ~10,000 GC-tracked ``Message`` objects. With CPython's default thresholds
the collector then runs every 700 of them, and every 10th-of-10th pass is a full one that traverses
every object of the process: the imported modules, the protobuf descriptors, pyarrow's and numpy's
types. In the 2M-event ingest benchmark the collector took 1.6 s of a 13 s run, with the GIL held
(full passes ~70 ms each). Inside :func:`ingest_heap`:

- ``gc.freeze()`` moves what exists once the worker is set up to a permanent generation that no
  pass traverses;
- the young generation's threshold is raised to five consumed batches (at least 50,000), above the
  records in flight (two batches), so a batch's messages are freed by reference counting before any
  pass sees them. Cycles are still collected, once that many tracked objects have accumulated.

Both are undone when the last loop of the process leaves, so workers run as threads of one
process (tests, an embedding application) overlap safely, and the interpreter is left as found.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["YOUNG_BATCHES", "YOUNG_THRESHOLD", "ingest_heap", "young_threshold"]

#: the least young-generation threshold inside the loop: above two consumed batches of the default
#: ``consume_batch`` (10,000) with their decode objects
YOUNG_THRESHOLD = 50_000
#: the same in consumed batches, for a larger ``consume_batch``
YOUNG_BATCHES = 5


def young_threshold(consume_batch: int) -> int:
    return max(YOUNG_THRESHOLD, YOUNG_BATCHES * consume_batch)


class _Policy:
    """Process-wide state of the overlapping loops: the first one in applies, the last one out
    restores."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loops = 0
        self.saved: tuple[int, int, int] = gc.get_threshold()


_POLICY = _Policy()


@contextmanager
def ingest_heap(consume_batch: int) -> Iterator[None]:
    """Freeze the objects alive now and raise the young threshold for the duration of the block.
    Garbage is collected first, so no unreachable cycle is frozen with the live objects."""
    p = _POLICY
    with p.lock:
        if p.loops == 0:
            p.saved = gc.get_threshold()
            gc.collect()
            gc.freeze()
        p.loops += 1
        young, *older = gc.get_threshold()
        gc.set_threshold(max(young_threshold(consume_batch), young), *older)
    try:
        yield
    finally:
        with p.lock:
            p.loops -= 1
            if p.loops == 0:
                gc.set_threshold(*p.saved)
                gc.unfreeze()

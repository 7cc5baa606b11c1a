"""The ingest loop's GC settings hold inside the block and are undone after it, even on error."""

from __future__ import annotations

import gc
import weakref

import pytest

from shoal.ingest.heap import YOUNG_THRESHOLD, ingest_heap, young_threshold


def test_inside_the_block_start_up_objects_are_frozen_and_young_passes_are_rarer() -> None:
    before = gc.get_threshold()
    alive = [object(), {"a": []}]  # tracked objects that exist when the loop starts
    with ingest_heap(10_000):
        assert gc.get_freeze_count() >= len(alive)
        assert gc.get_threshold() == (max(YOUNG_THRESHOLD, before[0]), *before[1:])
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before


def test_garbage_cycles_are_collected_before_freezing() -> None:
    class Node:
        other: Node

    gc.disable()  # no automatic pass may collect the cycle before the block does
    try:
        a, b = Node(), Node()
        a.other, b.other = b, a
        ref = weakref.ref(a)
        del a, b
        assert ref() is not None
        with ingest_heap(10_000):
            assert ref() is None  # collected, not frozen for the length of the run
    finally:
        gc.enable()


def test_settings_are_restored_when_the_loop_fails() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), ingest_heap(10_000):
        raise RuntimeError("boom")
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before


def test_the_young_threshold_stays_above_the_batches_in_flight() -> None:
    assert young_threshold(1_000) == YOUNG_THRESHOLD
    assert young_threshold(10_000) == YOUNG_THRESHOLD
    assert young_threshold(25_000) == 125_000  # five consumed batches


def test_overlapping_loops_keep_the_settings_until_the_last_one_leaves() -> None:
    before = gc.get_threshold()
    with ingest_heap(10_000):
        with ingest_heap(25_000):  # a second worker of the same process, larger batches
            assert gc.get_threshold()[0] == young_threshold(25_000)
        assert gc.get_freeze_count() > 0  # the first worker's loop still runs
        assert gc.get_threshold()[0] == young_threshold(25_000)
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before

"""The worker's heap policy: what is alive after a load is frozen, garbage cycles still go."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from vsearch.serving import heap

pytestmark = pytest.mark.unit


class Node:
    """A cycle-forming object (reference counting alone never frees a cycle)."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def thawed() -> Iterator[None]:
    """Leave the test process's collector as it was found (nothing frozen)."""
    yield
    gc.unfreeze()


def test_settle_freezes_what_is_alive(thawed: None) -> None:
    kept = Node()
    heap.settle()
    assert gc.get_freeze_count() > 0
    # A full collection no longer walks the frozen objects: the kept one is not in any
    # generation the collector scans.
    assert all(o is not kept for g in range(3) for o in gc.get_objects(generation=g))


def test_settle_collects_the_previous_loads_cycles(thawed: None) -> None:
    """A cycle frozen by one load (the old pipeline's) is freed by the next load's settle."""
    old = Node()
    gone = weakref.ref(old)
    heap.settle()  # the first load: old is alive, so it is frozen
    del old  # the old pipeline retired: its cycle is now garbage, but frozen
    gc.collect()
    assert gone() is not None, "frozen garbage is not collected by a normal collection"
    heap.settle()  # the next load thaws and collects once
    assert gone() is None


def test_garbage_made_after_settle_is_still_collected(thawed: None) -> None:
    heap.settle()
    late = Node()
    gone = weakref.ref(late)
    del late
    gc.collect()
    assert gone() is None

"""The /search micro-batcher: alone when idle, merged while busy, answers to their callers."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest

from vsearch.serving.microbatch import MicroBatcher

pytestmark = pytest.mark.unit
WAIT_S = 10  # a guard against hanging, never reached when the code works


class Gate:
    """A batch function that records its batches and, while closed, holds the first one."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.fail_on = fail_on

    def __call__(self, items: list[str]) -> list[str]:
        self.batches.append(list(items))
        self.entered.set()
        assert self.release.wait(WAIT_S)
        if self.fail_on in items:
            raise ValueError(f"bad item {self.fail_on}")
        return [item.upper() for item in items]


async def _busy_then(gate: Gate, batcher: MicroBatcher, items: list[str]) -> list:
    """Occupy the only runner with "first", queue ``items`` behind it, then open the gate."""
    first = asyncio.ensure_future(batcher.submit("first"))
    await asyncio.to_thread(gate.entered.wait, WAIT_S)
    rest = [asyncio.ensure_future(batcher.submit(i)) for i in items]
    await asyncio.sleep(0)  # every submit has queued
    gate.release.set()
    return await asyncio.wait_for(
        asyncio.gather(first, *rest, return_exceptions=True), timeout=WAIT_S
    )


def test_a_lone_request_runs_at_once_and_queued_ones_merge_up_to_max_size() -> None:
    """One runner: it takes the whole queue, ``max_size`` at a time."""
    gate = Gate()
    batcher = MicroBatcher(gate, max_size=4, runners=1)
    answers = asyncio.run(_busy_then(gate, batcher, [f"q{i}" for i in range(6)]))

    assert answers == ["FIRST", *[f"Q{i}" for i in range(6)]]  # each caller its own answer
    assert gate.batches == [["first"], ["q0", "q1", "q2", "q3"], ["q4", "q5"]]
    assert batcher.batches == 3 and batcher.mean_batch_size == pytest.approx(7 / 3)


def test_runners_share_the_queue_so_none_sits_idle() -> None:
    """Two runners, one busy: the free one takes half the queue and leaves the rest for the
    other, instead of taking everything while a core idles."""
    gate = Gate()
    batcher = MicroBatcher(gate, max_size=32, runners=2)

    async def scenario() -> list:
        first = asyncio.ensure_future(batcher.submit("first"))
        await asyncio.to_thread(gate.entered.wait, WAIT_S)
        second = asyncio.ensure_future(batcher.submit("second"))  # the other runner, at once
        await asyncio.to_thread(wait_until, lambda: len(gate.batches) == 2)
        rest = [asyncio.ensure_future(batcher.submit(f"q{i}")) for i in range(6)]
        await asyncio.sleep(0)
        gate.release.set()
        return await asyncio.wait_for(asyncio.gather(first, second, *rest), timeout=WAIT_S)

    answers = asyncio.run(scenario())
    assert answers == ["FIRST", "SECOND", *[f"Q{i}" for i in range(6)]]
    # The first free runner takes 6 / 2 = 3, the second half of the 3 left, then the last one
    # (the two runner threads may enter the batch function in either order).
    assert [len(b) for b in gate.batches[:2]] == [1, 1]
    assert sorted(len(b) for b in gate.batches[2:]) == [1, 2, 3]


def wait_until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` (a guard against hanging, not a timing assertion)."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_a_failing_batch_fails_only_its_own_callers() -> None:
    gate = Gate(fail_on="first")
    batcher = MicroBatcher(gate, max_size=8, runners=1)
    answers = asyncio.run(_busy_then(gate, batcher, ["a", "b"]))

    assert isinstance(answers[0], ValueError) and "first" in str(answers[0])
    assert answers[1:] == ["A", "B"]


def test_a_caller_gone_before_its_batch_is_not_computed() -> None:
    gate = Gate()
    batcher = MicroBatcher(gate, max_size=8, runners=1)

    async def scenario() -> list:
        first = asyncio.ensure_future(batcher.submit("first"))
        await asyncio.to_thread(gate.entered.wait, WAIT_S)
        gone = asyncio.ensure_future(batcher.submit("gone"))
        kept = asyncio.ensure_future(batcher.submit("kept"))
        await asyncio.sleep(0)
        gone.cancel()
        gate.release.set()
        return await asyncio.wait_for(asyncio.gather(first, kept), timeout=WAIT_S)

    assert asyncio.run(scenario()) == ["FIRST", "KEPT"]
    assert gate.batches == [["first"], ["kept"]]


def test_sizes_are_checked() -> None:
    with pytest.raises(ValueError, match="max_size"):
        MicroBatcher(lambda items: items, max_size=0, runners=1)

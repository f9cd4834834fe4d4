"""The /search micro-batcher: alone when idle, merged while busy, answers to their callers."""

from __future__ import annotations

import asyncio
import threading

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
    gate = Gate()
    batcher = MicroBatcher(gate, max_size=4, runners=1)
    answers = asyncio.run(_busy_then(gate, batcher, [f"q{i}" for i in range(6)]))

    assert answers == ["FIRST", *[f"Q{i}" for i in range(6)]]  # each caller its own answer
    assert gate.batches == [["first"], ["q0", "q1", "q2", "q3"], ["q4", "q5"]]
    assert batcher.batches == 3 and batcher.mean_batch_size == pytest.approx(7 / 3)


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

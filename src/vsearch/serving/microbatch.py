"""Merge concurrent single-photo ``POST /search`` requests into one pipeline call.

Why our own batcher and not BentoML's ``@bentoml.api(batchable=True)``: ``/search`` is a route
of the mounted Starlette app (multipart upload, JSON 4xx for every refusal, see
:mod:`vsearch.serving.web`), and BentoML's dispatcher only batches its own API methods.

How it batches: *natural* batching, no waiting window. A request that finds a free runner runs
at once, alone (single-request latency is unchanged). Requests that arrive while every runner is
busy queue up; the next runner to become free takes its share of them as one batch (the queue
divided by ``runners``, at most ``max_size``: all cores stay busy). So
batches grow with the load: one photo per call when idle, many under load, where one forward
pass and one index search over ``n`` photos cost far less than ``n`` single ones on a CPU.

``runners`` batches run at once, each in a worker thread (``anyio.to_thread``), so the event
loop keeps accepting and parsing uploads meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import anyio.to_thread

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    """Queue items; ``run`` answers a list of them in one call (one answer per item, in order).

    Args:
        run: the batch function (runs in a worker thread); it answers every item, an exception
            it raises goes to every caller of that batch.
        max_size: most items one call gets.
        runners: calls running at once.
    """

    def __init__(self, run: Callable[[list[T]], Sequence[R]], max_size: int, runners: int) -> None:
        if max_size < 1 or runners < 1:
            raise ValueError(f"max_size and runners must be >= 1, got {max_size}, {runners}")
        self._run = run
        self.max_size = max_size
        self.runners = runners
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._busy = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0  # calls made
        self.items = 0  # items answered by them

    @property
    def mean_batch_size(self) -> float:
        return self.items / self.batches if self.batches else 0.0

    async def submit(self, item: T) -> R:
        """The answer to ``item``, computed in a batch with whatever else is queued."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._start_free_runners()
        return await future

    def _start_free_runners(self) -> None:
        while self._queue and self._busy < self.runners:
            # A fair share, not everything: a runner that took the whole queue would leave the
            # others idle (their cores too) until it finished.
            take = min(self.max_size, -(-len(self._queue) // self.runners))
            batch = self._queue[:take]
            del self._queue[:take]
            batch = [(i, f) for i, f in batch if not f.done()]  # callers gone: not computed
            if not batch:
                continue
            self._busy += 1
            task = asyncio.get_running_loop().create_task(self._answer(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _answer(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        items = [item for item, _ in batch]
        try:
            answers = await anyio.to_thread.run_sync(self._run, items)
            if len(answers) != len(items):
                raise RuntimeError(f"batch function answered {len(answers)} of {len(items)}")
        except Exception as exc:  # every caller of this batch gets it
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
        else:
            self.batches += 1
            self.items += len(items)
            for (_, future), answer in zip(batch, answers, strict=True):
                if not future.done():
                    future.set_result(answer)
        finally:
            for _, future in batch:  # cancelled on the way (shutdown): never leave one waiting
                if not future.done():
                    future.cancel()
            self._busy -= 1
            self._start_free_runners()

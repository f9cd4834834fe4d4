"""Render many images on a pool of worker processes, in chunks, with progress.

Why processes: rendering is CPU-bound Python + PIL, so threads would serialise on the GIL.
Why output never depends on the pool: each image seeds its own generator from its index
(see :func:`vsearch.world.render.image_rng`) and writes its own file, so the number of
workers, the chunking and the completion order change only the speed.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

from vsearch.world.render import Box, QueryJob, RenderContext, StudioJob, run_chunk

# "spawn" starts clean interpreters: safe whatever threads the parent has (progress bars,
# BLAS pools), and identical on every platform.
START_METHOD = "spawn"
# A worker costs ~2 s to start (imports, background photos, silhouettes): small jobs render
# in fewer processes, down to this process alone.
MIN_IMAGES_PER_WORKER = 200

Progress = Callable[[int, int], None]
LOG_STEPS = 10  # without a progress callback, log every 1/10 of the images

log = logging.getLogger(__name__)


def render_images(
    jobs: Sequence[StudioJob | QueryJob],
    ctx: RenderContext,
    workers: int,
    chunk_size: int,
    on_progress: Progress | None = None,
) -> dict[int, Box]:
    """Render every job to ``ctx.root``; returns the true box of each query by query index.

    Args:
        jobs: what to render; ideally grouped by product so each worker's sprite cache hits.
        ctx: output folder, seed and encoding.
        workers: processes at most; 1 (or a small job) renders in this process.
        chunk_size: jobs per pool task (amortises inter-process overhead).
        on_progress: called with (images done, images total) after every chunk; without
            it, progress is logged every tenth of the way.
    """
    if workers < 1 or chunk_size < 1:
        raise ValueError("workers and chunk_size must be >= 1")
    workers = max(1, min(workers, len(jobs) // MIN_IMAGES_PER_WORKER))
    chunks = [list(jobs[i : i + chunk_size]) for i in range(0, len(jobs), chunk_size)]
    boxes: dict[int, Box] = {}
    done = 0
    next_log = len(jobs) / LOG_STEPS

    def collect(results: list[tuple[str, int, Box | None]]) -> None:
        nonlocal done, next_log
        for kind, index, box in results:
            if kind == "query" and box is not None:
                boxes[index] = box
        done += len(results)
        if on_progress:
            on_progress(done, len(jobs))
        elif done >= next_log:
            log.info("rendered %d/%d images", done, len(jobs))
            next_log += len(jobs) / LOG_STEPS

    if workers == 1 or len(chunks) <= 1:
        for chunk in chunks:
            collect(run_chunk(chunk, ctx))
        return boxes
    context = multiprocessing.get_context(START_METHOD)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(run_chunk, chunk, ctx) for chunk in chunks]
        try:
            for future in as_completed(futures):
                collect(future.result())
        except BaseException:
            for f in futures:
                f.cancel()
            raise
    return boxes

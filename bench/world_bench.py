"""Demo-world generation throughput: images per second with 1 and with 2 worker processes.

Prints one JSON object per line (docs/contributing.md#measuring): the 1-process figure is the
baseline measured in the same run, the 2-process figure and their ratio follow. Machines here
are shared and noisy, so each figure is the best of ``--repeats`` runs (the median is printed
beside it) and the ratio is what to compare between runs, not the absolute rate. Output is
asserted nowhere: the tests check behaviour, this only measures.

Usage: ``python bench/world_bench.py [--items 600] [--queries 600] [--repeats 1]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from vsearch.settings import load_settings
from vsearch.world import generate_world

PROCESSES = (1, 2)


def _measure(params: Path, items: int, queries: int, processes: int, seed: int) -> float:
    """Seconds to generate one world (plan, render, write) with ``processes`` workers."""
    settings = load_settings(params).world
    with tempfile.TemporaryDirectory(prefix="world_bench_") as tmp:
        start = time.perf_counter()
        generate_world(
            settings,
            Path(tmp) / "drop",
            seed=seed,
            items=items,
            queries=queries,
            workers=processes,
        )
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--items", type=int, default=600, help="catalog listings per world")
    parser.add_argument("--queries", type=int, default=600, help="query photos per world")
    parser.add_argument("--repeats", type=int, default=1, help="runs per figure (best is kept)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    images = args.items + args.queries
    size = load_settings(args.params).world.image_size
    best: dict[int, float] = {}
    for processes in PROCESSES:
        runs = [
            _measure(args.params, args.items, args.queries, processes, args.seed)
            for _ in range(max(1, args.repeats))
        ]
        best[processes] = images / min(runs)
        print(
            json.dumps(
                {
                    "name": "world_images_per_s",
                    "value": round(best[processes], 2),
                    "unit": "img/s",
                    "processes": processes,
                    "median": round(images / statistics.median(runs), 2),
                    "repeats": len(runs),
                    "images": images,
                    "image_size": size,
                }
            ),
            flush=True,
        )
    base, top = PROCESSES[0], PROCESSES[-1]
    print(
        json.dumps(
            {
                "name": "world_parallel_speedup",
                "value": round(best[top] / best[base], 3),
                "unit": "ratio",
                "processes": top,
                "baseline": f"world_images_per_s processes={base}",
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":  # spawned render workers re-import this module: keep the guard
    sys.exit(main())

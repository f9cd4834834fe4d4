"""Ablation of the click signals training uses: all on, then each one off (``train.signals``).

    python -m bench.ablate_clicks                        # 400 listings, 1500 queries, 150 steps
    python -m bench.ablate_clicks --items 300 --steps 80 --set model.input_size=128

(run from the repository root.) One demo world is generated and mined once; then the same
training (same seed, same number of steps, this repository's ``params.yaml`` plus ``--set``
overrides) runs once with every signal and once with each signal switched off:

* ``virtual_ids`` — classes are virtual IDs; off: every listing its own class;
* ``propensity`` — query samples weigh 1 / examination propensity; off: 1;
* ``click_type`` — first / switch click weights from mining; off: every click 1;
* ``skip_above`` — skip-above negatives forced into the pair losses; off: not used at all.

Each model is scored by the project's evaluation (``score_model``) on the world's held-out
queries: ``click_recall@10`` (the first click's listing or its virtual ID among the results)
and, since this is a demo world, ``identical_recall@10``. Output: one JSON object per run on
stdout, then a Markdown table on stderr. Small worlds give noisy figures (a few hundred
held-out queries): differences of a few points are within noise.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

from bench.click_runs import METRICS, bench_settings, make_world, mine, train_and_score
from vsearch.settings import load_settings

SIGNALS = ("virtual_ids", "propensity", "click_type", "skip_above")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--items", type=int, default=400, help="catalog listings of the world")
    ap.add_argument("--queries", type=int, default=1500, help="query photos of the world")
    ap.add_argument("--world-seed", type=int, default=5)
    ap.add_argument("--steps", type=int, default=150, help="optimiser steps per training")
    ap.add_argument("--set", nargs="*", default=[], help="settings overrides key=value")
    ap.add_argument("--workdir", type=Path, default=None, help="keep files here (default: temp)")
    ap.add_argument(
        "--runs",
        nargs="*",
        default=["all", *SIGNALS],
        help="which runs: all (every signal) and/or signal names (that one off)",
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    base = bench_settings(load_settings(args.params), args.steps, args.set)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ablate-") as tmp:
        root = args.workdir or Path(tmp)
        drop, truth = make_world(base, root / "world", args.world_seed, args.items, args.queries)
        mining = mine(base, drop, truth, root / "mining")
        rows = []
        for name in args.runs:
            off = None if name == "all" else name
            s = base.model_copy(deep=True)
            if off is not None:
                setattr(s.train.signals, off, False)
            row = {"run": "all signals" if off is None else f"-{off}"}
            row.update(train_and_score(s, drop, mining, truth, root / f"train-{off or 'all'}"))
            print(json.dumps(row), flush=True)
            rows.append(row)
    head = "| run | " + " | ".join(METRICS) + " | steps |"
    lines = [head, "|" + "---|" * (len(METRICS) + 2)]
    for r in rows:
        cells = " | ".join(f"{r[m]:.3f}" if r[m] is not None else "n/a" for m in METRICS)
        lines.append(f"| {r['run']} | {cells} | {r['steps']} |")
    print("\n".join(lines), file=sys.stderr)
    print(f"total {time.perf_counter() - began:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()

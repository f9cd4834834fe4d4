"""Shared steps of the click-training benches: a small demo world, mining, a fixed-step training
run, and the project's evaluation on the held-out queries.

Used by ``bench/ablate_clicks.py`` (one world, training with each click signal switched off)
and ``bench/warm_start.py`` (three nights, each fine-tuning the previous night's model).
Training here is step-based (no time budget), so every run of one bench takes the same number
of optimiser steps whatever else the machine is doing; figures are still noisy for small
worlds (a few hundred held-out queries): read differences of a few points as noise.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from vsearch.settings import Settings, with_overrides

log = logging.getLogger(__name__)

#: Metrics printed per run (the evaluation report's names).
METRICS = ("click_recall@10", "identical_recall@10")


def bench_settings(settings: Settings, steps: int, overrides: list[str]) -> Settings:
    """``settings`` made step-based (``steps`` optimiser steps, no budget) and offline."""
    s = with_overrides(settings, overrides)
    s.train.time_budget_s = None
    s.train.epochs = 1
    s.train.steps_per_epoch = steps
    s.registry.track = False
    return s


def make_world(settings: Settings, root: Path, seed: int, items: int, queries: int) -> tuple:
    """Generate a demo-world drop and its truth under ``root`` (kept when already there);
    returns ``(drop, truth)``."""
    from vsearch.world import generate_world

    drop, truth = root / "drop", root / "truth"
    if (drop / "drop.json").is_file():  # a kept --workdir: the same world again
        return drop, truth
    generate_world(settings.world, drop, truth, seed=seed, items=items, queries=queries)
    return drop, truth


def mine(settings: Settings, drop: Path, truth: Path, out: Path) -> Path:
    """``vsearch mine`` on ``drop`` (held-out queries left out, as the nightly does), unless
    ``out`` holds a mining report already."""
    from vsearch.mining.stage import mine_drop

    if (out / "mining_report.json").is_file():  # a kept --workdir: mined already
        return out
    mine_drop(drop, out, settings.mining, seed=settings.project.seed, split=settings.split)
    return out


def train_and_score(
    settings: Settings,
    drop: Path,
    mining: Path,
    truth: Path,
    out: Path,
    warm_from: Path | None = None,
) -> dict[str, Any]:
    """Train into ``out`` and score its model on the drop's held-out queries.

    Returns:
        The metrics of :data:`METRICS`, plus ``steps``, ``train_s`` and ``warm_start``.
    """
    from vsearch.evaluation.stage import score_model
    from vsearch.training.stage import run_training

    started = time.perf_counter()
    report = run_training(
        settings, drop, mining, out, track=False, write_embeddings=False, warm_from=warm_from
    )
    train_s = time.perf_counter() - started
    inputs = {"drop": str(drop), "truth": str(truth), "mining": str(mining)}
    scored = score_model(settings, inputs, out / "model", Path("/"))
    row: dict[str, Any] = {k: scored["metrics"].get(k) for k in METRICS}
    row.update(
        steps=report["steps"],
        train_s=round(train_s, 1),
        warm_start=report["metrics"].get("warm_start"),
    )
    return row

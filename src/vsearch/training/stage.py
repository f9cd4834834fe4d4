"""The training stage: a drop and its mined clicks in, a run folder out, a report back.

Why a library function: ``vsearch train``, the flows and the tests run the same steps (pick the
labels, load the photos, spend what is left of the budget in :func:`vsearch.training.loop.train`,
log the run to MLflow) without going through the command line. The loop itself stays pure of
paths beyond its run folder; this module is the edge that knows which folders hold what.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from vsearch.contracts import has_truth
from vsearch.errors import BadInput
from vsearch.settings import Settings
from vsearch.trained import write_skipped
from vsearch.training.data import (
    ClickLabels,
    build_train_data,
    category_labels,
    load_click_labels,
    oracle_labels,
)
from vsearch.training.loop import train


def _check_label_choice(
    mining: Path | None, oracle_truth: Path | None, category_only: bool
) -> None:
    """Refuse a contradictory or incomplete label choice before any work (BadInput)."""
    if oracle_truth is not None and category_only:
        raise BadInput("--oracle-truth and --category-only are two different runs; pick one")
    if oracle_truth is None and mining is None:
        raise BadInput("--mining DIR is required (or --oracle-truth DIR for an oracle run)")


def choose_labels(
    drop: Path,
    mining: Path | None,
    *,
    oracle_truth: Path | None = None,
    category_only: bool = False,
) -> ClickLabels:
    """The run's identities: mined clicks, or the oracle's truth, or categories only.

    Raises:
        BadInput: both an oracle and a category-only run were asked for, or a click-trained
            (or category-only) run has no mining folder.
    """
    _check_label_choice(mining, oracle_truth, category_only)
    if oracle_truth is not None:
        return oracle_labels(oracle_truth, mining)
    if category_only:
        return category_labels(drop, mining)
    return load_click_labels(mining)


def run_training(
    settings: Settings,
    drop: Path,
    mining: Path | None,
    out: Path,
    *,
    oracle_truth: Path | None = None,
    category_only: bool = False,
    baseline: bool = False,
    resume: bool = False,
    time_budget_s: float | None = None,
    write_embeddings: bool = True,
    track: bool | None = None,
    started: float | None = None,
) -> dict[str, Any]:
    """Train on ``drop`` (labels from ``mining``, or the truth / categories) into ``out``.

    Args:
        settings: all settings (``model``, ``train``, ``split``, ``registry.track``, ...).
        drop: the drop folder (catalog, queries, images).
        mining: the mining outputs (:mod:`vsearch.mined`); optional for an oracle run only.
        out: the run folder (:mod:`vsearch.trained` names its files).
        oracle_truth: the demo truth folder: an ORACLE run on true product ids (upper bound).
        category_only: a BASELINE run with categories as the only identity.
        baseline: a comparison run: the budget is ``train.baseline_time_budget_s`` when set.
        resume: continue from ``out``'s checkpoint.
        time_budget_s: seconds for loading + training (``None``: from the settings); the
            export follows.
        write_embeddings: write the catalog's ``EmbeddingSet`` into ``out``.
        track: log the run to MLflow and register a click-trained model as challenger
            (``None``: ``registry.track``).
        started: ``time.perf_counter()`` when the budget started (the command's start);
            ``None``: now.

    Returns:
        The run's report (:meth:`vsearch.training.loop.TrainResult.to_dict` without the
        per-epoch rows, which are in the run folder's history), plus ``mlflow`` when tracked.

        An oracle run whose truth folder holds no ground truth (a real shop's drop) is skipped,
        never a failure: ``out`` then holds only ``skipped.json`` and the report is
        ``{"skipped": why}`` (the evaluation says the oracle baseline is missing and why).

    Raises:
        BadInput: the drop is not a folder, or the label choice is wrong (:func:`choose_labels`).
    """
    started = time.perf_counter() if started is None else started
    if not drop.is_dir():
        raise BadInput(f"--drop {drop}: not a folder")
    _check_label_choice(mining, oracle_truth, category_only)
    if oracle_truth is not None and not has_truth(oracle_truth):
        why = (
            f"no ground truth in {oracle_truth}: the oracle trains on true product ids, which "
            "only demo worlds have"
        )
        write_skipped(out, why)
        return {"skipped": why}
    labels = choose_labels(drop, mining, oracle_truth=oracle_truth, category_only=category_only)
    t = settings.train
    data = build_train_data(
        drop,
        labels,
        settings.model.input_size,
        split=settings.split,
        val_share=t.val_share,
        matte_threshold=t.augment.matte_threshold,
        seed=settings.project.seed,
        workers=t.decode_workers,
    )
    # The budget covers the whole stage: loading the photos already spent part of it.
    default = t.time_budget_s
    if baseline and t.baseline_time_budget_s is not None:
        default = t.baseline_time_budget_s
    budget = default if time_budget_s is None else time_budget_s
    if budget is not None:
        budget = max(0.0, budget - (time.perf_counter() - started))
    track = settings.registry.track if track is None else track
    with contextlib.ExitStack() as stack:
        tracker = None
        if track:
            from vsearch.tracking.tracker import TrainingTracker  # MLflow only when tracking

            inputs = {"drop": drop} | ({"mining": mining} if mining else {})
            if oracle_truth is not None:
                inputs["truth"] = oracle_truth
            tracker = stack.enter_context(
                TrainingTracker(settings, label_source=labels.source, inputs=inputs, run_folder=out)
            )
        result = train(
            settings,
            data,
            out,
            oracle=oracle_truth is not None,
            resume=resume,
            time_budget_s=budget,
            write_embeddings=write_embeddings,
            on_epoch=tracker.log_epoch if tracker else None,
        )
        report = result.to_dict()
        report.pop("epochs")
        if tracker is not None:
            report["mlflow"] = tracker.log_model(result.model_dir, result.metrics).to_dict()
    return report

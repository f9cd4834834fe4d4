"""The training stage: a drop and its mined clicks in, a run folder out, a report back.

Why a library function: ``vsearch train``, the flows and the tests run the same steps (pick the
labels, load the photos, spend what is left of the budget in :func:`vsearch.training.loop.train`,
log the run to MLflow) without going through the command line. The loop itself stays pure of
paths beyond its run folder; this module is the edge that knows which folders hold what.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
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
from vsearch.training.warm import WarmStart, read_warm_start, scratch

log = logging.getLogger(__name__)


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


def resolve_warm_start(
    settings: Settings,
    *,
    warm_from: Path | None,
    track: bool,
    comparison: bool,
) -> WarmStart | str:
    """The weights this run starts from, or the ``scratch: <reason>`` why it has none.

    ``warm_from`` (a model folder) wins; otherwise the registry's champion when the run is
    tracked. Comparison runs (oracle, category-only) always start from scratch: they measure
    the method on this data, not what the shipped model accumulated.

    Raises:
        BadInput: ``warm_from`` is not a loadable model folder.
    """
    if not settings.train.warm_start:
        return scratch("train.warm_start is false")
    if comparison:
        return scratch("comparison runs (oracle, category-only) train from scratch")
    if warm_from is not None:
        try:
            return read_warm_start(warm_from)
        except ValueError as exc:
            raise BadInput(f"--warm-from {warm_from}: {exc}") from None
    if not track:
        return scratch("not tracked in MLflow (no registry champion) and no --warm-from")
    from vsearch.tracking.champion import download_champion

    with tempfile.TemporaryDirectory(prefix="vsearch-champion-") as tmp:
        got = download_champion(settings, Path(tmp))
        if isinstance(got, str):
            return scratch(got)
        folder, label = got
        try:
            return read_warm_start(folder, label)
        except ValueError as exc:
            return scratch(f"{label}: {exc}")


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
    warm_from: Path | None = None,
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
        warm_from: a model folder to fine-tune (default: the registry's champion when
            tracked; see :func:`resolve_warm_start`). The report's ``metrics.warm_start`` says
            what the run started from, or ``scratch: <reason>``.

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
        signals=t.signals,
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
        warm = resolve_warm_start(
            settings,
            warm_from=warm_from,
            track=tracker is not None,
            comparison=oracle_truth is not None or category_only,
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
            warm=warm,
        )
        report = result.to_dict()
        report.pop("epochs")
        if tracker is not None:
            report["mlflow"] = tracker.log_model(result.model_dir, result.metrics).to_dict()
    return report

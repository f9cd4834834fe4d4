"""The evaluation stage: paths in, report files out (``vsearch evaluate`` and ``dvc repro``).

:func:`run_evaluation` loads the eval set (:mod:`~vsearch.evaluation.evalset`), measures the
model (:mod:`~vsearch.evaluation.measure`), attaches the latest baseline figures
(:mod:`~vsearch.evaluation.figures`) and writes what people, DVC and MLflow read:
``metrics.json``, ``per_query.csv``, ``plots/recall_at_k.csv`` and the PNGs, and the trained
model's loss curves (``loss_curves.png``, from its run's ``history.json``).
:func:`run_baselines` measures the baselines on the same eval set, off the nightly path (the
``baselines`` stage), into the figures file the next evaluation shows.

:func:`log_to_training_run` is the optional last step: the report, the plots and the loss
curves go into the MLflow run that trained the model.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vsearch.contracts import ITEM_TRUTH, QUERY_TRUTH, ContractError, read_table
from vsearch.errors import BadInput
from vsearch.evaluation.evalset import EvalSet, add_calibration_set, load_eval_set
from vsearch.evaluation.measure import evaluate_systems
from vsearch.evaluation.plots import (
    LOSS_CURVES_FILE,
    build_examples,
    plot_examples,
    plot_history,
    plot_recall_curves,
)
from vsearch.evaluation.report import (
    METRICS_FILE,
    MODEL,
    PLOTS_DIR,
    build_report,
    curve_frame,
    write_report,
)
from vsearch.evaluation.systems import build_baseline_systems, load_model_encoder
from vsearch.mined import read_query_virtual_ids, read_virtual_ids
from vsearch.settings import Settings
from vsearch.trained import MODEL_DIR, read_history

log = logging.getLogger(__name__)

LOSS_CURVES_ARTIFACT = "plots"  # MLflow artifact folder of the loss curves in the training run


def run_evaluation(
    settings: Settings,
    drop: Path,
    truth: Path | None,
    model_dir: Path,
    out: Path,
    figures: Path | None = None,
    workdir: Path | None = None,
    mining: Path | None = None,
) -> dict[str, Any]:
    """``vsearch evaluate``: evaluate the model, attach the latest baseline figures, write all.

    Writes ``out/metrics.json``, ``out/per_query.csv``, ``out/plots/recall_at_k.csv``, the PNGs
    under ``out/plots`` and ``out/loss_curves.png`` (when the model's run folder has a
    ``history.json``); returns the report. Only the model is measured here (the nightly
    path); the baselines come from ``figures`` as they were last measured
    (:func:`run_baselines`), dated, with their data.

    Args:
        settings: all settings (``evaluation``, ``split``, ``search``, ``index``, ``project``).
        drop: the drop folder (catalog, queries, images).
        truth: the drop's ground-truth folder; ``None`` or a folder without truth tables
            (``no_truth.json``, a real shop's drop): click metrics only.
        model_dir: a model folder, or a training run folder holding one in ``model/``.
        out: the report folder.
        figures: the baselines' figures file (``reports/baselines/metrics.json``); missing or
            ``None``: the report says none were measured yet.
        workdir: scratch folder for the index build (default: a temp folder).
        mining: the mining outputs the model trained on: their virtual IDs group listings of
            one product in the results (as the service does), and the report scores them
            against the truth (purity, coverage).
    """
    from vsearch.evaluation.figures import attach_figures, data_lineage, read_figures

    started = time.perf_counter()
    latest = read_figures(figures)  # a broken figures file fails before the measuring
    ev = prepare_eval_set(settings, drop, truth, mining)
    systems = {MODEL: load_model_encoder(settings, model_dir)}
    results = evaluate_systems(systems, ev, settings, workdir)
    report = build_report(results, {}, ev, settings.evaluation)
    report["inputs"] = {
        "drop": str(drop),
        "truth": str(truth) if truth is not None else None,
        "mining": str(mining) if mining is not None else None,
    }
    report["data"] = data_lineage(drop)
    if mining is not None and ev.has_truth and truth is not None:
        report["virtual_ids"] = _virtual_id_report(mining, truth)
    report = attach_figures(report, latest, settings.evaluation, figures)
    curves = curve_frame(results)
    paths = write_report(report, curves, results[MODEL].per_query, out)
    plots = out / PLOTS_DIR
    e = settings.evaluation
    plot_recall_curves(curves, plots / "recall_at_k.png", e.recall_ks)
    if e.examples and ev.has_truth:  # the grid frames true-product hits and true boxes
        examples = build_examples(
            results[MODEL], ev, e.examples, e.example_results, settings.project.seed
        )
        plot_examples(examples, ev.drop, plots / "examples.png", e.example_thumb_px)
    plot_training_history(training_run_folder(model_dir), out / LOSS_CURVES_FILE)
    log.info("evaluation written to %s (%.1f s)", paths["metrics"], time.perf_counter() - started)
    return report


def run_baselines(
    settings: Settings,
    drop: Path,
    truth: Path | None,
    architecture: Path,
    out: Path,
    baselines: Mapping[str, Path] | None = None,
    workdir: Path | None = None,
    mining: Path | None = None,
) -> dict[str, Any]:
    """``vsearch evaluate-baselines``: measure the baselines on the model's eval set.

    The same eval set, search pipeline and metrics as :func:`run_evaluation`, for the
    colour histogram, the untrained net (both copying ``architecture``'s model folder) and
    the model folders in ``baselines`` (``category_only``, ``oracle``). Writes the figures file
    ``out/metrics.json`` (:mod:`vsearch.evaluation.figures`) and returns its content.
    """
    from vsearch.evaluation.figures import FIGURES_FILE, build_figures, data_lineage
    from vsearch.fsio import atomic_write_text

    started = time.perf_counter()
    ev = prepare_eval_set(settings, drop, truth, mining)
    systems, skipped = build_baseline_systems(
        settings, architecture, baselines or {}, has_truth=ev.has_truth
    )
    results = evaluate_systems(systems, ev, settings, workdir)
    figures = build_figures(results, skipped, ev, data_lineage(drop))
    path = out / FIGURES_FILE
    atomic_write_text(path, json.dumps(figures, indent=2, allow_nan=False) + "\n")
    log.info("baseline figures written to %s (%.1f s)", path, time.perf_counter() - started)
    return figures


def prepare_eval_set(
    settings: Settings, drop: Path, truth: Path | None, mining: Path | None
) -> EvalSet:
    """The eval set of these inputs, with product groups and calibration queries as served."""
    from vsearch.search.groups import with_product_groups

    ev = load_eval_set(drop, truth, settings.split, mining)
    log.info(
        "%s: eval set %s: %d held-out queries (%s), %d with a click, %d listings",
        ev.drop_id,
        ev.eval_set_id,
        len(ev),
        "with truth" if ev.has_truth else "no truth: click metrics only",
        int(ev.clicked.sum()),
        len(ev.catalog),
    )
    ev.catalog = with_product_groups(ev.catalog, mining)
    if mining is not None:
        add_calibration_set(ev, drop, mining, settings)
    return ev


def score_model(
    settings: Settings,
    inputs: Mapping[str, str | None],
    model_dir: Path,
    root: Path,
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Re-score a model (the champion) on the eval set an evaluation report was measured on.

    Same code, same inputs (``inputs``: the report's ``drop``, ``truth``, ``mining`` paths,
    relative to ``root``), the model alone (no baselines, no plots, no latency): what the
    promotion gate compares the challenger with, so both stand on the same queries.

    Returns:
        ``{"metrics": {...}, "eval_set": {...}, "model_fingerprint": ...}``.

    Raises:
        BadInput: an input is missing or the model folder is not one.
    """

    def path(key: str) -> Path | None:
        value = inputs.get(key)
        if value is None:
            return None
        p = Path(value)
        return p if p.is_absolute() else root / p

    drop = path("drop")
    if drop is None:
        raise BadInput("the evaluation report names no drop: re-run `vsearch evaluate`")
    ev = prepare_eval_set(settings, drop, path("truth"), path("mining"))
    encoder = load_model_encoder(settings, model_dir)
    no_latency = settings.model_copy(
        update={"evaluation": settings.evaluation.model_copy(update={"latency_queries": 0})}
    )
    result = evaluate_systems({MODEL: encoder}, ev, no_latency, workdir)[MODEL]
    return {
        "metrics": result.metrics,
        "eval_set": ev.describe(),
        "model_fingerprint": result.fingerprint,
    }


def training_run_folder(model: Path) -> Path:
    """The training run folder of ``--model``: the folder itself when it holds ``model/``,
    else the model folder's parent (``runs/train/model`` → ``runs/train``)."""
    return model if (model / MODEL_DIR).is_dir() else model.parent


def plot_training_history(run_folder: Path, out: Path) -> Path | None:
    """The loss curves of a training run (its ``history.json``) as ``out``; ``None`` without.

    A stale ``out`` from an earlier evaluation is removed when there is nothing to draw, so it
    is never logged as this model's curves.
    """
    history = read_history(run_folder) or {}
    epochs = list(history.get("epochs") or [])
    png = plot_history(epochs, out)
    if png is None:
        out.unlink(missing_ok=True)
        log.info("%s: no training history; no loss curves", run_folder)
    return png


def log_to_training_run(settings: Settings, run_folder: Path, out: Path) -> dict[str, Any] | None:
    """Log the report in ``out`` to the MLflow run recorded in ``run_folder``.

    Numbers and ``metrics.json`` go in through :func:`vsearch.tracking.tracker.log_evaluation`
    (the PNGs of ``out/plots`` under ``evaluation/plots``); the loss curves go to
    ``plots/loss_curves.png``, where the training run has always shown them.

    Returns:
        ``{"run_id", "version"}``, or ``None`` when the run folder has no MLflow run record
        (an untracked model: nothing is logged).
    """
    import mlflow

    from vsearch.tracking.tracker import log_evaluation, read_run_info, resolve_tracking_uri

    info = read_run_info(run_folder)
    if not info:
        return None
    run_id = str(info["run_id"])
    log_evaluation(run_id, out / METRICS_FILE, out / PLOTS_DIR, settings=settings)
    curves = out / LOSS_CURVES_FILE
    if curves.is_file():
        client = mlflow.MlflowClient(resolve_tracking_uri(settings))
        client.log_artifact(run_id, str(curves), LOSS_CURVES_ARTIFACT)
    return {"run_id": info["run_id"], "version": info.get("version")}


def _virtual_id_report(mining: Path, truth: Path) -> dict[str, Any]:
    """Purity and coverage of the mined virtual IDs against the truth (report only)."""
    from vsearch.mining.quality import virtual_id_quality

    try:
        return virtual_id_quality(
            read_virtual_ids(mining),
            read_table(truth, ITEM_TRUTH),
            read_query_virtual_ids(mining),
            read_table(truth, QUERY_TRUTH),
        )
    except (OSError, ContractError) as exc:
        raise BadInput(f"--mining {mining}: {exc}") from None

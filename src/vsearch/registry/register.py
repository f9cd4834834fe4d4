"""Register a finished training run folder: track it in MLflow after the fact, in one call.

Why: training may run where the tracking server is unreachable (``--no-mlflow``), and a DVC
stage may be split from logging; the run folder (:mod:`vsearch.trained`'s layout) has everything
the tracker needs. It is the library of ``vsearch register`` and decides what a run folder
becomes in the registry; :mod:`vsearch.tracking` only logs what it is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from vsearch.errors import BadInput
from vsearch.settings import Settings
from vsearch.tracking.tracker import TrackedModel, TrainingTracker
from vsearch.trained import HISTORY_FILE, MODEL_DIR, read_history


def register_run(
    settings: Settings,
    run_folder: Path,
    *,
    inputs: Mapping[str, Path] | None = None,
    label_source: str | None = None,
    tracking_uri: str | None = None,
    repo_root: Path | None = None,
    register: bool | None = None,
) -> TrackedModel:
    """Track a finished training run folder (``history.json`` + ``model/``) in one call.

    The label source defaults to the one ``history.json`` recorded; the per-epoch rows become
    the run's ``train/*`` metrics, the model is logged and (click-trained by default)
    registered as the challenger.

    Raises:
        BadInput: the folder is not a finished training run.
    """
    hist, model_dir = read_history(run_folder), run_folder / MODEL_DIR
    if hist is None or not model_dir.is_dir():
        raise BadInput(
            f"{run_folder} is not a finished training run (needs {HISTORY_FILE} and "
            f"{MODEL_DIR}/); run `vsearch train --out {run_folder}` first"
        )
    metrics = hist.get("metrics") or {}
    source = label_source or str(metrics.get("label_source") or "clicks")
    with TrainingTracker(
        settings,
        label_source=source,
        inputs=inputs,
        run_folder=run_folder,
        tracking_uri=tracking_uri,
        repo_root=repo_root,
    ) as tracker:
        tracker.log_history(hist.get("epochs") or [])
        return tracker.log_model(model_dir, metrics, register=register)

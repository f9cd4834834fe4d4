"""What a training run writes: the layout of its output folder, shared by every reader.

Why a module of its own: evaluation, experiment tracking, the registry and the promotion read
a training run's folder; the names (and the history's writer and reader) live here once, so
none of them imports the training code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vsearch.fsio import atomic_write_json

CHECKPOINT_FILE = "checkpoint.pt"  # resumable state (weights, optimiser, epoch)
MODEL_DIR = "model"  # the exported model (weights + model.json), what load_model reads
EMBEDDINGS_DIR = "embeddings"  # the catalog's embeddings and codes from the final weights
HISTORY_FILE = "history.json"  # per-epoch losses and checks
RUN_INFO_FILE = "mlflow_run.json"  # the MLflow run (and registered version) of this run
SKIPPED_FILE = "skipped.json"  # a run that could not take place (an oracle without truth): why


def history_path(run_folder: Path) -> Path:
    """Where a run folder keeps its per-epoch history."""
    return Path(run_folder) / HISTORY_FILE


def write_history(run_folder: Path, epochs: list[dict[str, Any]], metrics: dict[str, Any]) -> Path:
    """Write ``{"epochs": [...], "metrics": {...}}`` atomically (epochs in order, keys as given)."""
    return atomic_write_json(
        history_path(run_folder),
        {"epochs": epochs, "metrics": metrics},
        sort_keys=False,
        default=None,
    )


def read_history(run_folder: Path) -> dict[str, Any] | None:
    """A run folder's history (``epochs``: per-epoch rows, ``metrics``: final figures).

    ``None`` when the folder has no history (no finished run there).
    """
    path = history_path(run_folder)
    return json.loads(path.read_text()) if path.is_file() else None


def write_skipped(run_folder: Path, reason: str) -> Path:
    """Record that this run was skipped, and why (the folder then holds nothing else).

    Why a file: a DVC stage must leave its output folder; readers (the evaluation's baselines)
    say the reason instead of failing on a missing model.
    """
    folder = Path(run_folder)
    folder.mkdir(parents=True, exist_ok=True)
    for child in folder.iterdir():  # an earlier run's model would pass for this one
        if child.name != SKIPPED_FILE:
            raise ValueError(f"{folder}: not empty ({child.name}); refusing to mark it skipped")
    return atomic_write_json(folder / SKIPPED_FILE, {"skipped": reason})


def read_skipped(run_folder: Path) -> str | None:
    """Why the run in ``run_folder`` was skipped, or ``None`` when it was not."""
    path = Path(run_folder) / SKIPPED_FILE
    if not path.is_file():
        return None
    return str(json.loads(path.read_text()).get("skipped") or "skipped")

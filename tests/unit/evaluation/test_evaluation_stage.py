"""The evaluation stage's own steps: the model's run folder, its loss curves, MLflow opt-out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vsearch.evaluation.plots import LOSS_CURVES_FILE
from vsearch.evaluation.stage import (
    log_to_training_run,
    plot_training_history,
    training_run_folder,
)
from vsearch.settings import Settings
from vsearch.trained import HISTORY_FILE, MODEL_DIR

pytestmark = pytest.mark.unit


def _run_folder(root: Path, epochs: list[dict]) -> Path:
    (root / MODEL_DIR).mkdir(parents=True)
    (root / HISTORY_FILE).write_text(json.dumps({"epochs": epochs, "metrics": {}}))
    return root


def test_training_run_folder_of_a_model_folder_or_a_run_folder(tmp_path: Path) -> None:
    run = _run_folder(tmp_path / "runs" / "train", [])
    assert training_run_folder(run / MODEL_DIR) == run
    assert training_run_folder(run) == run


def test_loss_curves_come_from_the_runs_history(tmp_path: Path) -> None:
    run = _run_folder(tmp_path / "run", [{"epoch": e, "total": 2.0 - e} for e in range(2)])
    out = tmp_path / "reports" / LOSS_CURVES_FILE
    png = plot_training_history(run, out)
    assert png == out and out.read_bytes()[:4] == b"\x89PNG"


def test_no_history_draws_nothing_and_removes_stale_curves(tmp_path: Path) -> None:
    out = tmp_path / "reports" / LOSS_CURVES_FILE
    out.parent.mkdir()
    out.write_bytes(b"an earlier model's curves")
    assert plot_training_history(tmp_path / "no-run", out) is None
    assert not out.exists()  # never logged as this model's curves
    empty = _run_folder(tmp_path / "empty", [])
    assert plot_training_history(empty, out) is None


def test_untracked_run_logs_nothing(tmp_path: Path) -> None:
    run = _run_folder(tmp_path / "run", [])
    assert log_to_training_run(Settings(), run, tmp_path / "reports") is None

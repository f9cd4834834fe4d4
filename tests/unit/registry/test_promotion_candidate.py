"""The promotion's candidate: a tracked, registered run whose evaluation is about its model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vsearch.errors import BadInput
from vsearch.registry.promotion import Candidate, load_candidate, release_calibration
from vsearch.trained import MODEL_DIR, RUN_INFO_FILE

pytestmark = pytest.mark.unit


def _run(tmp_path: Path, info: dict | None, fp: str = "f" * 64) -> Path:
    run = tmp_path / "run"
    (run / MODEL_DIR).mkdir(parents=True, exist_ok=True)
    (run / MODEL_DIR / "model.json").write_text(json.dumps({"fingerprint": fp}))
    if info is not None:
        (run / RUN_INFO_FILE).write_text(json.dumps(info))
    return run


def _metrics(tmp_path: Path, fp: str) -> Path:
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"model_fingerprint": fp, "identical_recall@10": 0.5}))
    return path


def test_a_registered_and_evaluated_run_is_a_candidate(tmp_path: Path) -> None:
    run = _run(tmp_path, {"run_id": "r", "version": "3"})
    cand = load_candidate(run, _metrics(tmp_path, "f" * 64))
    assert cand == Candidate(run, "f" * 64, "3", cand.metrics)
    assert cand.metrics["identical_recall@10"] == 0.5 and cand.model_dir == run / MODEL_DIR


def test_untracked_unregistered_or_misevaluated_runs_are_refused(tmp_path: Path) -> None:
    metrics = _metrics(tmp_path, "f" * 64)
    with pytest.raises(BadInput, match="no registered model"):
        load_candidate(_run(tmp_path, None), metrics)
    with pytest.raises(BadInput, match="not registered as a version"):
        load_candidate(_run(tmp_path, {"run_id": "r", "version": None}), metrics)
    run = _run(tmp_path, {"run_id": "r", "version": "3"})
    with pytest.raises(BadInput, match="no evaluation"):
        load_candidate(run, tmp_path / "missing.json")
    with pytest.raises(BadInput, match="re-run the evaluation"):
        load_candidate(run, _metrics(tmp_path, "0" * 64))


def test_the_release_carries_the_calibrated_weight_and_temperature() -> None:
    measured = {"fusion_weight": 0.6, "vote_temperature": 0.02, "fusion_calibration_queries": 9}
    assert release_calibration(measured) == {"fusion_weight": 0.6, "vote_temperature": 0.02}
    assert release_calibration({"fusion_weight": 0.6, "vote_temperature": None}) == {
        "fusion_weight": 0.6  # a linear vote: the service then serves search.vote_temperature
    }
    assert release_calibration({"fusion_weight": None, "vote_temperature": 0.05}) is None

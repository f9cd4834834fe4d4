"""The training stage without ground truth: an oracle run is skipped, never a failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from vsearch.contracts import NO_TRUTH_FILE, has_truth
from vsearch.data.ingest import write_no_truth
from vsearch.errors import BadInput
from vsearch.settings import Settings
from vsearch.trained import SKIPPED_FILE, read_skipped, write_skipped
from vsearch.training.stage import run_training

pytestmark = pytest.mark.unit


def test_a_drop_without_truth_gets_a_marker_folder(tmp_path: Path) -> None:
    folder = write_no_truth(tmp_path / "truth", "shop-1")
    assert folder == tmp_path / "truth" / "shop-1" and (folder / NO_TRUTH_FILE).is_file()
    assert not has_truth(folder) and not has_truth(tmp_path / "nope") and not has_truth(None)
    with pytest.raises(BadInput, match="already exists"):
        write_no_truth(tmp_path / "truth", "shop-1")  # never overwrite a drop's truth folder


def test_oracle_without_truth_is_skipped_with_the_reason(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    truth = write_no_truth(tmp_path / "truth", "shop-1")
    out = tmp_path / "runs" / "oracle"
    report = run_training(Settings(), drop, None, out, oracle_truth=truth, track=False)
    assert "no ground truth" in report["skipped"]
    assert [p.name for p in out.iterdir()] == [SKIPPED_FILE]
    assert read_skipped(out) == report["skipped"]
    assert read_skipped(tmp_path) is None


def test_a_run_folder_with_a_model_is_never_marked_skipped(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    with pytest.raises(ValueError, match="not empty"):
        write_skipped(tmp_path, "why")

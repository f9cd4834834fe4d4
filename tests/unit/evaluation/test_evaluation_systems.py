"""The systems: the model's baselines as encoders (built-ins copy a reference model folder);
missing baselines skipped, not fatal; the model itself is not among them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import kit
from vsearch.errors import BadInput
from vsearch.evaluation.baselines import COLOUR_HISTOGRAM, UNTRAINED, ColourHistogramEncoder
from vsearch.evaluation.report import MODEL
from vsearch.evaluation.systems import build_baseline_systems, resolve_model_dir
from vsearch.model.export import save_model
from vsearch.settings import Settings
from vsearch.trained import MODEL_DIR

pytestmark = pytest.mark.unit

CATS = ("bag", "cup", "hat")


def _model(folder: Path) -> Path:
    net = kit.tiny_net(CATS, seed=0, widths=(4, 8, 8, 16), embedding_dim=8, bits=16)
    save_model(net, folder, {"name": "m"})
    return folder


def _settings() -> Settings:
    s = Settings()
    s.project.device = "cpu"
    s.evaluation.histogram_bins = 2
    return s


def test_model_folder_or_run_folder(tmp_path: Path) -> None:
    model = _model(tmp_path / "run" / MODEL_DIR)
    assert resolve_model_dir(model) == model
    assert resolve_model_dir(tmp_path / "run") == model
    with pytest.raises(BadInput, match="not a model folder"):
        resolve_model_dir(tmp_path)


def test_builtin_systems_and_skipped_baselines(tmp_path: Path) -> None:
    category = _model(tmp_path / "category" / MODEL_DIR)
    systems, skipped = build_baseline_systems(
        _settings(), category, {"category_only": category.parent, "mine": tmp_path / "nothing"}
    )
    assert list(systems) == [COLOUR_HISTOGRAM, UNTRAINED, "category_only"]
    assert MODEL not in systems  # the model is evaluated on the nightly path, not here
    assert isinstance(systems[COLOUR_HISTOGRAM], ColourHistogramEncoder)
    assert systems[COLOUR_HISTOGRAM].input_size == 64  # decoded at the reference's size
    assert systems[COLOUR_HISTOGRAM].categories == list(CATS)
    assert systems[UNTRAINED].fingerprint != systems["category_only"].fingerprint
    assert set(skipped) == {"mine", "oracle"}
    assert "not a model folder" in skipped["mine"] and "not given" in skipped["oracle"]


def test_without_truth_the_oracle_is_skipped_with_a_note(tmp_path: Path) -> None:
    category = _model(tmp_path / "category" / MODEL_DIR)
    oracle = _model(tmp_path / "oracle" / MODEL_DIR)
    systems, skipped = build_baseline_systems(
        _settings(), category, {"oracle": oracle}, has_truth=False
    )
    assert "oracle" not in systems and "ground truth" in skipped["oracle"]


def test_a_baseline_may_not_take_a_builtin_name(tmp_path: Path) -> None:
    model = _model(tmp_path / MODEL_DIR)
    with pytest.raises(BadInput, match="built-in"):
        build_baseline_systems(_settings(), model, {UNTRAINED: model})


def test_the_reference_must_be_a_model_folder(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="not a model folder"):
        build_baseline_systems(_settings(), tmp_path, {})

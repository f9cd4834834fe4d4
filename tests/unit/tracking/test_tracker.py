"""The tracker's pure helpers: MLflow-legal names, flattened metrics, the params of a run."""

from __future__ import annotations

import pytest

from vsearch.settings import Settings
from vsearch.tracking.tracker import metric_key, numeric_metrics, settings_params

pytestmark = pytest.mark.unit


def test_metric_keys_are_mlflow_legal() -> None:
    assert metric_key("identical_recall@10") == "identical_recall_at_10"
    assert metric_key("map@r") == "map_at_r"
    assert metric_key("a/b c.d-e:f") == "a/b c.d-e:f"
    assert metric_key("x[1]") == "x_1_"


def test_numeric_metrics_flatten_the_evaluation_report() -> None:
    report = {
        "identical_recall@10": 0.5,
        "model": {"identical_recall@10": 0.5, "box_iou_mean": None},
        "baselines": {"oracle": {"identical_recall@10": 0.7}, "colour": {"skipped": "why"}},
        "targets": {"identical_recall@10": {"met": True}},
        "warnings": ["x"],
        "nan": float("nan"),
    }
    assert numeric_metrics(report, "eval") == {
        "eval/identical_recall_at_10": 0.5,
        "eval/model/identical_recall_at_10": 0.5,
        "eval/baselines/oracle/identical_recall_at_10": 0.7,
        "eval/targets/identical_recall_at_10/met": 1.0,
    }


def test_settings_params_cover_model_train_and_seed() -> None:
    p = settings_params(Settings())
    assert p["project.seed"] == "7" and p["model.backbone"] == "narrow"
    assert p["train.augment.scale"] == "[0.3, 0.85]" and "train.loss.proxy" in p
    assert all(len(v) < 6000 for v in p.values())

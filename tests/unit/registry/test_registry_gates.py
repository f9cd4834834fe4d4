"""Release gates on hand values; the tracker's pure helpers (names, flattening, hashes, plots)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from vsearch.errors import GateFailed
from vsearch.registry.gates import evaluate_gates, evaluate_release_gates
from vsearch.settings import GatesSettings, Settings, SettingsError, settings_from_dict
from vsearch.tracking.tracker import (
    input_hash,
    metric_key,
    numeric_metrics,
    plot_history,
    settings_params,
)

pytestmark = pytest.mark.unit

FLOORS = {"identical_recall@10": 0.30, "category_acc_fused": 0.60, "latency_p95_ms": 500.0}
TOLS = {"identical_recall@10": 0.03, "category_acc_fused": 0.02, "latency_p95_ms": 0.5}
LOWER = ["latency_p95_ms"]


def gates(challenger: dict, champion: dict | None):
    return evaluate_gates(challenger, champion, FLOORS, TOLS, lower_is_better=LOWER, relative=LOWER)


def by_name(report) -> dict:
    return {g.name: g for g in report.gates}


def test_first_model_needs_only_the_floors() -> None:
    rep = gates({"identical_recall@10": 0.5, "category_acc_fused": 0.7, "latency_p95_ms": 40}, None)
    assert rep.passed and len(rep.gates) == 3  # no champion: no regression checks
    g = by_name(rep)
    assert g["identical_recall@10 floor"].margin == pytest.approx(0.2)
    assert g["latency_p95_ms ceiling"].margin == pytest.approx(460.0)  # lower is better
    rep.raise_if_failed()  # no exception


def test_floor_failure_is_named_with_its_margin() -> None:
    rep = gates(
        {"identical_recall@10": 0.25, "category_acc_fused": 0.7, "latency_p95_ms": 40}, None
    )
    assert not rep.passed
    (fail,) = rep.failures
    assert fail.name == "identical_recall@10 floor" and fail.margin == pytest.approx(-0.05)
    with pytest.raises(GateFailed, match=r"identical_recall@10 floor: 0\.25 vs bar 0\.3"):
        rep.raise_if_failed()


def test_latency_ceiling_fails_when_too_slow() -> None:
    rep = gates(
        {"identical_recall@10": 0.5, "category_acc_fused": 0.7, "latency_p95_ms": 501}, None
    )
    assert [g.name for g in rep.failures] == ["latency_p95_ms ceiling"]


def test_regression_within_tolerance_passes_beyond_fails() -> None:
    champ = {"identical_recall@10": 0.60, "category_acc_fused": 0.80, "latency_p95_ms": 40.0}
    ok = gates(
        {"identical_recall@10": 0.57, "category_acc_fused": 0.79, "latency_p95_ms": 60}, champ
    )
    assert ok.passed, ok.markdown()  # 0.57 == 0.60 - 0.03 exactly: at the bar passes
    g = by_name(ok)["latency_p95_ms vs champion"]
    assert g.threshold == pytest.approx(60.0) and g.reference == 40.0  # relative: 40 * 1.5
    bad = gates(
        {"identical_recall@10": 0.56, "category_acc_fused": 0.79, "latency_p95_ms": 61}, champ
    )
    assert {g.name for g in bad.failures} == {
        "identical_recall@10 vs champion",
        "latency_p95_ms vs champion",
    }
    assert by_name(bad)["identical_recall@10 vs champion"].margin == pytest.approx(-0.01)


def test_better_than_champion_passes_with_positive_margin() -> None:
    champ = {"identical_recall@10": 0.40, "category_acc_fused": 0.70, "latency_p95_ms": 50.0}
    rep = gates(
        {"identical_recall@10": 0.5, "category_acc_fused": 0.9, "latency_p95_ms": 30}, champ
    )
    assert rep.passed and all(g.margin > 0 for g in rep.gates)


def test_missing_or_nan_challenger_metric_fails_missing_champion_metric_skips() -> None:
    champ = {"identical_recall@10": 0.4, "category_acc_fused": 0.7}  # old champion: no latency
    rep = gates({"identical_recall@10": 0.5, "category_acc_fused": float("nan")}, champ)
    failed = {g.name for g in rep.failures}
    assert failed == {
        "category_acc_fused floor",
        "category_acc_fused vs champion",
        "latency_p95_ms ceiling",
        "latency_p95_ms vs champion",
    }
    rep2 = gates(
        {"identical_recall@10": 0.5, "category_acc_fused": 0.7, "latency_p95_ms": 9}, champ
    )
    g = by_name(rep2)["latency_p95_ms vs champion"]
    assert rep2.passed and g.reference is None and "champion has no value" in g.note


def test_report_renders_markdown_and_dict() -> None:
    rep = gates({"identical_recall@10": 0.2, "category_acc_fused": 0.7, "latency_p95_ms": 40}, None)
    md = rep.markdown()
    assert "FAILED" in md and "| identical_recall@10 floor | 0.2 | 0.3 | 0.3 | -0.1 |" in md
    d = rep.to_dict()
    assert d["passed"] is False and len(d["gates"]) == 3
    json.dumps(d)  # JSON-safe for Prefect artifacts


def test_negative_tolerance_is_refused() -> None:
    with pytest.raises(ValueError, match="tolerance"):
        evaluate_gates({"a": 1.0}, {"a": 1.0}, {}, {"a": -0.1})


def test_release_gates_read_params_yaml(params_path: Path) -> None:
    s = settings_from_dict(yaml.safe_load(params_path.read_text()), environ={})
    g = s.registry.gates
    assert "latency_p95_ms" in g.lower_is_better
    rep = evaluate_release_gates(
        {"identical_recall@10": 0.9, "category_acc_fused": 0.9, "latency_p95_ms": 1.0}, None, g
    )
    assert rep.passed
    assert s.registry.model_name == s.model.name  # null in params: one name everywhere


def test_gate_settings_refuse_stray_names_and_negative_tolerances() -> None:
    with pytest.raises(SettingsError, match="neither a floor nor a tolerance"):
        settings_from_dict({"registry": {"gates": {"lower_is_better": ["nope"]}}}, environ={})
    with pytest.raises(SettingsError, match="tolerances must be >= 0"):
        settings_from_dict({"registry": {"gates": {"tolerances": {"x": -1}}}}, environ={})
    assert GatesSettings().floors  # defaults gate something


# --- tracking helpers -----------------------------------------------------------------------


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


def test_input_hash_prefers_dvc_file_then_dvc_lock_then_computes(tmp_path: Path) -> None:
    drop = tmp_path / "data" / "raw" / "d1"
    drop.mkdir(parents=True)
    (drop / "catalog.csv").write_text("item_id\n1\n")
    (tmp_path / "data" / "raw" / "d1.dvc").write_text(
        yaml.safe_dump({"outs": [{"md5": "abc.dir", "path": "d1"}]})
    )
    assert input_hash(drop, tmp_path) == ("abc.dir", "dvc")
    mining = tmp_path / "runs" / "mining"
    mining.mkdir(parents=True)
    (mining / "pairs.parquet").write_bytes(b"123")
    lock = {
        "schema": "2.0",
        "stages": {"mine": {"outs": [{"path": "runs/mining", "md5": "m.dir"}]}},
    }
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    assert input_hash(mining, tmp_path) == ("m.dir", "dvc.lock")
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "f").write_bytes(b"123")
    digest, source = input_hash(other, tmp_path)
    assert source == "computed" and len(digest) == 64
    (other / "f").write_bytes(b"124")
    assert input_hash(other, tmp_path)[0] != digest  # the bytes are pinned


def test_plot_history_draws_every_series(tmp_path: Path) -> None:
    history = [
        {"epoch": e, "total": 3.0 - e, "proxy": 1.0 / (e + 1), "lr": 0.002} for e in range(3)
    ]
    png = plot_history(history, tmp_path / "curves.png")
    assert png is not None and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_history([], tmp_path / "none.png") is None


def test_flow_run_id_comes_from_argument_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from vsearch.tracking.tracker import current_flow_run_id

    monkeypatch.delenv("PREFECT__FLOW_RUN_ID", raising=False)
    monkeypatch.setenv("VSEARCH_FLOW_RUN_ID", "from-env")
    assert current_flow_run_id("given") == "given"
    assert current_flow_run_id() == "from-env"

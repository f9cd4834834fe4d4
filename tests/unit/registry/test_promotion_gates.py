"""The promotion gates on hand values and from params.yaml."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from vsearch.errors import GateFailed
from vsearch.registry.gates import evaluate_gates, evaluate_promotion_gates
from vsearch.settings import GatesSettings, SettingsError, settings_from_dict

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


def test_promotion_gates_read_params_yaml(params_path: Path) -> None:
    s = settings_from_dict(yaml.safe_load(params_path.read_text()), environ={})
    g = s.registry.gates
    assert "latency_p95_ms" in g.lower_is_better
    rep = evaluate_promotion_gates(
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


# -- eval sets, fail closed, click gates -----------------------------------------------------

GOOD = {"identical_recall@10": 0.5, "category_acc_fused": 0.7, "latency_p95_ms": 40}
SAME = {"*": "drop:time0.2:300q:abc", "latency_p95_ms": "candidate load run"}


def test_every_gate_names_the_eval_set_of_both_values() -> None:
    champ = dict(GOOD)
    rep = evaluate_gates(
        GOOD, champ, FLOORS, TOLS, LOWER, LOWER,
        challenger_sources=SAME,
        champion_sources={"*": SAME["*"], "latency_p95_ms": "champion's own load run"},
    )  # fmt: skip
    assert rep.passed, rep.markdown()
    g = by_name(rep)
    assert g["identical_recall@10 floor"].eval_set == SAME["*"]
    assert g["identical_recall@10 vs champion"].reference_eval_set == SAME["*"]
    assert g["latency_p95_ms vs champion"].eval_set == "candidate load run"
    assert g["latency_p95_ms vs champion"].reference_eval_set == "champion's own load run"
    assert SAME["*"] in rep.markdown()


def test_a_champion_measured_on_another_eval_set_fails_its_regression_checks() -> None:
    rep = evaluate_gates(
        GOOD, dict(GOOD), FLOORS, TOLS, LOWER, LOWER,
        challenger_sources=SAME, champion_sources={"*": "drop:time0.2:250q:old"},
    )  # fmt: skip
    assert {g.name for g in rep.failures} == {
        "identical_recall@10 vs champion",
        "category_acc_fused vs champion",
    }  # latency names its own load runs on both sides: compared as such
    assert all("different eval sets" in g.note for g in rep.failures)


def test_an_unreadable_champion_fails_the_gate_with_the_reason() -> None:
    why = "champion version 3 could not be loaded: BadInput: cannot download raw_model/"
    rep = evaluate_gates(GOOD, None, FLOORS, TOLS, LOWER, LOWER, champion_error=why)
    assert not rep.passed
    (fail,) = rep.failures
    assert fail.kind == "reference" and fail.note == why
    with pytest.raises(GateFailed, match="could not be loaded"):
        rep.raise_if_failed()
    first = evaluate_gates(GOOD, None, FLOORS, TOLS, LOWER, LOWER)  # no champion at all
    assert first.passed


def test_without_truth_the_click_gates_apply() -> None:
    g = GatesSettings()
    clicks = {"click_recall@10": 0.6, "click_category_acc_fused": 0.8, "latency_p95_ms": 40}
    rep = evaluate_promotion_gates(clicks, None, g, has_truth=False)
    assert rep.passed and rep.family == "click"
    assert {x.metric for x in rep.gates} == set(g.click_floors)
    truth_rep = evaluate_promotion_gates(clicks, None, g, has_truth=True)
    assert not truth_rep.passed and truth_rep.family == "truth"  # no truth metrics: fails
    forced = GatesSettings(family="click")
    assert evaluate_promotion_gates(clicks, None, forced, has_truth=True).family == "click"

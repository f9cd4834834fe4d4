"""``vsearch evaluate-baselines`` then ``vsearch evaluate`` end to end on the tiny demo world,
through the real search pipeline.

A tiny *untrained* network stands in for the trained model (its numbers are meaningless; the
test checks that the stages measure the right queries, write every output and keep every
metric in range), with a second tiny net as the ``category_only`` baseline (and the reference
the built-in baselines copy) and a missing ``oracle`` folder that must be skipped with a
warning. The model's report shows the figures the baselines stage wrote, dated.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from tests import kit
from tests.kit import tiny_settings
from vsearch.cli import app
from vsearch.contracts import CATALOG, QUERIES, read_table
from vsearch.evaluation.report import build_report
from vsearch.mining.stage import mine_drop
from vsearch.model.export import save_model
from vsearch.model.net import NetConfig, VSearchNet
from vsearch.settings import EvaluationSettings, Settings
from vsearch.split import is_held_out
from vsearch.training.data import oracle_labels

SPEC_KEYS = (
    "identical_recall@1",
    "identical_recall@10",
    "map@r",
    "category_acc_model",
    "category_acc_search",
    "category_acc_fused",
    "box_iou_mean",
    "binary_retention@10",
    "identical_recall@10_true_box",
    "category_acc_fused_true_box",
)


def _tiny_model(settings: Settings, categories: list[str], seed: int, out: Path) -> Path:
    torch.manual_seed(seed)
    net = VSearchNet(NetConfig.from_settings(settings.model, categories))
    save_model(net, out, {"name": "tiny", "version": "1"})
    return out


@pytest.mark.integration
def test_evaluate_cli_on_held_out_queries(tiny_world, tmp_path: Path) -> None:
    drop, truth = tiny_world
    s = tiny_settings()
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(s.model_dump(mode="json")))
    categories = sorted(read_table(drop, CATALOG)["category"].astype(str).unique())
    model = _tiny_model(s, categories, 0, tmp_path / "model")
    category_only = _tiny_model(s, categories, 1, tmp_path / "category" / "model")
    out = tmp_path / "reports"
    mine_drop(drop, tmp_path / "mining", s.mining)
    common = ["--drop", str(drop), "--truth", str(truth), "--mining", str(tmp_path / "mining")]
    args = ["--params", str(params), "evaluate-baselines", *common, "--json"]
    args += ["--architecture", str(category_only), "--out", str(out / "baselines")]
    args += ["--baseline", f"category_only={category_only.parent}"]  # a run folder works too
    args += ["--baseline", f"oracle={tmp_path / 'no-such-model'}"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    figures = json.loads((out / "baselines" / "metrics.json").read_text())
    assert json.loads(res.stdout) == figures
    assert figures["measured_at"] and figures["data"]["id"] == figures["eval_set"]["drop"]
    assert "model" not in figures["baselines"]

    args = ["--params", str(params), "evaluate", *common, "--model", str(model)]
    args += ["--out", str(out), "--json", "--no-mlflow"]
    args += ["--baseline-figures", str(out / "baselines" / "metrics.json")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output

    report = json.loads((out / "metrics.json").read_text())
    assert report["baselines"] == figures["baselines"]
    assert report["baseline_figures"]["same_data"] is True
    assert report["baseline_figures"]["measured_at"] == figures["measured_at"]
    assert report["seconds"].keys() == {"model"}  # only the model was measured here
    printed = json.loads(res.stdout)
    assert 0 <= printed["virtual_ids"]["purity"] <= 1  # mined groups scored against the truth
    assert "coverage" in printed["virtual_ids"]
    # the fusion weight was calibrated on validation queries: neither trained on nor held out
    assert printed["model"]["fusion_weight"] in s.evaluation.fusion_grid
    assert printed["model"]["fusion_calibration_queries"] > 0
    model_m = report["model"]
    for key in SPEC_KEYS:
        assert key in model_m, key
        assert report[key] == model_m[key]  # flat copy for `dvc metrics`
    for name, m in [("model", model_m), *report["baselines"].items()]:
        if "skipped" in m:
            continue
        for key in SPEC_KEYS:
            v = m[key]
            if key == "binary_retention@10":
                assert v is None or v >= 0, (name, key, v)
            elif not (name == "colour_histogram" and key == "category_acc_model"):
                assert v is not None and 0.0 <= v <= 1.0, (name, key, v)
    assert model_m["latency_p95_ms"] >= model_m["latency_p50_ms"] > 0
    _assert_honest_measures(model_m, report["baselines"], s)
    for m in (model_m, report["baselines"]["untrained"]):  # a head hit is also a group hit
        assert m["identical_recall@10_heads"] <= m["identical_recall@10"]
        assert m["group_size_mean"] >= 1
        assert m["group_purity"] is None or 0 <= m["group_purity"] <= 1
    hist = report["baselines"]["colour_histogram"]
    assert hist["category_acc_model"] is None  # no classifier
    assert hist["box_iou_mean"] > 0  # the full frame overlaps every true box
    assert set(report["baselines"]) == {"colour_histogram", "untrained", "category_only", "oracle"}
    assert "skipped" in report["baselines"]["oracle"]
    assert any("oracle" in w for w in report["baseline_figures"]["notes"])
    assert "model_vs_colour_histogram_identical_recall@10" in report["ratios"]
    assert "model_vs_oracle_identical_recall@10" not in report["ratios"]
    assert report["targets"]["oracle_ratio"]["met"] is None
    assert set(report["targets"]) == set(s.evaluation.targets)

    # exactly the held-out queries, none of which training can load
    queries = read_table(drop, QUERIES)
    ids = queries["query_id"].astype(str)
    held = set(ids[is_held_out(queries, s.split)])
    per_query = pd.read_csv(out / "per_query.csv", dtype={"query_id": str})
    assert set(per_query["query_id"]) == held and len(per_query) == report["queries"] == len(held)
    data = kit.train_data(drop, oracle_labels(truth), s)
    trained_on = set(data.query_ids) | set(data.val_query_ids)
    assert trained_on and not trained_on & held

    curves = pd.read_csv(out / "plots" / "recall_at_k.csv")
    assert list(curves.columns) == ["k", "system", "recall"]
    for system, part in curves.groupby("system"):
        assert part["k"].tolist() == list(range(1, s.evaluation.curve_max_k + 1)), system
        assert (np.diff(part["recall"]) >= 0).all(), system
    model_curve = curves[curves["system"] == "model"].set_index("k")["recall"]
    assert model_curve[10] == pytest.approx(model_m["identical_recall@10"])
    for png in ("recall_at_k.png", "examples.png"):
        with Image.open(out / "plots" / png) as img:
            assert img.size[0] > 100 and img.size[1] > 100


def _assert_honest_measures(model_m: dict, baselines: dict, s: Settings) -> None:
    """Category accuracies in both families, retention within the searched categories,
    routing apart, recall vs partitions, IoU buckets, and the model's robustness report."""
    for fam in ("category_acc_", "click_category_acc_"):
        for who in ("model", "search" if fam == "category_acc_" else "vote", "fused"):
            assert 0 <= model_m[f"{fam}{who}"] <= 1, (fam, who)
    assert model_m["category_fused_beats_both"] in (0.0, 1.0)
    assert model_m["click_category_fused_beats_both"] in (0.0, 1.0)
    # binary vs exact over the searched categories; routing vs the whole catalog, apart
    assert model_m["binary_retention@10"] == pytest.approx(
        model_m["binary_recall@10"] / model_m["exact_recall@10_searched"]
    )
    if model_m["exact_recall@10"]:
        assert model_m["routing_retention@10"] == pytest.approx(
            model_m["exact_recall@10_searched"] / model_m["exact_recall@10"]
        )
    assert 1 <= model_m["partitions_searched_mean"] <= 1 + s.index.max_extra_categories
    parts = [model_m[f"routing@{t:g}_partitions_mean"] for t in sorted(s.index.tune_confidences)]
    assert parts == sorted(parts)  # a higher threshold never searches fewer partitions
    served = f"routing@{s.index.uncertain_confidence:g}"  # the release's threshold: params'
    partitions = model_m["partitions_searched_mean"]
    assert model_m[f"{served}_partitions_mean"] == pytest.approx(partitions)
    for key in ("identical_recall@10", "click_recall@10"):
        assert model_m[f"{served}_{key}"] == pytest.approx(model_m[key])  # the service's answer
        for t in s.index.tune_confidences:
            assert 0 <= model_m[f"routing@{t:g}_{key}"] <= 1
        for n in range(1, 2 + s.index.max_extra_categories):
            assert 0 <= model_m[f"partitions@{n}_{key}"] <= 1, (key, n)
        assert f"partitions@{2 + s.index.max_extra_categories}_{key}" not in model_m
    edges = s.evaluation.iou_buckets
    shares = [model_m[f"box_iou_{a:g}-{b:g}_share"] for a, b in itertools.pairwise(edges)]
    assert sum(shares) == pytest.approx(1.0)
    r = s.evaluation.robustness
    assert model_m["robust_box_queries"] == min(r.photos, model_m["queries_findable"])
    assert model_m["robust_reshot_listings"] > 0
    for g in r.box_growth:
        assert model_m[f"robust_box_grow{g:g}_minus_true_box"] == pytest.approx(
            model_m[f"robust_box_grow{g:g}_recall@10"] - model_m["robust_true_box_recall@10"]
        )
    for mode in ("studio", "cutout"):
        per_scale = [model_m[f"robust_reshot_{mode}_{x:g}_recall@10"] for x in r.reshot_scales]
        assert model_m[f"robust_reshot_{mode}_recall@10"] == pytest.approx(np.mean(per_scale))
    for name, m in baselines.items():  # robustness is the model's alone (it costs encodes)
        assert not any(k.startswith("robust_") for k in m), name


class _FakeEvalSet:
    drop_id = "d"
    without_truth = 1
    findable = np.array([True, False])
    has_truth = True
    clicked = np.array([True, True])

    def __len__(self) -> int:
        return 2

    def describe(self) -> dict:
        return {"id": "d:time0.2:2q:0", "truth": True}


def _result(metrics: dict, fingerprint: str = "f") -> SimpleNamespace:
    return SimpleNamespace(metrics=metrics, fingerprint=fingerprint, seconds=1.0, curve=[])


@pytest.mark.unit
def test_report_targets_and_ratios() -> None:
    ev = _FakeEvalSet()
    e = EvaluationSettings(targets={"identical_recall@10": 0.5, "map@r": 0.9, "oracle_ratio": 0.8})
    results = {
        "model": _result({"identical_recall@10": 0.6, "map@r": float("nan")}),
        "oracle": _result({"identical_recall@10": 0.8}),
    }
    report = build_report(results, {"category_only": "skipped: not given"}, ev, e)
    assert report["identical_recall@10"] == 0.6 and report["map@r"] is None
    assert report["ratios"] == {"model_vs_oracle_identical_recall@10": pytest.approx(0.75)}
    t = report["targets"]
    assert t["identical_recall@10"]["met"] is True
    assert t["map@r"]["met"] is None  # not computable: never reported as met or failed
    assert t["oracle_ratio"] == {"target": 0.8, "value": pytest.approx(0.75), "met": False}
    assert report["baselines"]["category_only"] == {"skipped": "skipped: not given"}
    assert len(report["warnings"]) == 3  # skipped baseline, missing truth, unfindable query
    json.dumps(report, allow_nan=False)


@pytest.mark.unit
def test_unknown_target_is_refused() -> None:
    with pytest.raises(ValueError, match="identical_recall@11"):
        EvaluationSettings(targets={"identical_recall@11": 0.5})


@pytest.mark.unit
def test_bad_paths_exit_2_naming_the_problem(tiny_world, params_path, tmp_path: Path) -> None:
    drop, truth = tiny_world
    runner = CliRunner()
    base = [
        "--params",
        str(params_path),
        "evaluate",
        "--truth",
        str(truth),
        "--out",
        str(tmp_path / "r"),
    ]
    res = runner.invoke(app, [*base, "--drop", str(tmp_path / "nope"), "--model", str(tmp_path)])
    assert res.exit_code == 2 and "--drop" in res.output
    res = runner.invoke(app, [*base, "--drop", str(drop), "--model", str(tmp_path)])
    assert res.exit_code == 2 and "not a model folder" in res.output
    garbage = tmp_path / "figures.json"
    garbage.write_text("{")
    res = runner.invoke(
        app,
        [*base, "--drop", str(drop), "--model", str(tmp_path), "--baseline-figures", str(garbage)],
    )
    assert res.exit_code == 2 and "unreadable baseline figures" in res.output
    baselines = ["--params", str(params_path), "evaluate-baselines", "--drop", str(drop)]
    baselines += ["--architecture", str(tmp_path), "--out", str(tmp_path / "r")]
    res = runner.invoke(app, baselines)
    assert res.exit_code == 2 and "not a model folder" in res.output
    assert not (tmp_path / "r").exists()  # nothing written on bad input


@pytest.mark.integration
def test_evaluation_without_truth_reports_click_metrics_and_rescoring_matches(
    tiny_world, tmp_path: Path
) -> None:
    from vsearch.contracts import NO_TRUTH_FILE
    from vsearch.evaluation.stage import run_baselines, run_evaluation, score_model
    from vsearch.evaluation.systems import NO_TRUTH_NOTE
    from vsearch.trained import write_skipped

    drop, _ = tiny_world
    s = tiny_settings()
    categories = sorted(read_table(drop, CATALOG)["category"].astype(str).unique())
    model = _tiny_model(s, categories, 0, tmp_path / "model")
    mining = tmp_path / "mining"
    mine_drop(drop, mining, s.mining, split=s.split)
    no_truth = tmp_path / "truth"
    no_truth.mkdir()
    (no_truth / NO_TRUTH_FILE).write_text("{}")
    oracle = tmp_path / "oracle"
    write_skipped(oracle, "no ground truth")
    figures = tmp_path / "reports" / "baselines"
    run_baselines(s, drop, no_truth, model, figures, {"oracle": oracle / "model"}, None, mining)
    report = run_evaluation(
        s, drop, no_truth, model, tmp_path / "reports", figures / "metrics.json", None, mining
    )
    assert report["families"] == ["click"] and report["eval_set"]["truth"] is False
    model_m = report["model"]
    assert "identical_recall@10" not in model_m and "map@r" not in model_m
    for key in ("click_recall@1", "click_recall@10", "click_mrr", "click_category_acc_fused"):
        assert 0.0 <= model_m[key] <= 1.0, key
        assert report[key] == model_m[key]
    assert model_m["click_recall@1"] <= model_m["click_recall@10"]
    assert model_m["click_queries"] == report["eval_set"]["click_queries"] > 0
    assert report["baselines"]["oracle"] == {"skipped": NO_TRUTH_NOTE}
    assert "click_recall@10" in report["baselines"]["untrained"]
    queries = read_table(drop, QUERIES)
    held = set(queries["query_id"].astype(str)[is_held_out(queries, s.split)])
    per_query = pd.read_csv(tmp_path / "reports" / "per_query.csv", dtype={"query_id": str})
    assert set(per_query["query_id"]) <= held

    # the champion's re-score: the same inputs give the same eval set and the same figures
    scored = score_model(s, report["inputs"], model, tmp_path)
    assert scored["eval_set"] == report["eval_set"]
    for key in ("click_recall@10", "click_mrr", "click_category_acc_fused"):
        assert scored["metrics"][key] == pytest.approx(model_m[key]), key

"""Click metrics on hand-made data: the eval set without truth, hits through virtual IDs."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from vsearch.contracts import CATALOG, IMPRESSIONS, NO_TRUTH_FILE, QUERIES, write_table
from vsearch.errors import BadInput
from vsearch.evaluation.evalset import load_eval_set
from vsearch.evaluation.measure import _click_metrics
from vsearch.evaluation.metrics import mean_reciprocal_rank
from vsearch.evaluation.report import MODEL, build_report
from vsearch.mined import VIRTUAL_IDS_FILE
from vsearch.settings import EvaluationSettings, SplitSettings

pytestmark = pytest.mark.unit

T0 = pd.Timestamp("2026-10-01", tz="UTC")
SPLIT = SplitSettings(method="time", eval_share=0.4)  # q6..q9 held out (the newest four)


def _drop(root: Path) -> tuple[Path, Path, Path]:
    """A tiny shop's drop (no truth), its truth folder marker and a mining folder."""
    drop, truth, mining = root / "drop", root / "truth", root / "mining"
    items = ["i1", "i2", "i3", "i4", "i5"]
    write_table(
        pd.DataFrame(
            {
                "item_id": items,
                "category": ["a", "a", "b", "b", "a"],
                "seller_id": "s",
                "title": "t",
                "price": 1.0,
                "image": [f"images/{i}.jpg" for i in items],
                "listed_at": T0,
                "quality": 0.5,
                "sales": 1,
            }
        ),
        CATALOG,
        drop,
    )
    qids = [f"q{i}" for i in range(10)]
    write_table(
        pd.DataFrame(
            {
                "query_id": qids,
                "image": [f"images/{q}.jpg" for q in qids],
                "user_id": "u",
                "session_id": qids,
                "ts": [T0 + pd.Timedelta(minutes=i) for i in range(10)],
                "predicted_category": "a",
            }
        ),
        QUERIES,
        drop,
    )
    rows = [  # query, item, position, clicked, click_order
        ("q1", "i1", 0, True, 0),  # a training query: never in the eval set
        ("q6", "i4", 0, True, 1),  # a switch click ...
        ("q6", "i3", 1, True, 0),  # ... after the first click on i3
        ("q7", "i1", 0, True, 0),  # i1 is in virtual ID v1 with i2
        ("q8", "i5", 0, False, None),  # shown, never clicked
        ("q9", "i9", 0, True, 0),  # a listing no longer in the catalog
    ]
    imp = pd.DataFrame(rows, columns=["query_id", "item_id", "position", "clicked", "click_order"])
    imp["event_id"] = [f"e{i}" for i in range(len(imp))]
    imp["session_id"] = imp["query_id"]
    imp["ts"] = T0
    imp["click_order"] = imp["click_order"].astype("Int64")
    write_table(imp, IMPRESSIONS, drop)
    mining.mkdir()
    pd.DataFrame(
        {"item_id": ["i1", "i2", "i3"], "virtual_id": ["v1", "v1", "v3"], "cluster_size": [2, 2, 1]}
    ).to_parquet(mining / VIRTUAL_IDS_FILE)
    truth.mkdir()
    (truth / NO_TRUTH_FILE).write_text(json.dumps({"truth": False}))
    return drop, truth, mining


def _hit(item: str, *more: str) -> SimpleNamespace:
    return SimpleNamespace(item_id=item, more_sellers=tuple(more))


def _answer(
    results: list, category: str, model: str | None = None, vote: str | None = None
) -> SimpleNamespace:
    """A response: fused ``category``; the classifier's and the vote's default to it."""
    return SimpleNamespace(
        results=results,
        category=category,
        model_category=category if model is None else model,
        vote_category=category if vote is None else vote,
    )


def test_mrr_counts_the_first_hit_and_zero_for_none() -> None:
    rel = np.array([[False, True, False], [True, False, False], [False, False, False]])
    assert mean_reciprocal_rank(rel) == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert np.isnan(mean_reciprocal_rank(np.zeros((0, 3), dtype=bool)))


def test_eval_set_without_truth_is_the_held_out_clicked_queries(tmp_path: Path) -> None:
    drop, truth, mining = _drop(tmp_path)
    ev = load_eval_set(drop, truth, SPLIT, mining)
    assert not ev.has_truth and ev.product_of == {}
    assert list(ev.query_ids) == ["q6", "q7", "q9"]  # q8 has no click; q1 is not held out
    assert list(ev.click_item) == ["i3", "i1", "i9"]  # the first click, not the switch click
    assert list(ev.click_label) == ["vid:v3", "vid:v1", ""]  # i9 cannot be found
    assert list(ev.click_category) == ["b", "a", ""]
    assert ev.clicked.tolist() == [True, True, False]
    assert ev.label_of["i2"] == "vid:v1" and ev.label_of["i4"] == "item:i4"
    assert ev.describe() == {
        "id": ev.eval_set_id,
        "drop": "drop",
        "split": "time 0.4",
        "queries": 3,
        "click_queries": 2,
        "truth": False,
    }
    again = load_eval_set(drop, None, SPLIT, mining)  # no truth folder at all: the same set
    assert again.eval_set_id == ev.eval_set_id
    other = load_eval_set(drop, truth, SplitSettings(eval_share=0.3), mining)
    assert other.eval_set_id != ev.eval_set_id  # another split, another eval set
    no_vids = load_eval_set(drop, truth, SPLIT, None)  # a hit is then the clicked listing only
    assert list(no_vids.click_label) == ["item:i3", "item:i1", ""]
    assert no_vids.eval_set_id != ev.eval_set_id


def test_without_truth_and_without_clicks_there_is_nothing_to_score(tmp_path: Path) -> None:
    drop, truth, _ = _drop(tmp_path)
    imp = pd.read_parquet(drop / "impressions.parquet")
    write_table(imp[imp["query_id"] != "q9"], IMPRESSIONS, drop)  # the newest query: no click
    with pytest.raises(BadInput, match="has a click"):
        load_eval_set(drop, truth, SplitSettings(eval_share=0.1), None)


def test_click_metrics_count_hits_through_virtual_ids(tmp_path: Path) -> None:
    drop, truth, mining = _drop(tmp_path)
    ev = load_eval_set(drop, truth, SPLIT, mining)
    ranked = [
        _answer([_hit("i4"), _hit("i3")], "b"),  # q6: the clicked listing at rank 2
        _answer([_hit("i2")], "b"),  # q7: i2 shares i1's virtual ID: a hit at rank 1
        _answer([_hit("i9")], "a"),  # q9: not scored (its listing is not in the catalog)
    ]
    out: dict = {}
    per_query = pd.DataFrame({"query_id": ev.query_ids})
    curve = _click_metrics(ev, ranked, True, EvaluationSettings(), out, per_query)
    assert out["click_recall@1"] == pytest.approx(0.5)
    assert out["click_recall@5"] == out["click_recall@10"] == pytest.approx(1.0)
    assert out["click_mrr"] == pytest.approx((0.5 + 1.0) / 2)
    assert out["click_category_acc_fused"] == pytest.approx(0.5)  # q6 right (b), q7 wrong
    assert out["click_category_fused_beats_both"] == 0.0  # all three agree: a tie is no win
    assert out["click_queries"] == 2
    assert curve[0] == pytest.approx(0.5) and curve[1] == pytest.approx(1.0)
    assert per_query["click_first_hit"].tolist()[:2] == [2.0, 1.0]
    assert np.isnan(per_query["click_first_hit"].iloc[2])
    grouped = [_answer([_hit("i5", "i3")], "b"), _answer([_hit("i4")], "a"), ranked[2]]
    out = {}
    _click_metrics(ev, grouped, True, EvaluationSettings(), out, per_query)
    assert out["click_recall@1"] == pytest.approx(0.5)  # a grouped seller counts, i4 does not


def test_click_category_accuracy_of_classifier_vote_and_fusion(tmp_path: Path) -> None:
    drop, truth, mining = _drop(tmp_path)
    ev = load_eval_set(drop, truth, SPLIT, mining)  # clicked categories: q6 b, q7 a
    ranked = [
        _answer([_hit("i3")], "b", model="a", vote="b"),  # the vote right, the classifier not
        _answer([_hit("i1")], "a", model="a", vote="b"),  # the classifier right, the vote not
        _answer([_hit("i9")], "a"),  # not scored
    ]
    out: dict = {}
    per_query = pd.DataFrame({"query_id": ev.query_ids})
    _click_metrics(ev, ranked, True, EvaluationSettings(), out, per_query)
    assert out["click_category_acc_model"] == pytest.approx(0.5)
    assert out["click_category_acc_vote"] == pytest.approx(0.5)
    assert out["click_category_acc_fused"] == pytest.approx(1.0)
    assert out["click_category_fused_beats_both"] == 1.0
    out = {}
    _click_metrics(ev, ranked, False, EvaluationSettings(), out, per_query)
    assert out["click_category_acc_model"] is None  # no classifier: nothing to beat
    assert out["click_category_fused_beats_both"] is None


def test_report_without_truth_has_click_metrics_and_names_its_eval_set(tmp_path: Path) -> None:
    drop, truth, mining = _drop(tmp_path)
    ev = load_eval_set(drop, truth, SPLIT, mining)
    metrics = {"click_recall@10": 0.5, "click_mrr": 0.4, "click_queries": 2, "queries": 3}
    results = {
        MODEL: SimpleNamespace(metrics=metrics, fingerprint="f" * 64, seconds=1.0),
        "untrained": SimpleNamespace(metrics={"click_recall@10": 0.25}, fingerprint="u", seconds=1),
    }
    skipped = {"oracle": "skipped: this drop has no ground truth"}
    report = build_report(results, skipped, ev, EvaluationSettings())
    assert report["families"] == ["click"]
    assert report["eval_set"]["id"] == ev.eval_set_id and report["eval_set"]["truth"] is False
    assert report["click_recall@10"] == 0.5  # flat, for `dvc metrics`
    assert report["ratios"] == {"model_vs_untrained_click_recall@10": 2.0}
    assert report["baselines"]["oracle"] == {"skipped": skipped["oracle"]}
    assert any("no ground truth" in w for w in report["warnings"])
    assert report["targets"]["identical_recall@10"]["met"] is None  # never faked

"""The demo's closing summary names both metric families: click metrics (what every shop has)
and truth metrics (the demo world's), leaving out what a report lacks."""

from __future__ import annotations

import pytest

from vsearch.cli import CLICK_FIGURES, TRUTH_FIGURES, _figures_line

pytestmark = pytest.mark.unit


def test_both_families_are_printed_and_missing_figures_left_out() -> None:
    metrics = {"click_recall@10": 0.61234, "click_mrr": 0.4, "identical_recall@10": 0.5}
    metrics["category_acc_fused"] = None  # not measured: not printed as "None"
    assert _figures_line(metrics, CLICK_FIGURES) == "click_recall@10 0.612, click_mrr 0.400"
    assert _figures_line(metrics, TRUTH_FIGURES) == "identical_recall@10 0.500"
    assert _figures_line({}, TRUTH_FIGURES) == "(none)"  # a shop without truth

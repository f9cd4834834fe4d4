"""Virtual IDs on the demo world's click logs: purity and coverage against the truth.

These tests carry the justification of the clustering choice (see ``virtual_ids.py``): with the
defaults (cosine weights; two co-clicks or one long co-click; the relative-strength rule;
connected components; size cap) virtual IDs stay pure at every volume and cover most listings
once the log is large enough, while plain connected components or Louvain on the unpruned
graph chain products together as soon as look-alike and stray clicks accumulate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from vsearch.mining import assign_virtual_ids, build_coclick_graph, virtual_id_quality
from vsearch.settings import MiningSettings

pytestmark = pytest.mark.unit
# A world click log (``conftest.ClickLog``): impressions plus item and query truth.
ClickLog = Any

NAIVE = MiningSettings(
    min_coclicks=1, min_relative_weight=0.0, long_click_ms=0, max_cluster_size=10_000
)


def _quality(log: ClickLog, settings: MiningSettings) -> dict:
    graph = build_coclick_graph(log.impressions, settings)
    return virtual_id_quality(assign_virtual_ids(graph, settings), log.item_truth)


@pytest.fixture(scope="module")
def busy_log(simulate: Callable[..., ClickLog]) -> ClickLog:
    """150 products, 100 searches each: enough co-clicks to cover most listings.

    Three categories: the engine lists one category at a time, so with many products per
    category stray and look-alike clicks have room to chain products together.
    """
    return simulate(n_products=150, queries_per_product=100, seed=11, categories=3)


@pytest.fixture(scope="module")
def sparse_log(simulate: Callable[..., ClickLog]) -> ClickLog:
    """300 products, 6 searches each: co-clicks are rare (the demo world's regime)."""
    return simulate(n_products=300, queries_per_product=6, seed=11)


def test_defaults_are_pure_and_cover_a_busy_log(busy_log: ClickLog) -> None:
    q = _quality(busy_log, MiningSettings())
    assert q["purity"] >= 0.9
    assert q["coverage"] >= 0.8
    assert q["pairwise_precision"] >= 0.8 and q["pairwise_recall"] >= 0.7
    assert q["cluster_size"]["max"] <= MiningSettings().max_cluster_size


def test_naive_components_collapse_on_a_busy_log(busy_log: ClickLog) -> None:
    q = _quality(busy_log, NAIVE)
    assert q["purity"] < 0.1 and q["cluster_size"]["max"] > 100  # one giant chained cluster


def test_louvain_on_the_unpruned_graph_is_not_enough(busy_log: ClickLog) -> None:
    q = _quality(busy_log, NAIVE.model_copy(update={"clustering": "louvain"}))
    assert q["purity"] < 0.5


def test_defaults_stay_pure_on_a_sparse_log(sparse_log: ClickLog) -> None:
    q = _quality(sparse_log, MiningSettings())
    naive = _quality(sparse_log, NAIVE)
    assert q["purity"] >= 0.9
    assert q["coverage"] >= 0.08  # little evidence: most listings stay singletons
    assert naive["purity"] < q["purity"]  # naive covers more but mixes products


def test_long_clicks_buy_coverage_when_evidence_is_thin(sparse_log: ClickLog) -> None:
    with_dwell = _quality(sparse_log, MiningSettings())
    without = _quality(sparse_log, MiningSettings(long_click_ms=0))
    assert with_dwell["coverage"] > 2 * without["coverage"]
    assert with_dwell["purity"] >= 0.9

"""Quality metrics against hand-computed answers (report only; never an input to mining)."""

from __future__ import annotations

import pandas as pd
import pytest

from vsearch.mining.quality import pair_quality, virtual_id_quality

pytestmark = pytest.mark.unit

# v1 = {a1, a2, b1} (b1 is a look-alike that slipped in), v2 = {b2, b3}, v3 = {c1} alone;
# d1 is in the catalog but was never clicked.
VIDS = pd.DataFrame(
    {
        "item_id": ["a1", "a2", "b1", "b2", "b3", "c1"],
        "virtual_id": ["v1", "v1", "v1", "v2", "v2", "v3"],
    }
)
TRUTH = pd.DataFrame(
    {
        "item_id": ["a1", "a2", "b1", "b2", "b3", "c1", "d1"],
        "sku": ["A", "A", "B", "B", "B", "C", "D"],
    }
)


def test_cluster_metrics_by_hand() -> None:
    q = virtual_id_quality(VIDS, TRUTH)
    assert q["clusters"] == 2 and q["singletons"] == 1
    assert q["purity"] == pytest.approx((2 + 2) / 5)  # majority A in v1, B in v2
    assert q["coverage"] == pytest.approx(5 / 6)  # clicked items in clusters of 2+
    assert q["coverage_catalog"] == pytest.approx(5 / 7)
    assert q["coverage_achievable"] == pytest.approx(1.0)  # A and B have 2+ clicked listings
    assert q["split_fraction"] == pytest.approx(1 / 2)  # B is spread over v1 and v2
    # same-cluster pairs: 3 in v1 + 1 in v2; of those, a1-a2 and b2-b3 are one product
    assert q["pairwise_precision"] == pytest.approx(2 / 4)
    # same-product pairs: a1-a2, b1-b2, b1-b3, b2-b3; two of them share a cluster
    assert q["pairwise_recall"] == pytest.approx(2 / 4)
    assert q["pairwise_f1"] == pytest.approx(0.5)
    assert q["cluster_size"] == {
        "max": 3,
        "mean": 2.5,
        "median": 2.5,
        "histogram": {"2": 1, "3": 1},
    }


def test_query_assignment_accuracy() -> None:
    qv = pd.DataFrame({"query_id": ["q1", "q2", "q3"], "virtual_id": ["v1", "v2", "v1"]})
    qt = pd.DataFrame({"query_id": ["q1", "q2", "q3"], "sku": ["A", "B", "B"]})
    q = virtual_id_quality(VIDS, TRUTH, qv, qt)
    assert q["queries_assigned"] == 3
    assert q["query_vid_accuracy"] == pytest.approx(2 / 3)  # v1's majority is A, q3 shows B


def test_no_clusters_gives_none_not_a_crash() -> None:
    alone = pd.DataFrame({"item_id": ["a1", "b1"], "virtual_id": ["x", "y"]})
    q = virtual_id_quality(alone, TRUTH)
    assert q["purity"] is None and q["pairwise_precision"] is None
    assert q["coverage"] == 0.0 and q["cluster_size"]["max"] == 0


def test_pair_quality_by_hand() -> None:
    pairs = pd.DataFrame(
        {
            "query_id": ["q1", "q1", "q1", "q1"],
            "item_id": ["a1", "b1", "a2", "b2"],
            "label": [1, 1, 0, 0],
            "kind": ["first", "switch", "skip_above", "skip_above"],
            "weight": [3.0, 1.0, 1.0, 1.0],
        }
    )
    qt = pd.DataFrame({"query_id": ["q1"], "sku": ["A"]})
    q = pair_quality(pairs, TRUTH, qt)
    assert q["positive_precision"] == pytest.approx(1 / 2)
    assert q["positive_precision_weighted"] == pytest.approx(3 / 4)
    assert q["first_click_precision"] == 1.0 and q["switch_click_precision"] == 0.0
    assert q["negative_precision"] == pytest.approx(1 / 2)  # a2 is the same product as q1

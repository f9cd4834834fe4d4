"""Evaluation metrics against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from vsearch.evaluation.metrics import (
    average_precision_at_r,
    box_iou,
    category_accuracy,
    exact_top_k,
    first_hit_rank,
    map_at_r,
    ratio,
    recall_at_k,
    recall_curve,
    relevance_matrix,
)

pytestmark = pytest.mark.unit

PRODUCT_OF = {"a1": "A", "a2": "A", "b1": "B", "b2": "B", "c1": "C"}


def test_relevance_counts_grouped_sellers_and_pads() -> None:
    results = [
        [["b1"], ["c1", "a2"], ["a1"]],  # the true product hides in a grouped listing at rank 2
        [["c1"]],  # shorter than the matrix: padded with misses
        [["zz"], ["b2"]],  # unknown listing never relevant
    ]
    rel = relevance_matrix(results, ["A", "A", "B"], PRODUCT_OF, length=2)
    assert rel.tolist() == [[False, True], [False, False], [False, True]]


def test_recall_at_k_boundaries_and_several_hits_count_once() -> None:
    rel = np.array(
        [
            [True, True, True, False],  # three hits: still one query found
            [False, False, False, True],  # hit exactly at rank 4
            [False, False, False, False],  # never
            [False, True, False, False],
        ]
    )
    assert first_hit_rank(rel).tolist() == [0, 3, np.inf, 1]
    assert recall_at_k(rel, 1) == pytest.approx(1 / 4)
    assert recall_at_k(rel, 2) == pytest.approx(2 / 4)
    assert recall_at_k(rel, 3) == pytest.approx(2 / 4)
    assert recall_at_k(rel, 4) == pytest.approx(3 / 4)
    assert recall_at_k(rel, 50) == pytest.approx(3 / 4)  # k beyond the list: no new hits
    np.testing.assert_allclose(recall_curve(rel, 5), [0.25, 0.5, 0.5, 0.75, 0.75])
    with pytest.raises(ValueError):
        recall_at_k(rel, 0)


def test_recall_of_no_queries_is_nan() -> None:
    assert np.isnan(recall_at_k(np.zeros((0, 3), bool), 1))


def test_map_at_r_hand_example() -> None:
    rel = np.array(
        [
            [True, False, True, True],  # R=3: (1/1 + 2/3) / 3 = 5/9 (rank 4 is beyond R)
            [False, True, False, False],  # R=2: (1/2) / 2 = 1/4
            [True, False, False, False],  # R=1: 1
            [False, False, False, False],  # R=2: 0
        ]
    )
    r = np.array([3, 2, 1, 2])
    ap = average_precision_at_r(rel, r)
    np.testing.assert_allclose(ap, [5 / 9, 1 / 4, 1.0, 0.0])
    assert map_at_r(rel, r) == pytest.approx((5 / 9 + 1 / 4 + 1 + 0) / 4)


def test_map_at_r_short_ranking_counts_missing_ranks_as_misses() -> None:
    # only 2 results returned but R = 4: AP = (1 + 1) / 4
    assert average_precision_at_r(np.array([[True, True]]), np.array([4]))[0] == pytest.approx(0.5)


def test_map_at_r_needs_r_of_at_least_one() -> None:
    with pytest.raises(ValueError, match="R >= 1"):
        average_precision_at_r(np.array([[True]]), np.array([0]))


def test_box_iou_by_hand() -> None:
    a = np.array([[0, 0, 0.5, 0.5], [0, 0, 1, 1], [0, 0, 0.2, 0.2], [0.1, 0.1, 0.1, 0.3]])
    b = np.array([[0.25, 0.25, 0.75, 0.75], [0, 0, 1, 1], [0.5, 0.5, 1, 1], [0.1, 0.1, 0.1, 0.3]])
    # overlap 0.25^2 = 1/16, union 2 * 1/4 - 1/16 = 7/16 -> 1/7; identical -> 1; disjoint -> 0;
    # a degenerate (zero-area) box -> 0, not nan
    np.testing.assert_allclose(box_iou(a, b), [1 / 7, 1.0, 0.0, 0.0])
    with pytest.raises(ValueError):
        box_iou(a, b[:2])


def test_vote_accuracy_counts_abstentions_as_wrong() -> None:
    votes = ["shoe", "", "bag", None, "hat"]
    truth = ["shoe", "bag", "bag", "hat", "cup"]
    assert category_accuracy(votes, truth) == pytest.approx(2 / 5)
    assert np.isnan(category_accuracy([], []))
    with pytest.raises(ValueError):
        category_accuracy(["a"], [])


def test_exact_top_k_orders_by_inner_product_and_breaks_ties_by_index() -> None:
    refs = np.array([[1, 0], [0, 1], [1, 0], [0.6, 0.8]], dtype=np.float32)
    queries = np.array([[1, 0], [0, 1]], dtype=np.float32)
    top = exact_top_k(queries, refs, 3)
    assert top.tolist() == [[0, 2, 3], [1, 3, 0]]  # refs 0 and 2 tie: lower index first
    assert exact_top_k(queries, refs, 10).shape == (2, 4)


def test_ratio_is_none_when_undefined() -> None:
    assert ratio(0.5, 0.8) == pytest.approx(0.625)
    assert ratio(0.5, 0.0) is None and ratio(None, 1.0) is None and ratio(0.5, float("nan")) is None


# --- the library-computed figures against the hand-written definitions ----------------------


def _hand_ap_at_r(rel: np.ndarray, r: np.ndarray) -> np.ndarray:
    """AP@R written out loop by loop: (1/R) * sum over the top R of P@i at each hit."""
    out = []
    for row, big_r in zip(rel, r, strict=True):
        hits, total = 0, 0.0
        for i in range(big_r):
            if i < len(row) and row[i]:
                hits += 1
                total += hits / (i + 1)
        out.append(total / big_r)
    return np.array(out)


def _numpy_ap_at_r(rel: np.ndarray, r: np.ndarray) -> np.ndarray:
    """AP@R as numpy computed it before the calculator did (the figures must not move)."""
    width = int(r.max())
    padded = np.zeros((rel.shape[0], width), dtype=bool)
    cols = min(width, rel.shape[1])
    padded[:, :cols] = rel[:, :cols]
    ranks = np.arange(1, width + 1)
    padded &= ranks[None, :] <= r[:, None]
    precision = np.cumsum(padded, axis=1) / ranks[None, :]
    return (precision * padded).sum(axis=1) / r


def test_map_at_r_from_the_calculator_equals_the_hand_written_definition() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        n, width = int(rng.integers(1, 40)), int(rng.integers(0, 12))
        rel = rng.random((n, width)) < 0.4
        r = rng.integers(1, 10, n)
        ap = average_precision_at_r(rel, r)
        np.testing.assert_allclose(ap, _hand_ap_at_r(rel, r), rtol=1e-12)
        # what numpy computed before, up to the order of a row's sum (torch's, last bit only)
        np.testing.assert_allclose(ap, _numpy_ap_at_r(rel, r), rtol=1e-15, atol=0)
        assert map_at_r(rel, r) == pytest.approx(np.mean(_numpy_ap_at_r(rel, r)), rel=1e-15)


def test_map_at_r_of_blocks_of_queries_is_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    import vsearch.evaluation.metrics as metrics

    rng = np.random.default_rng(1)
    rel, r = rng.random((25, 6)) < 0.5, rng.integers(1, 8, 25)
    whole = average_precision_at_r(rel, r)
    monkeypatch.setattr(metrics, "QUERY_BLOCK", 4)
    np.testing.assert_array_equal(average_precision_at_r(rel, r), whole)
    assert average_precision_at_r(np.zeros((0, 3), bool), np.zeros(0, int)).shape == (0,)


def test_exact_top_k_keeps_the_lower_index_of_ties_at_the_cut() -> None:
    refs = np.array([[1, 0], [0, 1], [1, 0], [0.6, 0.8]], dtype=np.float32)
    queries = np.array([[1, 0], [0, 1]], dtype=np.float32)
    assert exact_top_k(queries, refs, 1).tolist() == [[0], [1]]
    assert exact_top_k(queries, refs, 2).tolist() == [[0, 2], [1, 3]]
    many = np.tile(np.array([[1, 0]], np.float32), (9, 1))  # nine identical references
    assert exact_top_k(queries[:1], many, 4).tolist() == [[0, 1, 2, 3]]


def test_exact_top_k_from_faiss_equals_a_stable_sort_of_the_scores() -> None:
    rng = np.random.default_rng(2)
    q = rng.integers(-2, 3, (60, 8)).astype(np.float32)  # small integers: many exact ties
    ref = rng.integers(-2, 3, (300, 8)).astype(np.float32)
    by_hand = np.argsort(-(q @ ref.T), axis=1, kind="stable")
    for k in (1, 7, 50):
        np.testing.assert_array_equal(exact_top_k(q, ref, k), by_hand[:, :k])
    assert exact_top_k(q[:0], ref, 3).shape == (0, 3)


def test_box_iou_from_torchvision_scores_inverted_and_empty_boxes_zero() -> None:
    a = np.array([[0.5, 0.5, 0.2, 0.9], [0.3, 0.3, 0.3, 0.3], [0.1, 0.2, 0.6, 0.8]])
    b = np.array([[0.0, 0.0, 1.0, 1.0], [0.3, 0.3, 0.3, 0.3], [0.2, 0.1, 0.7, 0.6]])
    # inverted -> empty -> 0; both empty (union 0) -> 0; overlap 0.4 * 0.4 = 0.16 over
    # 0.5 * 0.6 + 0.5 * 0.5 - 0.16 = 0.39
    np.testing.assert_allclose(box_iou(a, b), [0.0, 0.0, 0.16 / 0.39])

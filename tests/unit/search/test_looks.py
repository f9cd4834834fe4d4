"""Merging several looks' result lists: each id once, at its best score, best first."""

from __future__ import annotations

import numpy as np
import pytest

from vsearch.search.looks import best_of_looks, take_columns

pytestmark = pytest.mark.unit


def _brute(ids: np.ndarray, scores: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
    out = []
    for row_ids, row_scores in zip(ids, scores, strict=True):
        best: dict[int, float] = {}
        for i, s in zip(row_ids, row_scores, strict=True):
            if i >= 0 and np.isfinite(s):
                best[int(i)] = max(best.get(int(i), -np.inf), float(s))
        out.append(sorted(best.items(), key=lambda t: (-t[1], t[0]))[:k])
    return out


def test_each_id_once_at_its_best_score_against_brute_force() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        n, m, k = 4, int(rng.integers(2, 12)), int(rng.integers(1, 15))
        ids = rng.integers(-1, 8, (n, m))  # few ids: many repeats, some empty slots
        scores = rng.random((n, m)).astype(np.float32)
        scores[rng.random((n, m)) < 0.1] = np.nan
        cols = best_of_looks(ids, scores, k)
        assert cols.shape == (n, k)
        got_ids = take_columns(ids, cols, -1)
        got_scores = take_columns(scores, cols, np.nan)
        for r, want in enumerate(_brute(ids, scores, k)):
            assert [int(i) for i in got_ids[r][: len(want)]] == [i for i, _ in want]
            assert got_scores[r][: len(want)] == pytest.approx([s for _, s in want])
            assert (cols[r][len(want) :] == -1).all() and (got_ids[r][len(want) :] == -1).all()


def test_two_looks_side_by_side() -> None:
    # look 1 finds 5, 3, 9; look 2 finds 3 (better), 7, 5 (worse)
    ids = np.array([[5, 3, 9, 3, 7, 5]])
    scores = np.array([[0.9, 0.5, 0.4, 0.8, 0.6, 0.2]], dtype=np.float32)
    cols = best_of_looks(ids, scores, 3)
    assert take_columns(ids, cols, -1).tolist() == [[5, 3, 7]]
    assert take_columns(scores, cols, np.nan)[0].tolist() == pytest.approx([0.9, 0.8, 0.6])
    objects = np.array([["a5", "a3", "a9", "b3", "b7", "b5"]], dtype=object)
    assert take_columns(objects, cols, None).tolist() == [["a5", "b3", "b7"]]


def test_bad_shapes_and_k_are_refused() -> None:
    with pytest.raises(ValueError, match="alike"):
        best_of_looks(np.zeros((2, 3), int), np.zeros((2, 4)), 1)
    with pytest.raises(ValueError, match="k must be >= 1"):
        best_of_looks(np.zeros((2, 3), int), np.zeros((2, 3)), 0)

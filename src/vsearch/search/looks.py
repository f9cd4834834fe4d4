"""Merging the result lists of several looks at one photo (the search's second look).

A query photo may be described twice: at its box (detected or given) and at the box the detector
finds when it looks again inside that box, grown (``search.second_look``). Each description is
searched on its own; a listing then scores the better of its similarities to the two. Why the
best and not an average of the two embeddings: the looks fail in different photos (a loose
given box shows the product small among background; the second look misses where the detector
does), and the better look is usually the right one; averaging the two embeddings did worse at
loose boxes (measured: docs/learning.md#second-look).

The top ``k`` of the best-of-looks score is exactly the best ``k`` distinct listings among the
looks' own top ``k`` lists: a listing missing from one look's list scores below that list's
``k``-th there, so it ranks by its other score.
"""

from __future__ import annotations

import numpy as np


def best_of_looks(ids: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """Columns of the ``k`` best distinct ids of each row, by score.

    Args:
        ids: ``int[n, m]`` the looks' result ids side by side (``-1``: an empty slot).
        scores: ``float[n, m]`` their scores (NaN: an empty slot).
        k: results wanted per row.

    Returns:
        ``int64[n, k]`` column indices into ``ids``/``scores``, best first; ``-1`` where a row
        holds fewer than ``k`` distinct ids. An id in several columns is taken at its best
        score; ties keep the lower id first (deterministic).
    """
    if ids.shape != scores.shape or ids.ndim != 2:
        raise ValueError(f"ids and scores must be [n, m] alike, got {ids.shape}, {scores.shape}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n, m = ids.shape
    value = np.where((ids >= 0) & np.isfinite(scores), scores, -np.inf)
    # Each id's columns together, its best score first: the later copies are dropped.
    by_id = np.lexsort((-value, ids), axis=-1)
    sorted_ids = np.take_along_axis(ids, by_id, axis=-1)
    repeat = np.zeros((n, m), dtype=bool)
    repeat[:, 1:] = sorted_ids[:, 1:] == sorted_ids[:, :-1]
    kept = np.take_along_axis(value, by_id, axis=-1)
    kept[repeat] = -np.inf
    order = np.lexsort((sorted_ids, -kept), axis=-1)[:, :k]
    cols = np.take_along_axis(by_id, order, axis=-1).astype(np.int64)
    cols[~np.isfinite(np.take_along_axis(kept, order, axis=-1))] = -1
    if cols.shape[1] < k:
        cols = np.pad(cols, ((0, 0), (0, k - cols.shape[1])), constant_values=-1)
    return cols


def take_columns(a: np.ndarray, cols: np.ndarray, fill: object) -> np.ndarray:
    """``a[i, cols[i, j]]`` per row, ``fill`` where ``cols`` is -1 (``a``'s dtype kept)."""
    out = np.take_along_axis(a, np.maximum(cols, 0), axis=-1)
    out[cols < 0] = fill
    return out

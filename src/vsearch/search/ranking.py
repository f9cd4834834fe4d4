"""Final ranking: similarity with a small quality/sales bonus, then one result per product.

Why a bounded bonus: the shopper asked for *this* product, so similarity decides; among
listings that are about equally similar (the same product from several sellers, or
near-identical look-alikes) the better-described, better-selling listing should come first.
``score = similarity + weight_quality * quality + weight_sales * sales_signal`` with both
signals in [0, 1], so a listing can pass a more similar one by at most the two weights.

Why grouping: a marketplace lists one product many times; ten copies of the same shoe from ten
sellers would push every other candidate off the page. Listings whose embeddings are
near-duplicates (cosine >= ``group_similarity``) collapse under the best-scoring one, which
carries the others as ``more_sellers``. Greedy in score order, against group heads only, so a
chain of slightly different look-alikes does not merge into one group.

Numpy in, numpy out: candidates are ``[n_queries, m]`` arrays, best first where noted.
"""

from __future__ import annotations

import numpy as np


def sales_signal(sales: np.ndarray, saturation: int) -> np.ndarray:
    """``log1p(sales) / log1p(saturation)`` clipped to [0, 1] (NaN/negative count as 0)."""
    if saturation < 1:
        raise ValueError(f"saturation must be >= 1, got {saturation}")
    s = np.nan_to_num(np.asarray(sales, dtype=np.float64), nan=0.0)
    return np.clip(np.log1p(np.maximum(s, 0.0)) / np.log1p(saturation), 0.0, 1.0)


def blend_scores(
    similarity: np.ndarray,
    quality: np.ndarray,
    sales: np.ndarray,
    weight_quality: float,
    weight_sales: float,
    saturation: int,
) -> np.ndarray:
    """Final scores ``float32``, same shape as ``similarity`` (NaN stays NaN: empty slots).

    ``quality`` is clipped to [0, 1] and NaN counts as 0 (a listing without the signal gets
    no bonus, never a penalty below the similarity).
    """
    sim = np.asarray(similarity, dtype=np.float64)
    q = np.clip(np.nan_to_num(np.asarray(quality, dtype=np.float64), nan=0.0), 0.0, 1.0)
    bonus = weight_quality * q + weight_sales * sales_signal(sales, saturation)
    return (sim + bonus).astype(np.float32)


def rank_order(scores: np.ndarray) -> np.ndarray:
    """Column order per row, highest score first, NaN (empty slots) last; stable for ties."""
    keys = np.where(np.isnan(scores), np.inf, -np.asarray(scores, dtype=np.float64))
    return np.argsort(keys, axis=1, kind="stable")


def cosine_matrix(vectors: np.ndarray) -> np.ndarray:
    """``float32[n, m, m]`` cosines between each query's candidates (``[n, m, d]`` input)."""
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=2, keepdims=True)
    v = v / np.maximum(norms, np.finfo(np.float32).tiny)
    return np.einsum("nid,njd->nij", v, v)


def group_heads(cosines: np.ndarray, valid: np.ndarray, threshold: float) -> np.ndarray:
    """Group head of each candidate, candidates in rank order (best first).

    A candidate joins the best-ranked earlier *head* it is a near-duplicate of (cosine >=
    ``threshold``), else it starts a group. Vectorised over queries, one step per column.

    Args:
        cosines: ``float[n, m, m]`` pairwise cosines (:func:`cosine_matrix`).
        valid: ``bool[n, m]`` real candidates (empty slots are never grouped).
        threshold: near-duplicate cosine.

    Returns:
        ``int64[n, m]``: the column of each candidate's head (itself for heads, -1 if invalid).
    """
    n, m = valid.shape
    if cosines.shape != (n, m, m):
        raise ValueError(f"cosines must be [{n}, {m}, {m}], got {cosines.shape}")
    head = np.full((n, m), -1, dtype=np.int64)
    is_head = np.zeros((n, m), dtype=bool)
    if m:
        head[:, 0] = 0
        is_head[:, 0] = valid[:, 0]
    for j in range(1, m):
        near = (cosines[:, :j, j] >= threshold) & is_head[:, :j]
        joined = near.any(axis=1)
        head[:, j] = np.where(joined, near.argmax(axis=1), j)
        is_head[:, j] = valid[:, j] & ~joined
    head[~valid] = -1
    return head


def collect_groups(head: np.ndarray, k: int) -> list[list[tuple[int, list[int]]]]:
    """The first ``k`` groups per query: ``(head column, [member columns])`` in rank order."""
    out: list[list[tuple[int, list[int]]]] = []
    for row in head:
        groups: dict[int, list[int]] = {}
        for j, h in enumerate(row.tolist()):
            if h < 0:
                continue
            if h == j:
                groups[j] = []
            elif h in groups:
                groups[h].append(j)
        out.append(list(groups.items())[:k])
    return out


def same_group(groups: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``bool[n, m, m]``: candidates ``i`` and ``j`` of a query share a product group.

    Args:
        groups: ``object[n, m]`` group key per candidate (``""`` = unknown: never matches).
        valid: ``bool[n, m]`` real candidates.
    """
    g = np.asarray(groups, dtype=object)
    known = valid & (g != "")
    eq = g[:, :, None] == g[:, None, :]
    return eq & known[:, :, None] & known[:, None, :]

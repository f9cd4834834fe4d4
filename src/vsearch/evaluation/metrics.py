"""Quality metrics of a search over held-out queries: numpy in, numpy out, no I/O.

Why relevance matrices: every ranking metric here is a function of one ``bool[n, L]`` array
(result ``j`` of query ``i`` shows the query's true product), so the harness turns search
responses into that array once (:func:`relevance_matrix`) and the metrics stay small, pure and
testable by hand. A result that groups several listings of one product (``more_sellers``) is
relevant when any of its listings is, which is what a shopper sees on the page.

Definitions:

* **identical recall@K**: share of queries with at least one relevant result in the top K
  (several relevant results count once).
* **MAP@R** (Musgrave et al., "A Metric Learning Reality Check", 2020): per query, with R the
  number of catalog listings of its true product, ``AP@R = (1/R) * sum_{i<=R} P@i * rel_i``
  over the top R of a per-listing (ungrouped) ranking; missing ranks count as misses.
* **box IoU**: intersection over union of normalised ``xyxy`` boxes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

EXACT_BLOCK = 1024  # query rows scored at a time by the exact reference search (memory bound)


def _check_relevance(relevant: np.ndarray) -> np.ndarray:
    rel = np.asarray(relevant)
    if rel.ndim != 2:
        raise ValueError(f"relevance must be bool[n_queries, n_results], got shape {rel.shape}")
    return rel.astype(bool, copy=False)


def relevance_matrix(
    results: Sequence[Sequence[Sequence[str]]],
    truth: Sequence[str],
    product_of: Mapping[str, str],
    length: int,
) -> np.ndarray:
    """``bool[n, length]``: does result ``j`` of query ``i`` show the query's true product?

    Args:
        results: per query, its ranked results; each result is the listing ids it stands for
            (the listing itself plus any grouped ``more_sellers``).
        truth: per query, the id of its true product (``sku``).
        product_of: listing id → product id; unknown listings are never relevant.
        length: columns of the matrix; longer result lists are cut, shorter ones padded with
            ``False``.
    """
    if len(results) != len(truth):
        raise ValueError(f"{len(results)} result lists for {len(truth)} queries")
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    rel = np.zeros((len(results), length), dtype=bool)
    for i, (ranked, sku) in enumerate(zip(results, truth, strict=True)):
        for j, listings in enumerate(ranked[:length]):
            rel[i, j] = any(product_of.get(item) == sku for item in listings)
    return rel


def first_hit_rank(relevant: np.ndarray) -> np.ndarray:
    """0-based rank of each query's first relevant result; ``inf`` when it has none."""
    rel = _check_relevance(relevant)
    if rel.shape[1] == 0:
        return np.full(rel.shape[0], np.inf)
    return np.where(rel.any(axis=1), rel.argmax(axis=1), np.inf)


def recall_at_k(relevant: np.ndarray, k: int) -> float:
    """Share of queries with a relevant result among their first ``k``; ``nan`` for no queries."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    first = first_hit_rank(relevant)
    return float(np.mean(first < k)) if len(first) else float("nan")


def recall_curve(relevant: np.ndarray, max_k: int) -> np.ndarray:
    """``float[max_k]`` with ``curve[k - 1] = recall@k`` for ``k = 1..max_k`` (non-decreasing)."""
    if max_k < 1:
        raise ValueError(f"max_k must be >= 1, got {max_k}")
    first = first_hit_rank(relevant)
    if not len(first):
        return np.full(max_k, np.nan)
    ks = np.arange(1, max_k + 1)
    return (first[None, :] < ks[:, None]).mean(axis=1)


def average_precision_at_r(relevant: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Per-query AP@R of a per-listing ranking (see the module docstring).

    Args:
        relevant: ``bool[n, L]`` relevance of each query's ranked listings.
        r: ``int[n]`` number of catalog listings of each query's product (>= 1).

    Raises:
        ValueError: shapes disagree or some ``r < 1`` (AP@R is undefined there: leave those
            queries out before calling).
    """
    rel = _check_relevance(relevant)
    r = np.asarray(r, dtype=np.int64)
    if r.shape != (rel.shape[0],):
        raise ValueError(f"r must be int[{rel.shape[0]}], got shape {r.shape}")
    if (r < 1).any():
        raise ValueError("every query needs R >= 1 catalog listings of its product")
    width = int(r.max()) if len(r) else 0
    padded = np.zeros((rel.shape[0], width), dtype=bool)
    cols = min(width, rel.shape[1])
    padded[:, :cols] = rel[:, :cols]
    ranks = np.arange(1, width + 1)
    padded &= ranks[None, :] <= r[:, None]  # only the top R of each query count
    precision = np.cumsum(padded, axis=1) / ranks[None, :]
    return (precision * padded).sum(axis=1) / r


def map_at_r(relevant: np.ndarray, r: np.ndarray) -> float:
    """Mean of :func:`average_precision_at_r`; ``nan`` for no queries."""
    ap = average_precision_at_r(relevant, r)
    return float(ap.mean()) if len(ap) else float("nan")


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of ``float[n, 4]`` ``xyxy`` boxes (0 for empty or disjoint boxes)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 4 or a.shape != b.shape:
        raise ValueError(f"boxes must both be float[n, 4], got {a.shape} and {b.shape}")
    iw = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = iw * ih

    def area(x: np.ndarray) -> np.ndarray:
        return np.clip(x[:, 2] - x[:, 0], 0, None) * np.clip(x[:, 3] - x[:, 1], 0, None)

    union = area(a) + area(b) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def category_accuracy(predicted: Sequence[str | None], true: Sequence[str]) -> float:
    """Share of exact matches; an abstention (``None`` or ``""``) counts as wrong.

    Why abstentions count: a vote over neighbours that found nothing, or a model that cannot
    say, gives the shopper no category; averaging only over answered queries would flatter it.
    """
    if len(predicted) != len(true):
        raise ValueError(f"{len(predicted)} predictions for {len(true)} labels")
    if not len(true):
        return float("nan")
    hits = [bool(p) and p == t for p, t in zip(predicted, true, strict=True)]
    return float(np.mean(hits))


def exact_top_k(queries: np.ndarray, references: np.ndarray, k: int) -> np.ndarray:
    """Indices ``int[n, k']`` of the ``k`` largest inner products, ``k' = min(k, len(refs))``.

    The float reference the binary index is measured against. Ties keep the lower reference
    index first, so the result is deterministic.
    """
    q = np.asarray(queries, dtype=np.float32)
    ref = np.asarray(references, dtype=np.float32)
    if q.ndim != 2 or ref.ndim != 2 or q.shape[1] != ref.shape[1]:
        raise ValueError(f"need float[n, d] and float[m, d], got {q.shape} and {ref.shape}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    kk = min(k, ref.shape[0])
    out = np.empty((q.shape[0], kk), dtype=np.int64)
    for start in range(0, q.shape[0], EXACT_BLOCK):
        scores = q[start : start + EXACT_BLOCK] @ ref.T
        # a stable sort of -scores keeps equal scores in index order
        out[start : start + EXACT_BLOCK] = np.argsort(-scores, axis=1, kind="stable")[:, :kk]
    return out


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or ``None`` when either is missing or the denominator is 0."""
    if numerator is None or denominator is None:
        return None
    if not np.isfinite(numerator) or not np.isfinite(denominator) or denominator == 0:
        return None
    return float(numerator / denominator)

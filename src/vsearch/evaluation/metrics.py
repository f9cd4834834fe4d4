"""Quality metrics of a search over held-out queries: numpy in, numpy out, no I/O.

Why relevance matrices: every ranking metric here is a function of one ``bool[n, L]`` array
(result ``j`` of query ``i`` shows the query's true product), so the measuring
(:mod:`vsearch.evaluation.measure`) turns search responses into that array once
(:func:`relevance_matrix`) and the metrics stay small, pure and testable by hand. A result that
groups several listings of one product (``more_sellers``) is relevant when any of its listings
is, which is what a shopper sees on the page.

Libraries do the arithmetic where one has the metric: MAP@R is pytorch-metric-learning's
``AccuracyCalculator``, box IoU is ``torchvision.ops.box_iou`` and the exact float reference
search is ``faiss.knn``. Recall@K stays a few lines of numpy: the calculator has no hit rate at
K (only precision@1, MAP, MAP@R, R-precision, MRR), and it scores one label per ranked item,
whereas a grouped result counts when *any* of its listings shows the product.

Definitions:

* **identical recall@K**: share of queries with at least one relevant result in the top K
  (several relevant results count once).
* **MAP@R** (Musgrave et al., "A Metric Learning Reality Check", 2020): per query, with R the
  number of catalog listings of its true product, ``AP@R = (1/R) * sum_{i<=R} P@i * rel_i``
  over the top R of a per-listing (ungrouped) ranking; missing ranks count as misses.
* **box IoU**: intersection over union of normalised ``xyxy`` boxes.
* **MRR** (mean reciprocal rank): per query ``1 / rank`` of its first relevant result
  (1-based), 0 when none is in the ranking; the click metrics' ranking summary.

The click metrics use the same functions: the "product" of a query is then the click label of
the listing its shopper clicked (the listing's mined virtual ID, else the listing itself), and
``product_of`` maps each catalog listing to its click label
(:mod:`vsearch.evaluation.evalset`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

QUERY_BLOCK = 1024  # queries handed to a library at a time (bounds its pairwise matrices)


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


def mean_reciprocal_rank(relevant: np.ndarray) -> float:
    """Mean of ``1 / (first relevant rank, 1-based)``, 0 for none; ``nan`` for no queries."""
    first = first_hit_rank(relevant)
    if not len(first):
        return float("nan")
    return float(np.mean(np.where(np.isfinite(first), 1.0 / (first + 1.0), 0.0)))


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
    """Per-query AP@R of a per-listing ranking (see the module docstring), by
    pytorch-metric-learning's ``AccuracyCalculator`` (``mean_average_precision_at_r``).

    How the relevance matrix reaches the calculator: query ``i`` gets label ``i`` and the
    reference set holds ``R_i`` items of label ``i`` (so the calculator's R, the number of
    references sharing the query's label, is ``r[i]``) plus one item no query shares; the
    "neighbours" of query ``i`` are a label-``i`` item where ``relevant[i, j]`` and that
    unshared item elsewhere (also where the ranking is shorter than R: a miss). Why one label per
    query and ``return_per_class``: the calculator then returns each query's own AP (a class of
    one), and :func:`map_at_r` averages them with numpy as it always has; the calculator's own
    mean sums in torch's order, which moves the figure's last bit far more often. (A row's sum
    is torch's: once a query's R is 5 or more, an AP can differ from a numpy row sum in the
    last bit, about 1e-16.)

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
    out = np.empty(rel.shape[0], dtype=np.float64)
    for start in range(0, rel.shape[0], QUERY_BLOCK):
        stop = start + QUERY_BLOCK
        out[start:stop] = _ap_at_r_block(rel[start:stop], r[start:stop])
    return out


def _ap_at_r_block(rel: np.ndarray, r: np.ndarray) -> np.ndarray:
    """:func:`average_precision_at_r` of one block of queries (bounds the calculator's memory)."""
    import torch
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    n = rel.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    width = int(r.max())
    first = np.concatenate([[0], np.cumsum(r)[:-1]])  # first reference of each query's label
    unshared = int(r.sum())  # the last reference: no query has its label
    reference_labels = np.append(np.repeat(np.arange(n), r), -1)
    cols = min(width, rel.shape[1])
    neighbours = np.full((n, width), unshared, dtype=np.int64)
    neighbours[:, :cols] = np.where(rel[:, :cols], first[:, None], unshared)

    def ranked(query: Any, k: int, reference: Any, ref_includes_query: bool) -> Any:
        """The given ranking as the calculator's k nearest neighbours (distances unused)."""
        return torch.zeros(n, k), torch.from_numpy(neighbours[:, :k])

    calculator = AccuracyCalculator(
        include=("mean_average_precision_at_r",),
        k="max_bin_count",  # the top R of each query (R = its label's reference count)
        return_per_class=True,
        device=torch.device("cpu"),
        knn_func=ranked,
    )
    per_query = calculator.get_accuracy(
        np.zeros((n, 1), dtype=np.float32),  # placeholders: the ranking is given, not searched
        np.arange(n),
        np.zeros((len(reference_labels), 1), dtype=np.float32),
        reference_labels,
    )["mean_average_precision_at_r"]
    return np.asarray(per_query, dtype=np.float64)  # classes in label order: query order


def map_at_r(relevant: np.ndarray, r: np.ndarray) -> float:
    """Mean of :func:`average_precision_at_r`; ``nan`` for no queries."""
    ap = average_precision_at_r(relevant, r)
    return float(ap.mean()) if len(ap) else float("nan")


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of ``float[n, 4]`` ``xyxy`` boxes (0 for empty or disjoint boxes).

    ``torchvision.ops.box_iou`` computes it (its pairwise matrix, taken block by block along
    the diagonal). Inverted sides are first clipped to zero width (torchvision would count a
    negative area), and an empty union, 0/0 there, scores 0.
    """
    import torch
    from torchvision.ops import box_iou as pairwise_iou

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 4 or a.shape != b.shape:
        raise ValueError(f"boxes must both be float[n, 4], got {a.shape} and {b.shape}")

    def proper(x: np.ndarray) -> torch.Tensor:
        x = x.copy()
        x[:, 2:] = np.maximum(x[:, 2:], x[:, :2])  # x1 >= x0, y1 >= y0: empty, never negative
        return torch.from_numpy(x)

    ta, tb = proper(a), proper(b)
    iou = np.empty(len(a), dtype=np.float64)
    for start in range(0, len(a), QUERY_BLOCK):
        stop = start + QUERY_BLOCK
        iou[start:stop] = pairwise_iou(ta[start:stop], tb[start:stop]).diagonal().numpy()
    return np.nan_to_num(iou, nan=0.0)


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

    The float reference the binary index is measured against, searched by ``faiss.knn``
    (exhaustive, no index). Ties keep the lower reference index first, so the result is
    deterministic. faiss does not promise that order, nor which of several items tied at the
    cut it keeps, so each query asks for more neighbours than ``k'`` until the score at the cut
    is strictly above the last one returned (then every item tied at the cut is among them),
    and the rows are sorted by (score, index) before the cut.
    """
    q = np.asarray(queries, dtype=np.float32)
    ref = np.asarray(references, dtype=np.float32)
    if q.ndim != 2 or ref.ndim != 2 or q.shape[1] != ref.shape[1]:
        raise ValueError(f"need float[n, d] and float[m, d], got {q.shape} and {ref.shape}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    kk = min(k, ref.shape[0])
    out = np.empty((q.shape[0], kk), dtype=np.int64)
    todo = np.arange(q.shape[0])
    wider = kk
    while len(todo):
        wider = min(2 * wider, ref.shape[0])
        scores, top = _knn_inner_product(q[todo], ref, wider)
        order = np.lexsort((top, -scores), axis=-1)  # the last key first: score desc, index asc
        scores = np.take_along_axis(scores, order, axis=-1)
        top = np.take_along_axis(top, order, axis=-1)
        settled = (wider == ref.shape[0]) | (scores[:, kk - 1] > scores[:, -1])
        out[todo[settled]] = top[settled, :kk]
        todo = todo[~settled]
    return out


def exact_top_k_within(
    queries: np.ndarray,
    references: np.ndarray,
    reference_groups: Sequence[str],
    allowed: Sequence[Sequence[str]],
    k: int,
) -> np.ndarray:
    """:func:`exact_top_k` of each query restricted to the references of its ``allowed`` groups.

    Why: the binary index searches only the categories the query was routed to, so what it
    retains is measured against an exact float search of those same categories (routing
    misses are a separate number). Queries sharing a set of groups are searched together.

    Args:
        queries: ``float[n, d]``.
        references: ``float[m, d]``.
        reference_groups: ``str[m]`` the group (category) of each reference.
        allowed: per query, the groups it may find.
        k: neighbours per query.

    Returns:
        ``int[n, k]`` reference rows, best first, ``-1`` where the allowed groups hold fewer
        than ``k`` references.
    """
    q = np.asarray(queries, dtype=np.float32)
    groups = np.asarray(reference_groups, dtype=object)
    if len(allowed) != len(q) or len(groups) != len(references):
        raise ValueError(
            f"{len(allowed)} allowed lists for {len(q)} queries, "
            f"{len(groups)} groups for {len(references)} references"
        )
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    out = np.full((len(q), k), -1, dtype=np.int64)
    by_set: dict[frozenset[str], list[int]] = {}
    for i, a in enumerate(allowed):
        by_set.setdefault(frozenset(a), []).append(i)
    for key, rows in by_set.items():
        cols = np.flatnonzero(np.isin(groups, list(key)))
        if not len(cols):
            continue
        top = exact_top_k(q[rows], references[cols], k)
        out[np.asarray(rows)[:, None], np.arange(top.shape[1])] = cols[top]
    return out


def bucket_index(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """``int[n]`` bucket of each value: ``[e0, e1), [e1, e2), ..., [e_{m-1}, e_m]`` (the last
    bucket includes its upper edge); ``-1`` outside ``[e0, e_m]`` or NaN."""
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or len(e) < 2 or np.any(np.diff(e) <= 0):
        raise ValueError(f"bucket edges must be increasing, at least two, got {list(edges)}")
    v = np.asarray(values, dtype=np.float64)
    idx = np.searchsorted(e, v, side="right") - 1
    idx = np.where(v == e[-1], len(e) - 2, idx)
    return np.where((v >= e[0]) & (v <= e[-1]), idx, -1)


def bucket_name(lo: float, hi: float) -> str:
    """``0.3-0.5``: a bucket's name in metric keys."""
    return f"{lo:g}-{hi:g}"


def _knn_inner_product(q: np.ndarray, ref: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``faiss.knn`` by inner product: scores ``float32[n, k]`` and indices ``int64[n, k]``."""
    import faiss

    scores, top = faiss.knn(q, ref, k, metric=faiss.METRIC_INNER_PRODUCT)
    return scores, top.astype(np.int64, copy=False)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or ``None`` when either is missing or the denominator is 0."""
    if numerator is None or denominator is None:
        return None
    if not np.isfinite(numerator) or not np.isfinite(denominator) or denominator == 0:
        return None
    return float(numerator / denominator)

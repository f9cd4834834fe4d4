"""The measuring: each system searched through the service's own pipeline, and what it scored.

What it measures (definitions in :mod:`vsearch.evaluation.metrics`), on the held-out queries of
an :class:`~vsearch.evaluation.evalset.EvalSet`:

* identical-product recall@K and its curve, MAP@R;
* category accuracy of the classifier, of the neighbour vote and of their fusion, and whether
  the fusion beats both (``category_fused_beats_both``; the click family has the same three
  against the clicked listing's category);
* box IoU of the detected box with the true one: its mean, the share of queries per IoU
  bucket (``evaluation.iou_buckets``) and recall@K within each bucket;
* binary retention: recall of the binary index (Hamming shortlist + float re-rank) over recall
  of an exact float search (``faiss.knn``) of the *same categories* it searched; routing
  retention: that exact search over the searched categories vs over the whole catalog;
* recall and partitions searched at each routing threshold (``index.tune_confidences``),
  routing the calibrated fused probabilities (both families);
* recall with the true box given to the encoder (what a perfect detector would reach);
* for the model, the robustness report (:mod:`vsearch.evaluation.robustness`);
* for the model, single-query latency of the service path (``latency_p50_ms``/``p95``);
* from clicks (every drop, truth or not): ``click_recall@K``, ``click_mrr``,
  ``click_category_acc_*`` on the held-out queries with a click (a hit is the clicked listing
  or a listing of its virtual ID, mined from training clicks), ``click_queries``.

Without ground truth only the click metrics (and latency, grouping size) are measured.

A result that groups listings (``more_sellers``) is a hit when any of its listings shows the
true product. Because grouping is by embedding similarity, a degenerate embedding can lump
every candidate into one group; ``identical_recall@K_heads`` (group heads only),
``group_size_mean`` and ``group_purity`` (share of grouped listings that are the head's
product) are reported beside it so that such a model cannot hide.

Why through :class:`~vsearch.search.pipeline.SearchPipeline`: offline numbers must be the
service's numbers; only the exact-float reference is a plain exhaustive search. Each system
gets its own index release, built in a scratch folder with the production builder.
"""

from __future__ import annotations

import itertools
import logging
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from vsearch.evaluation.evalset import EvalSet
from vsearch.evaluation.metrics import (
    box_iou,
    bucket_index,
    bucket_name,
    category_accuracy,
    exact_top_k,
    exact_top_k_within,
    first_hit_rank,
    map_at_r,
    mean_reciprocal_rank,
    ratio,
    recall_at_k,
    recall_curve,
    relevance_matrix,
)
from vsearch.evaluation.report import MODEL
from vsearch.evaluation.robustness import robustness_metrics
from vsearch.search.encoder import Encoder
from vsearch.search.images import decode_images
from vsearch.search.looks import best_of_looks, take_columns
from vsearch.settings import Settings

if TYPE_CHECKING:
    from vsearch.search.pipeline import SearchPipeline, SearchResponse

log = logging.getLogger(__name__)


@dataclass
class SystemResult:
    """What one system scored, plus what the plots need.

    Attributes:
        name: ``model``, ``colour_histogram``, ``untrained``, or a baseline's name.
        fingerprint: the encoder's fingerprint.
        metrics: metric name → value (``None`` where a metric does not apply).
        curve: ``float[curve_max_k]`` identical recall@K for K = 1..curve_max_k.
        responses: the full pipeline's answer per query (detected box, ``rank=True``).
        per_query: one row per query: id, truth, rank of the first identical result (1-based,
            ``NaN`` if none in the top ``curve_max_k``), predicted categories, box IoU.
        seconds: wall time of this system's evaluation.
    """

    name: str
    fingerprint: str
    metrics: dict[str, float | int | None]
    curve: np.ndarray
    responses: list[SearchResponse] = field(repr=False, default_factory=list)
    per_query: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)
    seconds: float = 0.0


def _groups(responses: Sequence[SearchResponse], grouped: bool) -> list[list[list[str]]]:
    """Listing ids behind each result: the hit plus its grouped sellers when ``grouped``."""
    return [
        [[h.item_id, *(h.more_sellers if grouped else ())] for h in r.results] for r in responses
    ]


def _mean_or_none(values: np.ndarray) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def measure_latency(
    pipeline: SearchPipeline, ev: EvalSet, n: int, warmup: int, k: int
) -> dict[str, float]:
    """Per-query latency of the service path (bytes → decode → model → search → rank).

    Queries go one at a time, as an interactive shopper's would, after ``warmup`` untimed
    ones (lazy initialisation). Returns ``latency_p50_ms`` and ``latency_p95_ms`` (empty when
    ``n`` is 0). Wall times on a shared machine are noisy: compare them, never assert them.
    """
    if n <= 0 or not len(ev):
        return {}
    paths = [ev.drop / ev.query_images[i % len(ev)] for i in range(warmup + n)]
    times = []
    for i, path in enumerate(paths):
        data = path.read_bytes()
        t0 = time.perf_counter()
        pipeline.search_bytes(data, k)
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    p50, p95 = np.percentile(times, [50, 95])
    return {"latency_p50_ms": float(p50), "latency_p95_ms": float(p95)}


def _beats_both(fused: float | None, model: float | None, vote: float | None) -> float | None:
    """1.0 when the fused category is more accurate than the classifier and the vote alone,
    else 0.0; ``None`` without a classifier (fused is then the vote)."""
    if fused is None or model is None or vote is None:
        return None
    return float(fused > model and fused > vote)


def _iou_buckets(
    iou: np.ndarray, hit: np.ndarray, found: np.ndarray, edges: Sequence[float], k: int
) -> dict[str, float | None]:
    """Share of queries per detected-box IoU bucket and recall@``k`` of the findable ones in it.

    Why: a mean IoU hides whether misses come from bad boxes; recall per bucket says how much
    a better detector would buy (recall in the low buckets vs the high ones)."""
    which = bucket_index(iou, edges)
    out: dict[str, float | None] = {}
    for b, (lo, hi) in enumerate(itertools.pairwise(edges)):
        name = bucket_name(lo, hi)
        inside = which == b
        out[f"box_iou_{name}_share"] = _finite(float(inside.mean())) if len(iou) else None
        out[f"identical_recall@{k}_iou_{name}"] = _mean_or_none(hit[inside & found])
    return out


def _search_metrics(
    pipeline: SearchPipeline,
    encoder: Encoder,
    ev: EvalSet,
    query_images: torch.Tensor,
    catalog_emb: np.ndarray,
    settings: Settings,
) -> tuple[dict[str, float | int | None], np.ndarray, list[SearchResponse], pd.DataFrame]:
    """The searches of one system and the metrics of each (see :func:`evaluate_system`)."""
    e = settings.evaluation
    kmax = e.curve_max_k
    enc = pipeline.encode(query_images)  # as the service encodes (candidates, second look)

    # 1. The service's answer (fused category, routed binary search, final ranking, grouping).
    ranked = pipeline.search_encoded(enc, k=kmax, rank=True)
    out: dict[str, float | int | None] = {}
    per_query = pd.DataFrame({"query_id": ev.query_ids})
    curve = np.full(kmax, np.nan)
    if ev.has_truth:
        curve = _truth_metrics(
            pipeline, encoder, ev, query_images, enc, ranked, catalog_emb, e, out, per_query
        )
    click_curve = _click_metrics(ev, ranked, encoder.has_classifier, e, out, per_query)
    out["partitions_searched_mean"] = _mean_or_none(
        np.array([len(r.searched_categories) for r in ranked])
    )
    out.update(_routing_curves(pipeline, ev, enc, settings))
    shown = [h for r in ranked for h in r.results[: e.headline_k]]
    out["group_size_mean"] = _mean_or_none(np.array([1 + len(h.more_sellers) for h in shown]))
    out["queries"] = len(ev)
    per_query["fused_category"] = [r.category for r in ranked]
    per_query["vote_category"] = [r.vote_category for r in ranked]
    per_query["model_category"] = [r.model_category for r in ranked]
    per_query["partitions"] = [len(r.searched_categories) for r in ranked]
    return out, (curve if ev.has_truth else click_curve), ranked, per_query


def _routing_curves(
    pipeline: SearchPipeline, ev: EvalSet, enc: Any, settings: Settings
) -> dict[str, float | None]:
    """Recall and partitions searched at each routing threshold (``index.tune_confidences``),
    and recall searching the ``n`` most probable categories (``n`` = 1 .. 1 +
    ``max_extra_categories``), for the click family (clicked queries) and, with truth, the truth
    family (findable queries).

    Each threshold routes the fused (calibrated) category probabilities as the engine does
    (:func:`vsearch.index.routing.route`, the release's ``max_extra_categories``): the price of
    each extra partition in recall, on the same queries. Routing always searches a prefix of
    the categories in fused order, so each query is searched once per prefix length (through
    the pipeline, as deep as the headline search: grouping depends on the candidates it sees)
    and every threshold is read off those searches. Keys ``routing@<t>_partitions_mean``,
    ``routing@<t>_<recall>`` and ``partitions@<n>_<recall>`` (``<recall>``:
    ``click_recall@K`` / ``identical_recall@K``).
    """
    from vsearch.index.routing import route
    from vsearch.search.fusion import fuse

    hk, depth = settings.evaluation.headline_k, settings.evaluation.curve_max_k
    engine = pipeline.engine
    cats = engine.categories
    families = [(f"click_recall@{hk}", np.flatnonzero(ev.clicked), ev.click_label, ev.label_of)]
    if ev.has_truth:
        families.append(
            (f"identical_recall@{hk}", np.flatnonzero(ev.findable), ev.query_sku, ev.product_of)
        )
    rows = np.unique(np.concatenate([f[1] for f in families]))
    if not cats or not len(rows):
        return {}
    started = time.perf_counter()
    sub = enc.take(rows)
    names, cls_probs, vote = pipeline.category_evidence(sub)
    fused = fuse(cls_probs, vote, pipeline.fusion_weight if cls_probs is not None else 0.0)
    col = {c: j for j, c in enumerate(names)}
    probs = fused[:, [col[c] for c in cats]]
    order = np.argsort(-probs, axis=1, kind="stable")  # route()'s order
    width = min(1 + engine.max_extra_categories, len(cats))
    at = {int(r): i for i, r in enumerate(rows)}
    hits = {key: np.zeros((len(q), width), dtype=bool) for key, q, _, _ in families}
    for n in range(1, width + 1):
        routes = [[cats[j] for j in row[:n]] for row in order]
        res = pipeline.search_encoded(sub, k=depth, categories=routes, rank=True)
        for key, q, truth, product_of in families:
            mine = [res[at[int(r)]] for r in q]
            rel = relevance_matrix(_groups(mine, grouped=True), truth[q], product_of, hk)
            hits[key][:, n - 1] = first_hit_rank(rel) < hk
    out: dict[str, float | None] = {}
    for t in sorted(set(settings.index.tune_confidences)):
        size = np.array([len(r) for r in route(probs, cats, t, engine.max_extra_categories)])
        out[f"routing@{t:g}_partitions_mean"] = float(size.mean())  # over every scored query
        for key, q, _, _ in families:
            if len(q):
                mine = size[[at[int(r)] for r in q]]
                out[f"routing@{t:g}_{key}"] = float(hits[key][np.arange(len(q)), mine - 1].mean())
    for key, q, _, _ in families:
        for n in range(1, width + 1):
            out[f"partitions@{n}_{key}"] = float(hits[key][:, n - 1].mean()) if len(q) else None
    log.info("routing curves: %.1f s", time.perf_counter() - started)
    return out


def _click_metrics(
    ev: EvalSet,
    ranked: list[SearchResponse],
    has_classifier: bool,
    e: Any,
    out: dict[str, float | int | None],
    per_query: pd.DataFrame,
) -> np.ndarray:
    """Click metrics on the queries with a click: recall@K and MRR (a hit is the clicked
    listing or a listing of its virtual ID), category accuracy vs the clicked listing's."""
    kmax = e.curve_max_k
    rows = np.flatnonzero(ev.clicked)
    groups = _groups([ranked[i] for i in rows], grouped=True)
    rel = relevance_matrix(groups, ev.click_label[rows], ev.label_of, kmax)
    curve = recall_curve(rel, kmax)
    for k in sorted(set(e.recall_ks)):
        out[f"click_recall@{k}"] = _finite(curve[k - 1])
    out["click_mrr"] = _finite(mean_reciprocal_rank(rel))
    truth = ev.click_category[rows].tolist()
    (
        out["click_category_acc_model"],
        out["click_category_acc_vote"],
        out["click_category_acc_fused"],
    ) = _category_accuracies([ranked[i] for i in rows], truth, has_classifier)
    out["click_category_fused_beats_both"] = _beats_both(
        out["click_category_acc_fused"],
        out["click_category_acc_model"],
        out["click_category_acc_vote"],
    )
    out["click_queries"] = len(rows)
    first = np.full(len(ev), np.nan)
    hit = first_hit_rank(rel)
    first[rows] = np.where(np.isfinite(hit), hit + 1, np.nan)
    per_query["click_item"] = ev.click_item if len(ev.click_item) == len(ev) else ""
    per_query["click_first_hit"] = first
    return curve


def _exact_best_of(
    looks: Sequence[Any],
    catalog_emb: np.ndarray,
    k: int,
    search: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """Exact float top-``k`` catalog rows (``-1``: none) of the queries, over every look at each
    photo as the pipeline merges them (each listing at its best similarity): the reference
    that binary retention compares the index with."""
    tops = [search(look.embeddings) for look in looks]
    if len(tops) == 1:
        return tops[0]
    ids = np.concatenate(tops, axis=1)
    scores = np.concatenate(
        [
            np.where(t >= 0, np.einsum("nd,nkd->nk", look.embeddings, catalog_emb[t]), np.nan)
            for look, t in zip(looks, tops, strict=True)
        ],
        axis=1,
    )
    return take_columns(ids, best_of_looks(ids, scores, k), -1)


def _category_accuracies(
    responses: Sequence[SearchResponse], truth: list[str], has_classifier: bool
) -> tuple[float | None, float | None, float | None]:
    """Category accuracy of the classifier (``None`` without one), the vote and the fusion."""

    def acc(predicted: list[str | None]) -> float | None:
        return _finite(category_accuracy(predicted, truth))

    model = acc([r.model_category for r in responses]) if has_classifier else None
    return (
        model,
        acc([r.vote_category for r in responses]),
        acc([r.category for r in responses]),
    )


def _truth_metrics(
    pipeline: SearchPipeline,
    encoder: Encoder,
    ev: EvalSet,
    query_images: torch.Tensor,
    enc: Any,
    ranked: list[SearchResponse],
    catalog_emb: np.ndarray,
    e: Any,
    out: dict[str, float | int | None],
    per_query: pd.DataFrame,
) -> np.ndarray:
    """The ground-truth family (demo worlds): identical recall, MAP@R, retention, category
    accuracy, box IoU, recall with the true box. Returns the identical recall@K curve."""
    hk, kmax = e.headline_k, e.curve_max_k
    found = ev.findable
    sku = ev.query_sku
    rel = relevance_matrix(_groups(ranked, grouped=True), sku, ev.product_of, kmax)
    curve = recall_curve(rel[found], kmax)
    out.update({f"identical_recall@{k}": _finite(curve[k - 1]) for k in sorted(set(e.recall_ks))})
    # Diagnostics of the grouping: a hit inside a group counts above, but a group is only
    # the true product when its head is. Degenerate embeddings (everything near-identical)
    # collapse all candidates into one group and would look good by the count above alone.
    rel_heads = relevance_matrix(_groups(ranked, grouped=False), sku, ev.product_of, hk)
    out[f"identical_recall@{hk}_heads"] = _finite(recall_at_k(rel_heads[found], hk))
    shown = [h for r in ranked for h in r.results[:hk]]
    same = [
        ev.product_of.get(m) == ev.product_of.get(h.item_id) for h in shown for m in h.more_sellers
    ]
    out["group_purity"] = _mean_or_none(np.array(same))  # grouped listings of the head's product

    # 2. Per-listing similarity order (no blend, no grouping): MAP@R, and the binary side of
    #    retention against an exact float search of the whole catalog.
    depth = max(hk, int(ev.listings.max(initial=0)))
    plain = pipeline.search_encoded(enc, k=depth, rank=False)
    rel_plain = relevance_matrix(_groups(plain, grouped=False), sku, ev.product_of, depth)
    out["map@r"] = _finite(map_at_r(rel_plain[found], ev.listings[found]))
    binary = recall_at_k(rel_plain[found], hk)
    cat_sku = np.array([ev.product_of.get(i, "") for i in ev.catalog["item_id"].astype(str)])
    cat_sku = np.append(cat_sku, "\0")  # row -1 (no listing left to return) is nobody's product
    looks = enc.looks
    top = _exact_best_of(looks, catalog_emb, hk, lambda q: exact_top_k(q, catalog_emb, hk))
    exact = recall_at_k((cat_sku[top] == sku[:, None])[found], hk)
    searched = [r.searched_categories for r in plain]
    cat_category = ev.catalog["category"].astype(str).to_numpy()
    routed_top = _exact_best_of(
        looks,
        catalog_emb,
        hk,
        lambda q: exact_top_k_within(q, catalog_emb, cat_category, searched, hk),
    )
    routed = recall_at_k((cat_sku[routed_top] == sku[:, None])[found], hk)
    out[f"binary_recall@{hk}"] = _finite(binary)
    out[f"exact_recall@{hk}"] = _finite(exact)
    out[f"exact_recall@{hk}_searched"] = _finite(routed)
    out[f"binary_retention@{hk}"] = ratio(binary, routed)  # same categories: the index alone
    out[f"routing_retention@{hk}"] = ratio(routed, exact)  # what routing loses, exact floats

    truth_cat = ev.query_category.tolist()
    (
        out["category_acc_model"],
        out["category_acc_search"],
        out["category_acc_fused"],
    ) = _category_accuracies(ranked, truth_cat, encoder.has_classifier)
    out["category_fused_beats_both"] = _beats_both(
        out["category_acc_fused"], out["category_acc_model"], out["category_acc_search"]
    )
    pred_boxes = np.array([r.box for r in ranked], dtype=np.float64).reshape(-1, 4)
    iou = box_iou(pred_boxes, ev.true_boxes)
    out["box_iou_mean"] = _mean_or_none(iou)
    out.update(_iou_buckets(iou, first_hit_rank(rel) < hk, found, e.iou_buckets, hk))

    # 3. The same search with the true box given to the encoder (a perfect detector).
    boxed = pipeline.search_encoded(pipeline.encode(query_images, ev.true_boxes), k=hk, rank=True)
    rel_box = relevance_matrix(_groups(boxed, grouped=True), sku, ev.product_of, hk)
    out[f"identical_recall@{hk}_true_box"] = _finite(recall_at_k(rel_box[found], hk))
    # ... and its category: how much of the category error is the detector's
    out["category_acc_model_true_box"], _, out["category_acc_fused_true_box"] = (
        _category_accuracies(boxed, truth_cat, encoder.has_classifier)
    )
    out["queries_findable"] = int(found.sum())

    first = first_hit_rank(rel)
    per_query["sku"] = sku
    per_query["category"] = truth_cat
    per_query["listings"] = ev.listings
    per_query["first_hit"] = np.where(np.isfinite(first), first + 1, np.nan)
    per_query["box_iou"] = iou
    return curve


def evaluate_system(
    name: str,
    encoder: Encoder,
    ev: EvalSet,
    query_images: torch.Tensor,
    catalog_images: torch.Tensor,
    settings: Settings,
    workdir: Path,
    latency: bool = False,
    calibration_images: torch.Tensor | None = None,
    robustness: bool = False,
) -> SystemResult:
    """Index the catalog with ``encoder`` and search the held-out queries.

    1. as the service answers (fused category, routed binary search, ranking, grouping):
       click recall@K, MRR and category accuracy vs the clicked listing; with truth also
       identical recall@K and its curve, category accuracies, box IoU;
    2. (truth) in plain similarity order per listing: MAP@R and binary retention;
    3. (truth) with the true boxes given to the encoder: recall at ``headline_k``.

    Args:
        name: the system's name (logs and the result).
        encoder: a :class:`vsearch.search.encoder.Encoder`.
        ev: the held-out queries and the catalog.
        query_images, catalog_images: ``uint8[n, 3, S, S]`` at the encoder's input size, rows in
            ``ev``'s query and catalog order.
        settings: all settings (the pipeline reads ``index``/``search``, this ``evaluation``).
        workdir: scratch folder for the index release.
        latency: also time single-query searches (:func:`measure_latency`).
        calibration_images: photos of ``ev.calib_images``: the fusion weight is calibrated on
            them first (the service then uses it too: the release records it).
        robustness: also the robustness report (:mod:`vsearch.evaluation.robustness`, truth).
    """
    from vsearch.search.build import build_pipeline_from_embeddings, encode_catalog

    e = settings.evaluation
    started = time.perf_counter()
    emb = encode_catalog(encoder, ev.catalog, catalog_images)
    with build_pipeline_from_embeddings(encoder, ev.catalog, emb, settings, workdir) as pipeline:
        log.info("%s: index of %d listings built", name, len(emb))
        calibration = None
        if calibration_images is not None and encoder.has_classifier:
            calibration = _calibrate(pipeline, ev, calibration_images, settings)
            pipeline.fusion_weight = calibration["fusion_weight"]
            pipeline.vote_temperature = calibration["vote_temperature"]
            log.info(
                "%s: fusion weight %.2f, vote temperature %s (calibrated on %d queries, "
                "accuracy %.3f)",
                name,
                calibration["fusion_weight"],
                calibration["vote_temperature"],
                calibration["queries"],
                calibration["accuracy"],
            )
        out, curve, ranked, per_query = _search_metrics(
            pipeline, encoder, ev, query_images, emb.vectors, settings
        )
        out["fusion_weight"] = pipeline.fusion_weight if encoder.has_classifier else None
        out["vote_temperature"] = pipeline.vote_temperature
        if calibration is not None:
            out["fusion_calibration_queries"] = calibration["queries"]
            out["fusion_calibration_accuracy"] = calibration["accuracy"]
        if latency:
            out.update(
                measure_latency(pipeline, ev, e.latency_queries, e.latency_warmup, e.headline_k)
            )
        if robustness:
            out.update(robustness_metrics(pipeline, ev, query_images, catalog_images, settings))
    seconds = time.perf_counter() - started
    hk = e.headline_k
    log.info(
        "%s: click recall@%d %s, click MRR %s, recall@%d %s, MAP@R %s, fused category %s, "
        "box IoU %s (%.1f s)",
        name,
        hk,
        _fmt(out.get(f"click_recall@{hk}")),
        _fmt(out.get("click_mrr")),
        hk,
        _fmt(out.get(f"identical_recall@{hk}")),
        _fmt(out.get("map@r")),
        _fmt(out.get("category_acc_fused")),
        _fmt(out.get("box_iou_mean")),
        seconds,
    )
    return SystemResult(
        name=name,
        fingerprint=str(encoder.fingerprint),
        metrics=out,
        curve=curve,
        responses=ranked,
        per_query=per_query,
        seconds=seconds,
    )


def _calibrate(
    pipeline: SearchPipeline, ev: EvalSet, images: torch.Tensor, settings: Settings
) -> dict[str, Any]:
    """The fusion weight and vote temperature that classify the click-labelled validation
    queries best (queries the model never trained on:
    :func:`vsearch.evaluation.evalset.add_calibration_set`); grids ``evaluation.fusion_grid``
    and ``evaluation.vote_temperature_grid`` (empty: the configured temperature only)."""
    from vsearch.search.fusion import calibrate_fusion

    e = settings.evaluation
    enc = pipeline.encode(images)  # the evidence the service fuses (both looks)
    configured = pipeline.vote_temperature
    temperatures = list(dict.fromkeys(e.vote_temperature_grid)) or [configured]
    votes, cls_probs, names = {}, None, []
    for t in temperatures:
        pipeline.vote_temperature = t
        names, cls_probs, votes[t] = pipeline.category_evidence(enc)
    col = {c: j for j, c in enumerate(names)}
    labels = np.array([col.get(c, -1) for c in ev.calib_category])
    known = labels >= 0
    weight, temperature, acc = calibrate_fusion(
        cls_probs[known],
        {t: v[known] for t, v in votes.items()},
        labels[known],
        e.fusion_grid,
        prefer=configured,
    )
    return {
        "fusion_weight": weight,
        "vote_temperature": temperature,
        "queries": int(known.sum()),
        "accuracy": acc,
    }


def _fmt(x: float | int | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


class _ImageCache:
    """Decoded photos per input size: systems sharing a size share one decode."""

    def __init__(self, drop: Path, ev: EvalSet, workers: int) -> None:
        self.root, self.ev, self.workers = drop.resolve(), ev, workers
        self._cache: dict[tuple[str, int], torch.Tensor] = {}

    def get(self, which: str, size: int) -> torch.Tensor:
        key = (which, size)
        if key not in self._cache:
            rels = {
                "queries": self.ev.query_images,
                "calibration": self.ev.calib_images,
            }.get(which, self.ev.catalog["image"])
            t0 = time.perf_counter()
            self._cache[key] = decode_images([self.root / str(p) for p in rels], size, self.workers)
            log.info(
                "decoded %d photos (%s) at %d px (%.1f s)",
                len(rels),
                which,
                size,
                time.perf_counter() - t0,
            )
        return self._cache[key]


def evaluate_systems(
    systems: Mapping[str, Encoder],
    ev: EvalSet,
    settings: Settings,
    workdir: Path | None = None,
) -> dict[str, SystemResult]:
    """Evaluate each ``name → encoder`` on ``ev``; index releases go to a scratch folder.

    Photos are decoded once per size, at each encoder's ``input_size`` (else the model's).
    """
    e = settings.evaluation
    images = _ImageCache(ev.drop, ev, e.decode_workers)
    results: dict[str, SystemResult] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.project.threads)
    try:
        with tempfile.TemporaryDirectory(prefix="vsearch-eval-", dir=workdir) as tmp:
            for name, encoder in systems.items():
                size = int(getattr(encoder, "input_size", None) or settings.model.input_size)
                log.info("evaluating %s on %d held-out queries", name, len(ev))
                results[name] = evaluate_system(
                    name,
                    encoder,
                    ev,
                    images.get("queries", size),
                    images.get("catalog", size),
                    settings,
                    Path(tmp) / name,
                    latency=name == MODEL,
                    robustness=name == MODEL,
                    calibration_images=images.get("calibration", size) if ev.calib_images else None,
                )
    finally:
        torch.set_num_threads(threads)
    return results

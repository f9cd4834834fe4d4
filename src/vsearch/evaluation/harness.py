"""The evaluation harness: every system searched through the service's own pipeline.

What it measures (DESIGN.md section 8), on the **held-out** demo queries only
(:mod:`vsearch.split`: the queries training
never loads), against the demo world's ground truth (read here and nowhere else):

* identical-product recall@K and its curve, MAP@R;
* category accuracy of the classifier, of the neighbour vote and of their fusion;
* box IoU of the detected box with the true one;
* binary retention: recall of the binary index (Hamming shortlist + float re-rank) over recall
  of an exact float search of the whole catalog with the same embeddings;
* recall with the true box given to the encoder (what a perfect detector would reach);
* for the model, single-query latency of the service path (``latency_p50_ms``/``p95``).

A result that groups listings (``more_sellers``) is a hit when any of its listings shows the
true product. Because grouping is by embedding similarity, a degenerate embedding can lump
every candidate into one group; ``identical_recall@K_heads`` (group heads only),
``group_size_mean`` and ``group_purity`` (share of grouped listings that are the head's
product) are reported beside it so that such a model cannot hide.

Why through :class:`~vsearch.search.pipeline.SearchPipeline`: offline numbers must be the
service's numbers (DESIGN.md section 2); only the exact-float reference is plain numpy. Each
system gets its own index release, built in a scratch folder with the production builder.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from vsearch.contracts import (
    CATALOG,
    ITEM_TRUTH,
    PRODUCTS_TRUTH,
    QUERIES,
    QUERY_TRUTH,
    ContractError,
    read_drop_manifest,
    read_table,
)
from vsearch.errors import BadInput
from vsearch.evaluation.metrics import (
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
from vsearch.search.encoder import Encoder
from vsearch.settings import Settings, SplitSettings

if TYPE_CHECKING:
    from vsearch.search.pipeline import SearchPipeline, SearchResponse

log = logging.getLogger(__name__)

MODEL = "model"


@dataclass
class EvalSet:
    """The held-out queries with their truth, and the catalog they search (no pixels).

    Attributes:
        drop_id: the drop's id (``drop.json`` or the folder name).
        drop: the drop folder (image paths are relative to it).
        query_ids, query_images: held-out queries that have a truth row (image paths relative).
        query_sku, query_category: each query's true product and that product's category.
        true_boxes: ``float32[n, 4]`` normalised ``xyxy`` of the product in each query photo.
        listings: ``int[n]`` catalog listings of each query's product (R of MAP@R).
        catalog: the drop's catalog table.
        product_of: catalog ``item_id`` → true product (``sku``).
        without_truth: held-out queries left out for lack of a truth row.
        calib_images, calib_category: click-labelled *training* queries (the category of their
            clicked listing) that calibrate each model's fusion weight; never held-out ones.
    """

    drop_id: str
    drop: Path
    query_ids: np.ndarray
    query_images: list[str]
    query_sku: np.ndarray
    query_category: np.ndarray
    true_boxes: np.ndarray
    listings: np.ndarray
    catalog: pd.DataFrame
    product_of: dict[str, str]
    without_truth: int = 0
    calib_images: list[str] = field(default_factory=list)
    calib_category: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=str))

    def __len__(self) -> int:
        return len(self.query_ids)

    @property
    def findable(self) -> np.ndarray:
        """Queries whose product has at least one listing (the only ones recall can find)."""
        return self.listings > 0


def _image_sizes(drop: Path, paths: Sequence[str]) -> np.ndarray:
    """``float[n, 2]`` (width, height) of image files, from their headers only."""
    from PIL import Image

    sizes = np.empty((len(paths), 2), dtype=np.float64)
    for i, rel in enumerate(paths):
        try:
            with Image.open(drop / rel) as img:
                sizes[i] = img.size
        except OSError as exc:
            raise BadInput(f"{drop / rel}: cannot read image ({exc}); validate the drop") from None
    return sizes


def load_eval_set(drop: Path, truth: Path, split: SplitSettings) -> EvalSet:
    """The held-out queries of ``drop`` joined with the truth in ``truth``.

    Raises:
        BadInput: a folder or table is missing, or no held-out query has a truth row.
    """
    from vsearch.split import is_held_out

    for name, folder in (("--drop", drop), ("--truth", truth)):
        if not folder.is_dir():
            raise BadInput(f"{name} {folder}: not a folder")
    try:
        queries = read_table(drop, QUERIES)
        catalog = read_table(drop, CATALOG)
        q_truth = read_table(truth, QUERY_TRUTH)
        i_truth = read_table(truth, ITEM_TRUTH)
        products = read_table(truth, PRODUCTS_TRUTH)
    except ContractError as exc:
        raise BadInput(str(exc)) from None
    queries["query_id"] = queries["query_id"].astype(str)
    held = queries[is_held_out(queries["query_id"], split)]
    if held.empty:
        raise BadInput(
            f"{drop}: no held-out queries (split.holdout_share={split.holdout_share}); "
            "evaluation needs queries the model never trained on"
        )
    joined = held.merge(q_truth, on="query_id", how="inner").sort_values("query_id")
    if joined.empty:
        raise BadInput(f"{truth}: none of the {len(held)} held-out queries has a truth row")
    sku_category = dict(
        zip(products["sku"].astype(str), products["category"].astype(str), strict=True)
    )
    item_ids = catalog["item_id"].astype(str)
    item_sku = dict(zip(i_truth["item_id"].astype(str), i_truth["sku"].astype(str), strict=True))
    product_of = {i: item_sku[i] for i in item_ids if i in item_sku}
    per_sku = pd.Series(list(product_of.values()), dtype=str).value_counts()
    sku = joined["sku"].astype(str).to_numpy()
    images = joined["image"].astype(str).tolist()
    wh = _image_sizes(drop, images)
    px = joined[["box_x0", "box_y0", "box_x1", "box_y1"]].to_numpy(np.float64)
    boxes = np.clip(px / np.concatenate([wh, wh], axis=1), 0.0, 1.0).astype(np.float32)
    manifest = read_drop_manifest(drop)
    return EvalSet(
        drop_id=str(manifest.get("drop_id") or drop.name),
        drop=drop,
        query_ids=joined["query_id"].to_numpy(dtype=str),
        query_images=images,
        query_sku=sku,
        query_category=np.array([sku_category.get(s, "") for s in sku], dtype=str),
        true_boxes=boxes,
        listings=np.array([int(per_sku.get(s, 0)) for s in sku], dtype=np.int64),
        catalog=catalog,
        product_of=product_of,
        without_truth=len(held) - len(joined),
    )


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


def _search_metrics(
    pipeline: SearchPipeline,
    encoder: Encoder,
    ev: EvalSet,
    query_images: torch.Tensor,
    catalog_emb: np.ndarray,
    settings: Settings,
) -> tuple[dict[str, float | int | None], np.ndarray, list[SearchResponse], pd.DataFrame]:
    """The three searches of one system and the metrics of each (see :func:`evaluate_system`)."""
    e = settings.evaluation
    hk, kmax = e.headline_k, e.curve_max_k
    enc = encoder.encode(query_images)
    found = ev.findable
    sku = ev.query_sku

    # 1. The service's answer (fused category, routed binary search, final ranking, grouping).
    ranked = pipeline.search_encoded(enc, k=kmax, rank=True)
    rel = relevance_matrix(_groups(ranked, grouped=True), sku, ev.product_of, kmax)
    curve = recall_curve(rel[found], kmax)
    out: dict[str, float | int | None] = {
        f"identical_recall@{k}": _finite(curve[k - 1]) for k in sorted(set(e.recall_ks))
    }
    # Diagnostics of the grouping: a hit inside a group counts above, but a group is only
    # the true product when its head is. Degenerate embeddings (everything near-identical)
    # collapse all candidates into one group and would look good by the count above alone.
    rel_heads = relevance_matrix(_groups(ranked, grouped=False), sku, ev.product_of, hk)
    out[f"identical_recall@{hk}_heads"] = _finite(recall_at_k(rel_heads[found], hk))
    shown = [h for r in ranked for h in r.results[:hk]]
    out["group_size_mean"] = _mean_or_none(np.array([1 + len(h.more_sellers) for h in shown]))
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
    top = exact_top_k(enc.embeddings, catalog_emb, hk)
    cat_sku = np.array([ev.product_of.get(i, "") for i in ev.catalog["item_id"].astype(str)])
    exact = recall_at_k((cat_sku[top] == sku[:, None])[found], hk)
    out[f"binary_recall@{hk}"] = _finite(binary)
    out[f"exact_recall@{hk}"] = _finite(exact)
    out[f"binary_retention@{hk}"] = ratio(binary, exact)

    truth_cat = ev.query_category.tolist()
    out["category_acc_model"] = (
        _finite(category_accuracy([r.model_category for r in ranked], truth_cat))
        if encoder.has_classifier
        else None
    )
    out["category_acc_search"] = _finite(
        category_accuracy([r.vote_category for r in ranked], truth_cat)
    )
    out["category_acc_fused"] = _finite(category_accuracy([r.category for r in ranked], truth_cat))
    pred_boxes = np.array([r.box for r in ranked], dtype=np.float64).reshape(-1, 4)
    iou = box_iou(pred_boxes, ev.true_boxes)
    out["box_iou_mean"] = _mean_or_none(iou)

    # 3. The same search with the true box given to the encoder (a perfect detector).
    boxed = pipeline.search_encoded(encoder.encode(query_images, ev.true_boxes), k=hk, rank=True)
    rel_box = relevance_matrix(_groups(boxed, grouped=True), sku, ev.product_of, hk)
    out[f"identical_recall@{hk}_true_box"] = _finite(recall_at_k(rel_box[found], hk))
    out["queries"] = len(ev)
    out["queries_findable"] = int(found.sum())

    first = first_hit_rank(rel)
    per_query = pd.DataFrame(
        {
            "query_id": ev.query_ids,
            "sku": sku,
            "category": truth_cat,
            "listings": ev.listings,
            "first_hit": np.where(np.isfinite(first), first + 1, np.nan),
            "fused_category": [r.category for r in ranked],
            "vote_category": [r.vote_category for r in ranked],
            "model_category": [r.model_category for r in ranked],
            "box_iou": iou,
        }
    )
    return out, curve, ranked, per_query


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
) -> SystemResult:
    """Index the catalog with ``encoder`` and search the held-out queries three ways.

    1. as the service answers (fused category, routed binary search, ranking, grouping):
       recall@K and its curve, category accuracies, box IoU;
    2. in plain similarity order per listing: MAP@R and binary retention;
    3. with the true boxes given to the encoder: recall at ``headline_k``.

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
    """
    from vsearch.search.build import build_pipeline_from_embeddings, encode_catalog

    e = settings.evaluation
    started = time.perf_counter()
    emb = encode_catalog(encoder, ev.catalog, catalog_images)
    with build_pipeline_from_embeddings(encoder, ev.catalog, emb, settings, workdir) as pipeline:
        log.info("%s: index of %d listings built", name, len(emb))
        calibration = None
        if calibration_images is not None and encoder.has_classifier:
            calibration = _calibrate(pipeline, encoder, ev, calibration_images, e.fusion_grid)
            pipeline.fusion_weight = calibration["fusion_weight"]
            log.info("%s: fusion weight %.2f (calibrated)", name, calibration["fusion_weight"])
        out, curve, ranked, per_query = _search_metrics(
            pipeline, encoder, ev, query_images, emb.vectors, settings
        )
        out["fusion_weight"] = pipeline.fusion_weight if encoder.has_classifier else None
        if calibration is not None:
            out["fusion_calibration_queries"] = calibration["queries"]
        if latency:
            out.update(
                measure_latency(pipeline, ev, e.latency_queries, e.latency_warmup, e.headline_k)
            )
    seconds = time.perf_counter() - started
    hk = e.headline_k
    log.info(
        "%s: recall@%d %s, MAP@R %s, fused category %s, box IoU %s (%.1f s)",
        name,
        hk,
        _fmt(out.get(f"identical_recall@{hk}")),
        _fmt(out["map@r"]),
        _fmt(out["category_acc_fused"]),
        _fmt(out["box_iou_mean"]),
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
    pipeline: Any, encoder: Encoder, ev: EvalSet, images: torch.Tensor, grid: Sequence[float]
) -> dict[str, Any]:
    """The fusion weight that classifies the click-labelled training queries best."""
    from vsearch.search.fusion import calibrate_weight

    names, cls_probs, vote = pipeline.category_evidence(encoder.encode(images))
    col = {c: j for j, c in enumerate(names)}
    labels = np.array([col.get(c, -1) for c in ev.calib_category])
    known = labels >= 0
    weight, acc = calibrate_weight(cls_probs[known], vote[known], labels[known], grid)
    return {"fusion_weight": weight, "queries": int(known.sum()), "accuracy": acc}


def _fmt(x: float | int | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


class _ImageCache:
    """Decoded photos per input size: systems sharing a size share one decode."""

    def __init__(self, drop: Path, ev: EvalSet, workers: int) -> None:
        self.root, self.ev, self.workers = drop.resolve(), ev, workers
        self._cache: dict[tuple[str, int], torch.Tensor] = {}

    def get(self, which: str, size: int) -> torch.Tensor:
        from vsearch.search.images import decode_images

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
                    calibration_images=images.get("calibration", size) if ev.calib_images else None,
                )
    finally:
        torch.set_num_threads(threads)
    return results


def resolve_model_dir(path: Path) -> Path:
    """A model folder, or a training run folder holding one in ``model/``."""
    from vsearch.model.export import META_FILE

    for candidate in (path, path / "model"):
        if (candidate / META_FILE).is_file():
            return candidate
    raise BadInput(f"{path}: not a model folder (no {META_FILE}, nor model/{META_FILE})")


def build_systems(
    settings: Settings, model_dir: Path, baselines: Mapping[str, Path]
) -> tuple[dict[str, Encoder], dict[str, str]]:
    """The encoders to evaluate, and the baselines skipped with the reason why.

    Raises:
        BadInput: the model folder is not one, or a baseline name is taken or unknown-shaped.
    """
    from vsearch.evaluation.baselines import (
        BUILTIN_SYSTEMS,
        COLOUR_HISTOGRAM,
        EXTERNAL_BASELINES,
        UNTRAINED,
        ColourHistogramEncoder,
        untrained_encoder,
    )
    from vsearch.search.encoder import NetEncoder, resolve_device

    device = resolve_device(settings.project.device)
    e = settings.evaluation
    model_dir = resolve_model_dir(model_dir)
    model = NetEncoder.load(model_dir, device=device, batch_size=e.batch_size)
    systems: dict[str, Encoder] = {MODEL: model}
    systems[COLOUR_HISTOGRAM] = ColourHistogramEncoder(
        model.categories,
        e.histogram_bins,
        settings.index.bits,
        settings.project.seed,
        input_size=int(model.input_size),
        batch_size=e.batch_size,
    )
    systems[UNTRAINED] = untrained_encoder(
        model_dir, settings.project.seed, device=device, batch_size=e.batch_size
    )
    skipped: dict[str, str] = {}
    for name, folder in baselines.items():
        if name in BUILTIN_SYSTEMS:
            raise BadInput(
                f"--baseline {name}=...: {name!r} is a built-in system; pick another name"
            )
        try:
            systems[name] = NetEncoder.load(
                resolve_model_dir(folder), device=device, batch_size=e.batch_size
            )
        except (BadInput, ValueError) as exc:
            skipped[name] = f"skipped: {exc}"
            log.warning("baseline %s %s", name, skipped[name])
    for name in EXTERNAL_BASELINES:
        if name not in baselines:
            skipped[name] = f"skipped: not given (--baseline {name}=DIR)"
            log.warning("baseline %s %s", name, skipped[name])
    return systems, skipped


def run_evaluation(
    settings: Settings,
    drop: Path,
    truth: Path,
    model_dir: Path,
    out: Path,
    baselines: Mapping[str, Path] | None = None,
    workdir: Path | None = None,
    mining: Path | None = None,
) -> dict[str, Any]:
    """``vsearch evaluate``: evaluate the model and its baselines, write the report and plots.

    Writes ``out/metrics.json``, ``out/plots/recall_at_k.csv`` and the PNGs; returns the report.

    Args:
        mining: the mining outputs the model trained on: their virtual IDs group listings of
            one product in the results (as the service does), and the report scores them
            against the truth (purity, coverage).
    """
    from vsearch.evaluation.plots import build_examples, plot_examples, plot_recall_curves
    from vsearch.evaluation.report import build_report, curve_frame, write_report
    from vsearch.search.groups import with_product_groups

    started = time.perf_counter()
    ev = load_eval_set(drop, truth, settings.split)
    log.info(
        "%s: %d held-out queries with truth (%d without), %d listings",
        ev.drop_id,
        len(ev),
        ev.without_truth,
        len(ev.catalog),
    )
    ev.catalog = with_product_groups(ev.catalog, mining)
    if mining is not None:
        _add_calibration_set(ev, drop, mining, settings)
    systems, skipped = build_systems(settings, model_dir, baselines or {})
    results = evaluate_systems(systems, ev, settings, workdir)
    report = build_report(results, skipped, ev, settings.evaluation)
    if mining is not None:
        report["virtual_ids"] = _virtual_id_report(mining, truth)
    curves = curve_frame(results)
    paths = write_report(report, curves, results[MODEL].per_query, out)
    plots = out / "plots"
    e = settings.evaluation
    plot_recall_curves(curves, plots / "recall_at_k.png", e.recall_ks)
    if e.examples:
        examples = build_examples(
            results[MODEL], ev, e.examples, e.example_results, settings.project.seed
        )
        plot_examples(examples, ev.drop, plots / "examples.png", e.example_thumb_px)
    log.info("evaluation written to %s (%.1f s)", paths["metrics"], time.perf_counter() - started)
    return report


def _virtual_id_report(mining: Path, truth: Path) -> dict[str, Any]:
    """Purity and coverage of the mined virtual IDs against the truth (report only)."""
    from vsearch.mining.quality import virtual_id_quality

    try:
        vids = pd.read_parquet(mining / "virtual_ids.parquet")
        qv_path = mining / "query_virtual_ids.parquet"
        qv = pd.read_parquet(qv_path) if qv_path.is_file() else None
        return virtual_id_quality(
            vids, read_table(truth, ITEM_TRUTH), qv, read_table(truth, QUERY_TRUTH)
        )
    except (OSError, ContractError) as exc:
        raise BadInput(f"--mining {mining}: {exc}") from None


def _add_calibration_set(ev: EvalSet, drop: Path, mining: Path, settings: Settings) -> None:
    """Click-labelled training queries (mined first clicks, never held out) for calibration."""
    from vsearch.split import is_held_out

    path = mining / "query_virtual_ids.parquet"
    if not path.is_file():
        log.warning("%s: no query_virtual_ids; fusion weight from params", mining)
        return
    clicks = pd.read_parquet(path, columns=["query_id", "item_id"]).astype(str)
    clicks = clicks[~is_held_out(clicks["query_id"], settings.split)]
    category = dict(
        zip(ev.catalog["item_id"].astype(str), ev.catalog["category"].astype(str), strict=False)
    )
    clicks = clicks[clicks["item_id"].isin(category)]
    n = min(len(clicks), settings.evaluation.calibration_queries)
    clicks = clicks.sample(n=n, random_state=settings.project.seed) if n < len(clicks) else clicks
    queries = read_table(drop, QUERIES)[["query_id", "image"]].astype(str)
    joined = clicks.merge(queries, on="query_id", how="inner")
    ev.calib_images = joined["image"].tolist()
    ev.calib_category = joined["item_id"].map(category).to_numpy(dtype=str)
    log.info("fusion calibration on %d click-labelled training queries", len(joined))

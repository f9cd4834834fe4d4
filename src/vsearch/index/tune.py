"""Re-rank depth auto-tuning: measure recall@k against exact float search, pick the cheapest.

Why measure: the shortlist depth ``R`` (and IVF ``nprobe`` / HNSW ``efSearch``) trade speed for
recall, and the right values depend on the model's codes and the catalog, so guessing them is
either slow or inaccurate. ``tune`` runs the engine's own two stages on a sample of queries for
every (search effort, depth) pair of the params grid, computes recall@k against an exhaustive
float inner-product search over the *whole* catalog, and chooses, among the pairs that reach
``target_recall``, the one with the lowest measured time per query (ties: the smaller depth).
The full curve is written to the manifest so the choice can be audited.

The shortlist is computed once per effort value at the largest depth: a depth-``R`` shortlist
is its first ``R`` entries (ordered by Hamming distance), so the depth sweep costs one re-rank.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from vsearch.index.embeddings import EmbeddingSet, check_codes, check_vectors
from vsearch.index.engine import Engine
from vsearch.index.manifest import Manifest, SearchDefaults
from vsearch.index.partition import SearchKnobs
from vsearch.index.routing import route
from vsearch.settings import IndexSettings

log = logging.getLogger(__name__)

KnnFn = Callable[[np.ndarray, np.ndarray, int], tuple[np.ndarray, np.ndarray]]


def faiss_knn_ip(queries: np.ndarray, base: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product k-NN (faiss's blocked BLAS search)."""
    import faiss

    return faiss.knn(queries, base, k, metric=faiss.METRIC_INNER_PRODUCT)


@dataclass(frozen=True)
class TuneQueries:
    """Queries to tune on.

    Attributes:
        codes: ``uint8[nq, bits/8]``.
        vectors: ``float32[nq, d]``.
        categories: categories searched per query (as the online pipeline would route them).
        exclude: per query an item id to ignore in both truth and results (a catalog item used
            as its own query), or ``None``.
        category_probs: ``float[nq, n_categories]`` fused category probabilities; when given
            (with ``category_names``), the routing threshold ``uncertain_confidence`` is tuned
            too and ``categories`` is ignored.
        category_names: the category of each probability column.
    """

    codes: np.ndarray
    vectors: np.ndarray
    categories: list[list[str]] | None = None
    exclude: np.ndarray | None = None
    category_probs: np.ndarray | None = None
    category_names: Sequence[str] | None = None

    def __post_init__(self) -> None:
        codes = check_codes(self.codes)
        vectors = check_vectors(self.vectors, n=len(codes))
        if self.category_probs is not None:
            probs = np.asarray(self.category_probs, dtype=np.float64)
            names = self.category_names
            if names is None or probs.shape != (len(codes), len(names)):
                raise ValueError("category_probs must be float[nq, len(category_names)]")
        elif self.categories is None or len(self.categories) != len(codes):
            raise ValueError("categories must have one entry per query (or give category_probs)")
        object.__setattr__(self, "codes", codes)
        object.__setattr__(self, "vectors", vectors)

    @classmethod
    def from_catalog(cls, catalog: EmbeddingSet, n: int, seed: int = 0) -> TuneQueries:
        """``n`` catalog items as queries of their own category (each excluded from its results).

        Why acceptable: without logged queries, items are the best stand-in; excluding the
        item itself keeps the trivial self-match from inflating recall.
        """
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(len(catalog), min(n, len(catalog)), replace=False))
        return cls(
            catalog.codes[rows],
            np.asarray(catalog.vectors[rows], dtype=np.float32),
            [[c] for c in catalog.categories[rows]],
            catalog.item_ids[rows],
        )


def exact_truth(
    catalog: EmbeddingSet,
    queries: TuneQueries,
    k: int,
    knn: KnnFn = faiss_knn_ip,
) -> np.ndarray:
    """Item ids of the exact float top-``k`` over the whole catalog, ``object[nq, k]``."""
    extra = 1 if queries.exclude is not None else 0
    _, idx = knn(queries.vectors, np.ascontiguousarray(catalog.vectors, np.float32), k + extra)
    ids = catalog.item_ids[idx]
    if queries.exclude is None:
        return ids
    return _drop_excluded(ids, queries.exclude, k)


def _drop_excluded(ids: np.ndarray, exclude: np.ndarray, k: int) -> np.ndarray:
    out = np.full((len(ids), k), None, dtype=object)
    for i, row in enumerate(ids):
        kept = [x for x in row if x is not None and x != exclude[i]][:k]
        out[i, : len(kept)] = kept
    return out


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean over queries of |found ∩ truth| / |truth| (item ids, ``None`` ignored)."""
    total = 0.0
    for f, t in zip(found, truth, strict=True):
        want = {x for x in t if x is not None}
        if want:
            total += len(want & {x for x in f if x is not None}) / len(want)
    return total / max(len(truth), 1)


@dataclass
class TuneResult:
    """The choice and the curve behind it."""

    chosen: SearchDefaults
    met_target: bool
    target: float
    k: int
    n_queries: int
    knob: str
    curve: list[dict]

    def to_json(self) -> dict:
        out = asdict(self)
        out["chosen"] = asdict(self.chosen)
        return out


def _knob_name(engine: Engine) -> str:
    kinds = {p.kind for p in engine._parts}
    if "ivf" in kinds:
        return "nprobe"
    if "hnsw" in kinds:
        return "ef_search"
    return "none"


def tune(
    engine: Engine,
    queries: TuneQueries,
    truth: np.ndarray,
    settings: IndexSettings,
    k: int | None = None,
    timer: Callable[[], float] = time.perf_counter,
    repeats: int = 3,
) -> TuneResult:
    """Sweep the grid of ``settings`` and choose the fastest setting that meets the target.

    Args:
        engine: the opened release.
        queries: tuning queries.
        truth: exact top-``k`` item ids per query (:func:`exact_truth`).
        settings: ``target_recall``, ``tune_k``, ``tune_depths``, ``tune_nprobes``/``tune_efs``.
        k: recall cut-off (default ``settings.tune_k``).
        timer: clock for the timings (injectable for deterministic tests).
        repeats: timing repeats per candidate point (the minimum is kept: shared machines).
    """
    k = k or settings.tune_k
    if truth.shape != (len(queries.codes), k):
        raise ValueError(f"truth must be object[{len(queries.codes)}, {k}], got {truth.shape}")
    depths = sorted({d for d in settings.tune_depths if d >= k}) or [max(k, engine.rerank_depth)]
    knob = _knob_name(engine)
    values = {"nprobe": settings.tune_nprobes, "ef_search": settings.tune_efs}.get(knob, [0])
    if queries.category_probs is not None:
        confidences = sorted(set(settings.tune_confidences))
    else:
        confidences = [engine.uncertain_confidence]
    extra = 1 if queries.exclude is not None else 0
    curve: list[dict] = []
    feasible: list[tuple[float, int, float, float, SearchKnobs]] = []
    for conf in confidences:
        if queries.category_probs is not None:
            cats = route(
                queries.category_probs,
                list(queries.category_names),
                conf,
                settings.max_extra_categories,
            )
        else:
            cats = queries.categories
        widened = any(len(c) > 1 for c in cats)
        extra_depths = sorted(set(settings.tune_extra_depths)) if widened else [1.0]
        for extra_depth in extra_depths:
            for value in sorted(set(values)):
                knobs = engine.knobs
                if knob != "none":
                    knobs = replace(knobs, **{knob: value})
                point = {"uncertain_confidence": conf, "extra_depth": extra_depth, knob: value}
                found = _sweep_depths(
                    engine, queries, truth, cats, depths, knobs, extra_depth, k, extra
                )
                points = [{**point, "rerank_depth": d, "recall": r} for d, r in found]
                best_depth = next((d for d, r in found if r >= settings.target_recall), None)
                log.info("tune %s: recall@%d %s", point, k, [r for _, r in found])
                if best_depth is not None:
                    seconds = _time_search(
                        engine,
                        queries.codes,
                        queries.vectors,
                        cats,
                        k,
                        best_depth,
                        knobs,
                        extra_depth,
                        timer,
                        repeats,
                    )
                    us = 1e6 * seconds / len(queries.codes)
                    for p in points:
                        if p["rerank_depth"] == best_depth:
                            p["us_per_query"] = round(us, 1)
                    feasible.append((us, best_depth, conf, extra_depth, knobs))
                curve.extend(points)
                if knob == "none":
                    break
    met = bool(feasible)
    if met:
        _, depth, conf, extra_depth, knobs = min(feasible, key=lambda f: (f[0], f[1], -f[2]))
    else:  # report the best effort: the largest depth, effort and widening tried
        depth, conf, extra_depth, knobs = max(depths), max(confidences), 1.0, engine.knobs
        if knob != "none":
            knobs = replace(knobs, **{knob: max(values)})
        log.warning(
            "tune: no setting reached recall %.3f; using the largest", settings.target_recall
        )
    chosen = SearchDefaults(
        rerank_depth=depth,
        nprobe=knobs.nprobe,
        ef_search=knobs.ef_search,
        quantizer_ef=knobs.quantizer_ef,
        uncertain_confidence=conf,
        max_extra_categories=settings.max_extra_categories,
        extra_depth=extra_depth,
        source="tune" if met else "tune:target-not-met",
    )
    return TuneResult(chosen, met, settings.target_recall, k, len(queries.codes), knob, curve)


def _sweep_depths(
    engine: Engine,
    queries: TuneQueries,
    truth: np.ndarray,
    cats: list[list[str]],
    depths: list[int],
    knobs: SearchKnobs,
    extra_depth: float,
    k: int,
    extra: int,
) -> list[tuple[int, float]]:
    """Recall at every depth from one shortlist at the largest depth (a shortlist of depth
    ``R`` is the first ``R`` entries of a deeper one, up to ties)."""
    ham, cand, coarse = engine.shortlist(
        queries.codes, queries.vectors, cats, max(depths) + extra, knobs, extra_depth
    )
    scores = engine.score(queries.vectors, cand, coarse)
    out = []
    for depth in depths:
        sub = slice(0, depth + extra)
        found = engine._top_k(scores[:, sub], ham[:, sub], cand[:, sub], k + extra).item_ids
        if queries.exclude is not None:
            found = _drop_excluded(found, queries.exclude, k)
        out.append((depth, round(recall_at_k(found, truth), 4)))
    return out


def _time_search(
    engine: Engine,
    codes: np.ndarray,
    vectors: np.ndarray,
    categories: list[list[str]],
    k: int,
    depth: int,
    knobs: SearchKnobs,
    extra_depth: float,
    timer: Callable[[], float],
    repeats: int,
) -> float:
    best = float("inf")
    for _ in range(max(1, repeats)):
        t0 = timer()
        engine.search(codes, vectors, categories, k, depth, knobs, extra_depth=extra_depth)
        best = min(best, timer() - t0)
    return best


def apply_tuning(folder: Path, result: TuneResult) -> Manifest:
    """Record the chosen settings and the curve in the release's manifest (atomic rewrite)."""
    manifest = Manifest.read(folder)
    manifest.search = result.chosen
    manifest.tune = result.to_json()
    manifest.write(folder)
    return manifest


def tune_release(
    folder: Path,
    settings: IndexSettings,
    catalog: EmbeddingSet | None = None,
    queries: TuneQueries | None = None,
    seed: int = 0,
    knn: KnnFn = faiss_knn_ip,
) -> TuneResult:
    """Tune a published release in place (the body of ``vsearch index tune``).

    Args:
        folder: the release folder.
        settings: index params (grid, target, sample size).
        catalog: the exact float catalog (default: the release's live items, decoded).
        queries: tuning queries (default: ``tune_sample`` catalog items as their own queries).
        seed: sampling seed.
        knn: exact search used for the truth (injectable).
    """
    with Engine.open(folder, verify=False, writable=False) as engine:
        catalog = catalog if catalog is not None else engine.export()
        queries = queries or TuneQueries.from_catalog(catalog, settings.tune_sample, seed)
        truth = exact_truth(catalog, queries, settings.tune_k, knn)
        result = tune(engine, queries, truth, settings)
    apply_tuning(folder, result)
    log.info(
        "tuned %s: rerank_depth=%d nprobe=%d ef_search=%d (target %s met: %s)",
        folder.name,
        result.chosen.rerank_depth,
        result.chosen.nprobe,
        result.chosen.ef_search,
        settings.target_recall,
        result.met_target,
    )
    return result

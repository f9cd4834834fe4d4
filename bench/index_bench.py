"""Benchmark the binary index engine against what a user would pick instead.

    python bench/index_bench.py --n 1000000          # the figures of the issue (~20-30 min)
    python bench/index_bench.py --n 100000           # quick mode (CI, ~3 min)
    python -m bench.index_bench --embeddings reports/bench/real_200000   # a model's embeddings
                                                     # (python -m bench.real_embeddings first)

Data (:mod:`vsearch.index.synthetic`): 256-d float embeddings near a low-dimensional manifold,
clustered 12 categories > styles > products > 1-5 near-duplicate listings, with look-alike
products; 256-bit codes derived from the floats; 1,000 held-out real-shot queries (noisier views
of catalog products) with a simulated category prediction that is wrong for ~5% of them, and a
disjoint set of 1,000 tuning queries (vsearch tunes on those, never on the test queries).

Systems, all measured in this run, at 1 and 2 threads, batch (all queries in one call) and
single-query mode: faiss ``IndexFlatIP`` (exact; the ground truth and the baseline of every
ratio), faiss ``IndexHNSWFlat`` (efSearch swept), faiss ``IndexBinaryFlat`` and
``IndexBinaryHNSW`` with a plain numpy float re-rank, usearch HNSW in f16 and i8, and vsearch
(category partitions + Hamming shortlist + int8 re-rank, tuned to recall@10 >= 0.95).

Output: one JSON object per line on stdout (``system``, ``setting``, ``threads``, ``mode``,
``recall10``, ``ident10``, ``qps``, ``p50_ms``, ``p99_ms``, ``bytes_per_item``, ``build_s`` and
ratios to the same run's baselines), then a summary table on stderr; the lines and a PNG of the
recall-QPS curves go to ``--out``. Timings are min/median of ``--repeats``; the machine is shared,
so read the ratios, not the absolute numbers. Nothing here asserts anything about time.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from vsearch.index.embeddings import EmbeddingSet

log = logging.getLogger("index_bench")
K = 10
CODE_KINDS = ("native", "projection", "itq")
ONE_PARTITION = "all"  # the category of every item with --one-partition
ENCODER_SAMPLE = 50_000


@dataclass
class Row:
    """One measured point."""

    system: str
    setting: str
    threads: int
    mode: str
    recall10: float
    ident10: float
    qps: float
    qps_best: float
    p50_ms: float
    p99_ms: float
    bytes_per_item: float
    build_s: float
    extra: dict = field(default_factory=dict)

    def to_json(
        self, base: dict[tuple[int, str], float], hnsw: dict[tuple[int, str], float]
    ) -> dict:
        out = {
            "system": self.system,
            "setting": self.setting,
            "threads": self.threads,
            "mode": self.mode,
            "recall10": round(self.recall10, 4),
            "ident10": round(self.ident10, 4),
            "qps": round(self.qps, 1),
            "qps_best": round(self.qps_best, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "bytes_per_item": round(self.bytes_per_item, 1),
            "build_s": round(self.build_s, 2),
        }
        key = (self.threads, self.mode)
        if key in base:
            out["baseline"] = "faiss-IndexFlatIP"
            out["qps_vs_flatip"] = round(self.qps / base[key], 3)
        if key in hnsw:
            out["qps_vs_hnswflat_at_0.95"] = round(self.qps / hnsw[key], 3)
        out.update(self.extra)
        return out


# -- measuring -----------------------------------------------------------------------------


def rss_bytes() -> dict[str, int]:
    """Resident memory of this process: anonymous and file-backed (mmap) pages."""
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS", "RssAnon", "RssFile")):
                name, value = line.split(":")
                out[name] = int(value.split()[0]) * 1024
    return out


def time_batch(fn: Callable[[], object], repeats: int) -> tuple[float, float, object]:
    """(min, median) seconds of ``repeats`` calls, and the last result."""
    times, res = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = fn()
        times.append(time.perf_counter() - t0)
    return min(times), float(np.median(times)), res


def time_single(fn: Callable[[int], object], n: int) -> np.ndarray:
    """Latency in seconds of each single-query call ``fn(i)``, ``i < n``."""
    fn(0)  # warm-up
    lat = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        lat[i] = time.perf_counter() - t0
    return lat


def recall_ids(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean |found ∩ truth| / k over queries (integer row ids, -1 ignored)."""
    hits = 0
    for f, t in zip(found, truth, strict=True):
        hits += len(set(f[f >= 0].tolist()) & set(t.tolist()))
    return hits / truth.size


def ident_rate(found: np.ndarray, product: np.ndarray, query_product: np.ndarray) -> float:
    """Share of queries with a listing of their true product in the top-k."""
    valid = found >= 0
    prod = np.where(valid, product[np.maximum(found, 0)], -1)
    return float((prod == query_product[:, None]).any(axis=1).mean())


@dataclass
class Bench:
    """The data and the shared measurement loop."""

    catalog_vectors: np.ndarray
    catalog_codes: np.ndarray
    product: np.ndarray
    q_vectors: np.ndarray
    q_codes: np.ndarray
    q_product: np.ndarray
    truth: np.ndarray
    threads: list[int]
    repeats: int
    single_max: int
    rows: list[Row] = field(default_factory=list)
    emit: Callable[[Row], None] = lambda r: None

    @property
    def n(self) -> int:
        return len(self.catalog_vectors)

    def measure(
        self,
        system: str,
        setting: str,
        batch: Callable[[int], np.ndarray],
        single: Callable[[int, int], np.ndarray],
        bytes_total: float,
        build_s: float,
        set_threads: Callable[[int], None],
        single_n: int | None = None,
        extra: dict | None = None,
    ) -> list[Row]:
        """Batch and single-query figures at every thread count.

        ``batch(threads)`` returns row ids ``int[nq, K]``; ``single(i, threads)`` one row.
        """
        out = []
        nq = len(self.q_vectors)
        for t in self.threads:
            set_threads(t)
            tmin, tmed, found = time_batch(lambda t=t: batch(t), self.repeats)
            rec = recall_ids(found, self.truth)
            ident = ident_rate(found, self.product, self.q_product)
            row = Row(
                system,
                setting,
                t,
                "batch",
                rec,
                ident,
                nq / tmed,
                nq / tmin,
                float("nan"),
                float("nan"),
                bytes_total / self.n,
                build_s,
                dict(extra or {}),
            )
            out.append(row)
            m = min(single_n or nq, self.single_max)
            lat = time_single(lambda i, t=t: single(i, t), m)
            row_s = Row(
                system,
                setting,
                t,
                "single",
                rec,
                ident,
                1 / lat.mean(),
                1 / np.median(lat),
                1e3 * np.percentile(lat, 50),
                1e3 * np.percentile(lat, 99),
                bytes_total / self.n,
                build_s,
                {**(extra or {}), "single_queries": m},
            )
            out.append(row_s)
            for r in (row, row_s):
                self.rows.append(r)
                self.emit(r)
        return out


# -- data ----------------------------------------------------------------------------------


@dataclass
class BenchData:
    """What every system indexes and is measured on.

    Attributes:
        source: ``synthetic`` or ``real`` (a model's embeddings, ``--embeddings``).
        catalog: the items.
        product: ``int[n]`` product of each item (identical-product recall).
        category_names: the categories query probabilities are over.
        test: the measured queries; ``tuning``: a disjoint set vsearch tunes on.
        fresh: new listings the write bench upserts.
    """

    source: str
    catalog: EmbeddingSet
    product: np.ndarray
    category_names: tuple[str, ...]
    test: Any
    tuning: Any
    fresh: EmbeddingSet


def load_data(args: argparse.Namespace) -> BenchData:
    """The synthetic world of ``--n`` items, or the real embeddings of ``--embeddings``; with
    every code replaced by ``--codes`` when that is not ``native``."""
    from vsearch.index.embeddings import EmbeddingSet

    if args.embeddings:
        from bench.real_embeddings import load_split

        catalog, fresh, (tuning, test), product = load_split(Path(args.embeddings), args.seed)
        data = BenchData("real", catalog, product, test.category_names, test, tuning, fresh)
    else:
        from vsearch.index.synthetic import SyntheticSpec, make_world

        world = make_world(SyntheticSpec(items=args.n, seed=args.seed))
        q = world.queries(args.upserts + 100 * args.upsert_batches, seed=99)
        fresh = EmbeddingSet(
            np.asarray([f"fresh{i}" for i in range(len(q))], dtype=object),
            q.category,
            q.codes,
            q.vectors,
            world.catalog.model,
        )
        data = BenchData(
            "synthetic",
            world.catalog,
            world.product,
            world.category_names,
            world.queries(args.queries, seed=1),
            world.queries(args.queries, seed=2),
            fresh,
        )
    if args.one_partition:
        data = one_partition(data)
    if args.codes == "native":
        return data
    encode, _ = fit_codes(args.codes, data.catalog.vectors, data.catalog.bits, args.seed)

    def recoded(items: EmbeddingSet) -> EmbeddingSet:
        return EmbeddingSet(
            items.item_ids, items.categories, encode(items.vectors), items.vectors, items.model
        )

    return replace(
        data,
        catalog=recoded(data.catalog),
        fresh=recoded(data.fresh),
        test=replace(data.test, codes=encode(data.test.vectors)),
        tuning=replace(data.tuning, codes=encode(data.tuning.vectors)),
    )


def one_partition(data: BenchData) -> BenchData:
    """Every item in one category, every query sure of it: vsearch without category routing
    (``--one-partition``), for data whose classifier is too weak to partition by."""
    from vsearch.index.embeddings import EmbeddingSet

    def items(e: EmbeddingSet) -> EmbeddingSet:
        cats = np.full(len(e.item_ids), ONE_PARTITION, dtype=object)
        return EmbeddingSet(e.item_ids, cats, e.codes, e.vectors, e.model)

    def queries(q: Any) -> Any:
        probs = np.ones((len(q), 1), dtype=np.float32)
        cats = np.full(len(q), ONE_PARTITION, dtype=object)
        return replace(q, category=cats, category_probs=probs, category_names=(ONE_PARTITION,))

    return replace(
        data,
        catalog=items(data.catalog),
        fresh=items(data.fresh),
        category_names=(ONE_PARTITION,),
        test=queries(data.test),
        tuning=queries(data.tuning),
    )


def fit_codes(
    kind: str, vectors: np.ndarray, bits: int, seed: int
) -> tuple[Callable[[np.ndarray], np.ndarray], float]:
    """A float → packed-code function of ``kind`` fitted on (a sample of) ``vectors``, and the
    seconds the fit took. ITQ (``faiss.ITQTransform``: PCA, then the rotation that minimises the
    quantisation error) gives at most ``dim`` bits."""
    import faiss

    from vsearch.index.codes import ProjectionEncoder, pack_signs

    t0 = time.perf_counter()
    if kind == "projection":
        enc = ProjectionEncoder.fit(vectors, bits, sample=ENCODER_SAMPLE, seed=seed)
        return enc.encode, time.perf_counter() - t0
    if kind != "itq":
        raise ValueError(f"no code kind {kind!r} to fit (one of {CODE_KINDS[1:]})")
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(vectors), min(len(vectors), ENCODER_SAMPLE), replace=False))
    d = vectors.shape[1]
    itq = faiss.ITQTransform(d, min(bits, d), True)
    itq.train(np.ascontiguousarray(vectors[rows], dtype=np.float32))

    def encode(x: np.ndarray) -> np.ndarray:
        return pack_signs(itq.apply(np.ascontiguousarray(x, dtype=np.float32)))

    return encode, time.perf_counter() - t0


def code_ranking(
    data: BenchData, kind: str, truth: np.ndarray, depths: list[int], seed: int
) -> dict:
    """How well ``kind`` codes rank like the floats: the share of each test query's exact
    float top-10 inside its exact Hamming top-R over the whole catalog, for every R in
    ``depths`` (the re-rank depth a system needs shrinks as this rises)."""
    import faiss

    fit_s = 0.0
    if kind == "native":
        codes, q_codes = data.catalog.codes, data.test.codes
    else:
        encode, fit_s = fit_codes(kind, data.catalog.vectors, data.catalog.bits, seed)
        codes, q_codes = encode(data.catalog.vectors), encode(data.test.vectors)
    _, ham = faiss.knn_hamming(
        np.ascontiguousarray(q_codes), np.ascontiguousarray(codes), max(depths)
    )
    share = {
        str(r): round(
            float(
                np.mean(
                    [len(np.intersect1d(h[:r], t)) / K for h, t in zip(ham, truth, strict=True)]
                )
            ),
            4,
        )
        for r in depths
    }
    return {
        "code_ranking": kind,
        "bits": int(codes.shape[1] * 8),
        "float_top10_in_hamming_top_r": share,
        "fit_s": round(fit_s, 2),
    }


# -- systems -------------------------------------------------------------------------------


_BLAS_THREADS: dict[str, int] = {}


def faiss_threads(t: int) -> None:
    """``t`` threads for faiss (OpenMP) and for numpy's BLAS, which otherwise takes every core
    for the few matrix products a search makes outside faiss."""
    import faiss
    from threadpoolctl import threadpool_limits

    faiss.omp_set_num_threads(t)
    if _BLAS_THREADS.get("n") != t:  # threadpoolctl scans the loaded libraries: ~ms a call
        threadpool_limits(limits=t, user_api="blas")
        _BLAS_THREADS["n"] = t


def run_flatip(b: Bench, build_threads: int) -> None:
    import faiss

    faiss_threads(build_threads)
    t0 = time.perf_counter()
    index = faiss.IndexFlatIP(b.catalog_vectors.shape[1])
    index.add(b.catalog_vectors)
    build_s = time.perf_counter() - t0
    b.measure(
        "faiss-IndexFlatIP",
        "exact",
        lambda t: index.search(b.q_vectors, K)[1],
        lambda i, t: index.search(b.q_vectors[i : i + 1], K)[1],
        b.n * b.catalog_vectors.shape[1] * 4,
        build_s,
        faiss_threads,
    )


def run_hnswflat(b: Bench, build_threads: int, m: int, efs: list[int]) -> object:
    """Build and sweep efSearch; returns the index for the head-to-head timing with vsearch."""
    import faiss

    faiss_threads(build_threads)
    t0 = time.perf_counter()
    index = faiss.IndexHNSWFlat(b.catalog_vectors.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.add(b.catalog_vectors)
    build_s = time.perf_counter() - t0
    size = len(faiss.serialize_index(index))
    log.info("IndexHNSWFlat M=%d built in %.1fs", m, build_s)
    for ef in efs:
        index.hnsw.efSearch = ef
        b.measure(
            "faiss-IndexHNSWFlat",
            f"M={m},ef={ef}",
            lambda t: index.search(b.q_vectors, K)[1],
            lambda i, t: index.search(b.q_vectors[i : i + 1], K)[1],
            size,
            build_s,
            faiss_threads,
            extra={"build_threads": build_threads},
        )
    return index


def plain_rerank(vectors: np.ndarray, queries: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """The straightforward numpy re-rank a user would write (float32 rows, einsum)."""
    out = np.empty((len(cand), K), dtype=np.int64)
    for s in range(0, len(cand), 100):
        c = cand[s : s + 100]
        sc = np.einsum("qcd,qd->qc", vectors[np.maximum(c, 0)], queries[s : s + 100])
        sc[c < 0] = -np.inf
        top = np.argsort(-sc, axis=1)[:, :K]
        out[s : s + 100] = np.take_along_axis(c, top, 1)
    return out


def run_binary(b: Bench, build_threads: int, kind: str, m: int, settings: list[tuple]) -> None:
    import faiss

    faiss_threads(build_threads)
    bits = b.catalog_codes.shape[1] * 8
    t0 = time.perf_counter()
    index = faiss.IndexBinaryFlat(bits) if kind == "flat" else faiss.IndexBinaryHNSW(bits, m)
    index.add(b.catalog_codes)
    build_s = time.perf_counter() - t0
    size = len(faiss.serialize_index_binary(index)) + b.catalog_vectors.nbytes
    name = "faiss-IndexBinaryFlat+rerank" if kind == "flat" else "faiss-IndexBinaryHNSW+rerank"
    for ef, depth in settings:
        if kind != "flat":
            index.hnsw.efSearch = ef

        def batch(t: int, depth: int = depth) -> np.ndarray:
            cand = index.search(b.q_codes, depth)[1]
            return plain_rerank(b.catalog_vectors, b.q_vectors, cand)

        def single(i: int, t: int, depth: int = depth) -> np.ndarray:
            cand = index.search(b.q_codes[i : i + 1], depth)[1]
            return plain_rerank(b.catalog_vectors, b.q_vectors[i : i + 1], cand)

        setting = f"R={depth}" if kind == "flat" else f"M={m},ef={ef},R={depth}"
        b.measure(
            name,
            setting,
            batch,
            single,
            size,
            build_s,
            faiss_threads,
            extra={"build_threads": build_threads},
        )
    gc.collect()  # the index is freed when this function returns


def run_usearch(b: Bench, build_threads: int, dtype: str, efs: list[int]) -> None:
    from usearch.index import Index

    t0 = time.perf_counter()
    index = Index(ndim=b.catalog_vectors.shape[1], metric="ip", dtype=dtype)
    index.add(np.arange(b.n, dtype=np.uint64), b.catalog_vectors, threads=build_threads)
    build_s = time.perf_counter() - t0
    size = index.memory_usage
    log.info("usearch %s built in %.1fs", dtype, build_s)

    def keys(matches: object) -> np.ndarray:
        k = np.asarray(matches.keys, dtype=np.int64).reshape(-1, K)
        return np.where(k >= b.n, -1, k)  # usearch pads missing results with a sentinel

    for ef in efs:
        index.expansion_search = ef
        b.measure(
            f"usearch-{dtype}",
            f"connectivity={index.connectivity},ef={ef}",
            lambda t: keys(index.search(b.q_vectors, K, threads=t)),
            lambda i, t: keys(index.search(b.q_vectors[i : i + 1], K, threads=t)),
            size,
            build_s,
            lambda t: None,
            extra={"build_threads": build_threads},
        )
    gc.collect()  # the index is freed when this function returns


def run_vsearch(
    b: Bench,
    data: BenchData,
    args: argparse.Namespace,
    workdir: Path,
    rival: tuple[str, Callable[[], np.ndarray], float] | None = None,
) -> dict:
    """Build, tune (on the tuning queries), measure, then writes and compaction.

    ``rival`` = (setting, batch search, recall) of HNSWFlat at its operating point: timed
    alternately with vsearch (:func:`head_to_head`) so that load from other processes on a
    shared machine hits both sides alike.
    """

    from vsearch.index.builder import build_release, compact
    from vsearch.index.engine import Engine
    from vsearch.index.routing import route
    from vsearch.index.tune import TuneQueries, apply_tuning, exact_truth, tune
    from vsearch.settings import IndexSettings, load_settings

    params = Path(args.params)
    settings = load_settings(params).index if params.is_file() else IndexSettings()
    overrides = json.loads(args.vsearch_params) if args.vsearch_params else {}
    settings = settings.model_copy(update=overrides)
    catalog: EmbeddingSet = data.catalog
    tune_queries, test_queries = data.tuning, data.test
    indexes = workdir / "indexes"
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    manifest = build_release(catalog, settings, indexes, threads=args.build_threads)
    build_s = time.perf_counter() - t0
    log.info("vsearch release built in %.1fs", build_s)
    gc.collect()
    rss1 = rss_bytes()
    engine = Engine.open_current(indexes, settings, verify=True)
    names = list(data.category_names)

    def routed(q: object, conf: float) -> list[list[str]]:
        return route(q.category_probs, names, conf, settings.max_extra_categories)

    # Tune on the tuning queries (never the test queries), 1 thread, as served.
    faiss_threads(1)
    tq = TuneQueries(
        tune_queries.codes,
        tune_queries.vectors,
        category_probs=tune_queries.category_probs,
        category_names=names,
    )
    truth = exact_truth(catalog, tq, K)
    t0 = time.perf_counter()
    result = tune(engine, tq, truth, settings)
    tune_s = time.perf_counter() - t0
    apply_tuning(engine.folder, result)
    engine.close()
    engine = Engine.open_current(indexes, settings, verify=False)
    chosen = result.chosen
    tuned = {
        "rerank_depth": chosen.rerank_depth,
        "nprobe": chosen.nprobe,
        "uncertain_confidence": chosen.uncertain_confidence,
    }
    print(
        json.dumps({"system": "vsearch", "tune": result.to_json(), "tune_s": round(tune_s, 2)}),
        flush=True,
    )
    test_cats = routed(test_queries, chosen.uncertain_confidence)
    oracle_cats = [[c] for c in test_queries.category]
    row_of = {iid: i for i, iid in enumerate(catalog.item_ids.tolist())}

    def to_rows(item_ids: np.ndarray) -> np.ndarray:
        return np.vectorize(lambda x: row_of.get(x, -1), otypes=[np.int64])(item_ids)

    mem = engine.memory_bytes()
    widened = float(np.mean([len(c) > 1 for c in test_cats]))
    served_rss = serving_rss(indexes, b.q_codes, b.q_vectors, test_cats)

    def run(
        cats: list[list[str]],
        depth: int,
        nprobe: int,
        label: str,
        system: str,
        eng: Engine | None = None,
    ) -> None:
        eng = eng or engine
        knobs = type(eng.knobs)(nprobe, eng.knobs.ef_search, eng.knobs.quantizer_ef)

        def batch(t: int) -> np.ndarray:
            faiss_threads(1)
            r = eng.search(b.q_codes, b.q_vectors, cats, K, depth, knobs, threads=t)
            return to_rows(r.item_ids)

        def single(i: int, t: int) -> np.ndarray:
            faiss_threads(t)
            r = eng.search(b.q_codes[i], b.q_vectors[i], [cats[i]], K, depth, knobs)
            return to_rows(r.item_ids)

        b.measure(
            system,
            label,
            batch,
            single,
            mem["total"],
            build_s,
            lambda t: None,
            extra={
                "widened_share": round(widened, 3),
                "rerank": settings.rerank_dtype,
                "kernel": eng.search_kernel if eng.kernel_usable else "faiss",
                "build_threads": args.build_threads,
            },
        )

    main_label = f"tuned,R={chosen.rerank_depth},nprobe={chosen.nprobe}"
    run(test_cats, chosen.rerank_depth, chosen.nprobe, main_label, "vsearch")
    rss2 = rss_bytes()
    if rival is not None:
        for depth in sorted({chosen.rerank_depth, *args.head_to_head_depths}):

            def ours(depth: int = depth) -> np.ndarray:
                r = engine.search(b.q_codes, b.q_vectors, test_cats, K, depth)
                return to_rows(r.item_ids)

            faiss_threads(1)
            line = head_to_head(b, rival, (f"R={depth},nprobe={chosen.nprobe}", ours), args)
            print(json.dumps(line), flush=True)
    # The curve: depth sweep at the tuned nprobe, nprobe sweep at the tuned depth.
    for depth in args.vsearch_depths:
        if depth != chosen.rerank_depth:
            run(test_cats, depth, chosen.nprobe, f"R={depth},nprobe={chosen.nprobe}", "vsearch")
    for nprobe in args.vsearch_nprobes:
        if nprobe != chosen.nprobe:
            run(
                test_cats,
                chosen.rerank_depth,
                nprobe,
                f"R={chosen.rerank_depth},nprobe={nprobe}",
                "vsearch",
            )
    run(oracle_cats, chosen.rerank_depth, chosen.nprobe, main_label, "vsearch-true-category")
    if "vsearch-faiss-kernel" in args.systems:
        # the lever's ablation: the same release searched by faiss calls + numpy glue
        plain = Engine.open_current(
            indexes, settings.model_copy(update={"search_kernel": "faiss"}), writable=False
        )
        for depth in sorted({chosen.rerank_depth, *args.head_to_head_depths}):
            label = f"R={depth},nprobe={chosen.nprobe}"
            run(test_cats, depth, chosen.nprobe, label, "vsearch-faiss-kernel", plain)
            if rival is not None:

                def theirs(depth: int = depth) -> np.ndarray:
                    r = plain.search(b.q_codes, b.q_vectors, test_cats, K, depth)
                    return to_rows(r.item_ids)

                line = head_to_head(b, rival, (f"faiss kernel {label}", theirs), args)
                print(json.dumps(line), flush=True)
        plain.close()
    memory = {
        "system": "vsearch",
        "memory_bytes": mem,
        "bytes_per_item": round(mem["total"] / b.n, 1),
        "rss_build_delta_per_item": round((rss1["VmRSS"] - rss0["VmRSS"]) / b.n, 1),
        "rss_serving_delta_per_item": round((rss2["VmRSS"] - rss1["VmRSS"]) / b.n, 1),
        "rss_serving_file_pages_per_item": round((rss2["RssFile"] - rss1["RssFile"]) / b.n, 1),
        "fresh_process_rss_per_item": served_rss,
        "partitions": {p.name: [p.kind, p.n] for p in manifest.partitions},
        "widened_share": widened,
        "tuned": tuned,
    }
    print(json.dumps(memory), flush=True)
    writes = bench_writes(engine, data.fresh, args)
    engine.close()
    if not args.skip_compact:
        t0 = time.perf_counter()
        compact(indexes, settings, threads=args.build_threads)
        writes["compaction_s"] = round(time.perf_counter() - t0, 2)
    print(json.dumps({"system": "vsearch", "writes": writes}), flush=True)
    return {"memory": memory, "writes": writes, "tune": result.to_json()}


def head_to_head(
    b: Bench,
    rival: tuple[str, Callable[[], np.ndarray], float],
    ours: tuple[str, Callable[[], np.ndarray]],
    args: argparse.Namespace,
) -> dict:
    """Alternate batch timings of HNSWFlat and vsearch (1 thread); ratio per pair."""
    rival_setting, rival_fn, rival_recall = rival
    setting, fn = ours
    recall = recall_ids(fn(), b.truth)
    rival_fn()
    t_r, t_o = [], []
    for _ in range(args.head_to_head_pairs):
        t0 = time.perf_counter()
        rival_fn()
        t_r.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fn()
        t_o.append(time.perf_counter() - t0)
    ratios = np.asarray(t_r) / np.asarray(t_o)
    nq = len(b.q_vectors)
    return {
        "comparison": "head-to-head, alternating, 1 thread, batch",
        "rival": f"faiss-IndexHNSWFlat {rival_setting}",
        "rival_recall10": round(rival_recall, 4),
        "rival_qps_median": round(nq / float(np.median(t_r)), 1),
        "vsearch": setting,
        "vsearch_recall10": round(recall, 4),
        "vsearch_qps_median": round(nq / float(np.median(t_o)), 1),
        "qps_ratio_median": round(float(np.median(ratios)), 3),
        "qps_ratio_min": round(float(ratios.min()), 3),
        "qps_ratio_max": round(float(ratios.max()), 3),
        "pairs": args.head_to_head_pairs,
    }


SERVE_CHILD = """
import json, sys, numpy as np, faiss
from vsearch.index.engine import Engine

def rss():
    out = {}
    for line in open("/proc/self/status"):
        if line.startswith(("VmRSS", "RssAnon", "RssFile")):
            k, v = line.split(":")
            out[k] = int(v.split()[0]) * 1024
    return out

faiss.omp_set_num_threads(1)
z = np.load(sys.argv[2], allow_pickle=True)
cats = json.loads(z["cats"].item())
before = rss()
engine = Engine.open_current(sys.argv[1], verify=False, writable=False)
engine.search(z["codes"], z["vectors"], cats, 10)
for i in range(len(cats)):
    engine.search(z["codes"][i], z["vectors"][i], [cats[i]], 10)
after = rss()
n = engine.n_base
print(json.dumps({k: round((after[k] - before[k]) / n, 1) for k in after}))
"""


def serving_rss(indexes: Path, codes: np.ndarray, vectors: np.ndarray, cats: list) -> dict:
    """Resident bytes per item of a fresh process that opens the release and serves the test
    queries (anonymous + file-backed pages: the memory-mapped store counts where touched)."""
    import subprocess

    data = indexes.parent / "serve_queries.npz"
    np.savez(data, codes=codes, vectors=vectors, cats=np.array(json.dumps(cats)))
    res = subprocess.run(
        [sys.executable, "-c", SERVE_CHILD, str(indexes), str(data)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


def bench_writes(engine: object, items: EmbeddingSet, args: argparse.Namespace) -> dict:
    """Durable upserts/s (fsync per call), upsert → searchable latency, deletes.

    ``items``: new listings, at least ``--upserts`` + 100 x ``--upsert-batches`` of them.
    """
    from vsearch.index.embeddings import EmbeddingSet

    need = args.upserts + 100 * args.upsert_batches
    if len(items) < need:
        raise SystemExit(f"the write bench needs {need} new listings, the data has {len(items)}")
    ids = np.asarray([f"new{i:07d}" for i in range(len(items))], dtype=object)
    items = EmbeddingSet(ids, items.categories, items.codes, items.vectors, items.model)
    n1 = args.upserts
    lat = np.empty(n1)
    found = 0
    for i in range(n1):
        one = items.subset(np.array([i]))
        t0 = time.perf_counter()
        engine.upsert(one)
        lat[i] = time.perf_counter() - t0
        r = engine.search(one.codes, one.vectors, [one.categories[0]], K)
        found += int(one.item_ids[0] in set(r.item_ids[0].tolist()))
    t_vis, visible = [], 0
    for i in range(min(50, n1)):
        one = items.subset(np.array([i]))
        t0 = time.perf_counter()
        engine.upsert(one)  # re-upsert: tombstones the previous copy, appends the new
        r = engine.search(one.codes, one.vectors, [one.categories[0]], K)
        t_vis.append(time.perf_counter() - t0)
        visible += int(one.item_ids[0] in set(r.item_ids[0].tolist()))
    t0 = time.perf_counter()
    for j in range(args.upsert_batches):
        engine.upsert(items.subset(np.arange(n1 + 100 * j, n1 + 100 * (j + 1))))
    batch_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    engine.delete(ids[: n1 // 2].tolist())
    delete_s = time.perf_counter() - t0
    return {
        "upserts_per_s_durable_single": round(n1 / lat.sum(), 1),
        "upsert_p50_ms": round(1e3 * float(np.median(lat)), 3),
        "upsert_p99_ms": round(1e3 * float(np.percentile(lat, 99)), 3),
        "upserted_found_by_search": f"{found}/{n1}",
        "reupserted_visible_at_once": f"{visible}/{len(t_vis)}",
        "upsert_to_searchable_p50_ms": round(1e3 * float(np.median(t_vis)), 3),
        "upsert_to_searchable_max_ms": round(1e3 * float(np.max(t_vis)), 3),
        "items_per_s_durable_batch100": round(100 * args.upsert_batches / batch_s, 1),
        "delete_batch_ms": round(1e3 * delete_s, 3),
    }


# -- reporting -----------------------------------------------------------------------------


def operating_points(rows: list[Row], target: float) -> list[Row]:
    """Per (system, threads, mode): the fastest setting with recall >= target, else the best."""
    best: dict[tuple, Row] = {}
    for r in rows:
        key = (r.system, r.threads, r.mode)
        cur = best.get(key)
        ok, cur_ok = r.recall10 >= target, cur is not None and cur.recall10 >= target
        if (
            cur is None
            or (ok and not cur_ok)
            or (ok and cur_ok and r.qps > cur.qps)
            or (not ok and not cur_ok and r.recall10 > cur.recall10)
        ):
            best[key] = r
    return sorted(best.values(), key=lambda r: (r.mode, r.threads, r.system))


def summary(rows: list[Row], target: float) -> str:
    pts = operating_points(rows, target)
    base = {(r.threads, r.mode): r.qps for r in pts if r.system == "faiss-IndexFlatIP"}
    hnsw = {(r.threads, r.mode): r for r in pts if r.system == "faiss-IndexHNSWFlat"}
    head = (
        f"{'system':32s} {'setting':30s} {'thr':>3s} {'mode':6s} {'rec@10':>7s} {'ident':>6s} "
        f"{'qps':>9s} {'xFlatIP':>8s} {'xHNSW':>6s} {'p50ms':>7s} {'p99ms':>7s} "
        f"{'B/item':>7s} {'build_s':>8s}"
    )
    lines = [
        f"operating points (fastest setting with recall@10 >= {target}, else best recall)",
        head,
        "-" * len(head),
    ]
    for r in pts:
        key = (r.threads, r.mode)
        xb = r.qps / base[key] if key in base else float("nan")
        xh = r.qps / hnsw[key].qps if key in hnsw else float("nan")
        lines.append(
            f"{r.system:32s} {r.setting[:30]:30s} {r.threads:3d} {r.mode:6s} {r.recall10:7.3f} "
            f"{r.ident10:6.3f} {r.qps:9.0f} {xb:8.2f} {xh:6.2f} {r.p50_ms:7.3f} {r.p99_ms:7.3f} "
            f"{r.bytes_per_item:7.0f} {r.build_s:8.1f}"
        )
    return "\n".join(lines)


def plot(rows: list[Row], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for ax, mode in zip(axes, ("batch", "single"), strict=True):
        systems = sorted({r.system for r in rows})
        for s in systems:
            pts = sorted(
                (r.recall10, r.qps)
                for r in rows
                if r.system == s and r.mode == mode and r.threads == 1
            )
            if pts:
                x, y = zip(*pts, strict=True)
                ax.plot(x, y, marker="o", label=s)
        ax.axvline(0.95, color="grey", ls="--", lw=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("recall@10 vs exact float search")
        ax.set_ylabel("queries / second (1 thread)")
        ax.set_title(f"{mode} mode")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000, help="catalog items (synthetic data)")
    p.add_argument(
        "--embeddings",
        default=None,
        help="real model embeddings (python -m bench.real_embeddings) instead of synthetic data",
    )
    p.add_argument(
        "--codes",
        default="native",
        choices=CODE_KINDS,
        help="the binary codes every system uses: native (the data's own: the model's hash "
        "head, or the generator's), projection (sign random projections), itq (faiss ITQ)",
    )
    p.add_argument(
        "--code-ranking",
        default="native,projection,itq",
        help="code kinds whose Hamming ranking is measured against the float top-10 first",
    )
    p.add_argument(
        "--one-partition",
        action="store_true",
        help="vsearch without category routing: every item in one partition",
    )
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--threads", default="1,2", help="thread counts to measure")
    p.add_argument("--build-threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--single-max", type=int, default=1000, help="queries timed one by one")
    p.add_argument(
        "--flat-single-max",
        type=int,
        default=200,
        help="single-query mode of IndexFlatIP (slow at 1M): this many queries",
    )
    p.add_argument("--hnsw-m", type=int, default=32)
    p.add_argument("--hnsw-efs", default="16,24,32,48,64,128,256")
    p.add_argument("--usearch-efs", default="16,32,64,128,256")
    p.add_argument(
        "--systems",
        default="flatip,hnswflat,binflat,binhnsw,usearch-f16,usearch-i8,vsearch,vsearch-faiss-kernel",
    )
    p.add_argument("--vsearch-depths", default="50,100,150,200,300,400")
    p.add_argument("--vsearch-nprobes", default="4,8,12,16,24,32")
    p.add_argument(
        "--vsearch-params",
        default="",
        help='JSON overrides of index params, e.g. {"rerank_dtype": "float16"}',
    )
    p.add_argument("--params", default="params.yaml")
    p.add_argument(
        "--head-to-head-depths",
        default="200",
        help="vsearch depths timed alternately with HNSWFlat (besides the tuned one)",
    )
    p.add_argument("--head-to-head-pairs", type=int, default=7)
    p.add_argument("--upserts", type=int, default=200)
    p.add_argument("--upsert-batches", type=int, default=10)
    p.add_argument("--skip-compact", action="store_true")
    p.add_argument("--target", type=float, default=0.95)
    p.add_argument("--out", default="reports/bench")
    p.add_argument("--workdir", default=None, help="scratch folder (default: a temp dir)")
    args = p.parse_args(argv)
    args.threads = [int(x) for x in args.threads.split(",")]
    args.vsearch_depths = [int(x) for x in args.vsearch_depths.split(",")]
    args.vsearch_nprobes = [int(x) for x in args.vsearch_nprobes.split(",")]
    args.head_to_head_depths = [int(x) for x in args.head_to_head_depths.split(",") if x]
    args.systems = set(args.systems.split(","))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("vsearch.index.builder", "vsearch.index.tune", "vsearch.index.release"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    import faiss

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = load_data(args)
    log.info(
        "data (%s): %d items, %d test queries in %.1fs",
        data.source,
        len(data.catalog),
        len(data.test),
        time.perf_counter() - t0,
    )
    faiss_threads(max(args.threads))
    truth = faiss.knn(
        data.test.vectors, data.catalog.vectors, K, metric=faiss.METRIC_INNER_PRODUCT
    )[1]
    wrong = float((data.test.predicted != data.test.category).mean())
    n = len(data.catalog)
    tag = f"{n}" if data.source == "synthetic" else f"{n}_{Path(args.embeddings).name}"
    tag += "" if args.codes == "native" else f"_{args.codes}"
    jsonl = (out_dir / f"index_bench_{tag}.jsonl").open("w")
    header = {
        "bench": "index",
        "data": data.source,
        "n": n,
        "queries": len(data.test),
        "tuning_queries": len(data.tuning),
        "dim": data.catalog.dim,
        "bits": data.catalog.bits,
        "codes": args.codes,
        "category_wrong_share": round(wrong, 4),
        "exact_ident10": round(ident_rate(truth, data.product, data.test.product), 4),
        "cpu_count": os.cpu_count(),
        "threads": args.threads,
        "note": "shared machine: compare ratios within this run, not absolute times",
    }
    print(json.dumps(header), flush=True)
    jsonl.write(json.dumps(header) + "\n")
    for kind in [k for k in args.code_ranking.split(",") if k]:
        line = code_ranking(data, kind, truth, args.vsearch_depths, args.seed)
        print(json.dumps(line), flush=True)
        jsonl.write(json.dumps(line) + "\n")
    b = Bench(
        data.catalog.vectors,
        data.catalog.codes,
        data.product,
        data.test.vectors,
        data.test.codes,
        data.test.product,
        truth,
        args.threads,
        args.repeats,
        args.single_max,
    )
    base: dict = {}
    hnsw: dict = {}

    def emit(r: Row) -> None:
        if r.system == "faiss-IndexFlatIP":
            base[(r.threads, r.mode)] = r.qps
        line = json.dumps(r.to_json(base, hnsw))
        print(line, flush=True)
        jsonl.write(line + "\n")

    b.emit = emit
    efs = [int(x) for x in args.hnsw_efs.split(",")]
    u_efs = [int(x) for x in args.usearch_efs.split(",")]
    b.single_max = args.flat_single_max
    run_flatip(b, args.build_threads)
    b.single_max = args.single_max
    rival = None
    if "hnswflat" in args.systems:
        hnsw_index = run_hnswflat(b, args.build_threads, args.hnsw_m, efs)
        for r in operating_points(
            [r for r in b.rows if r.system == "faiss-IndexHNSWFlat"], args.target
        ):
            if r.recall10 >= args.target:
                hnsw[(r.threads, r.mode)] = r.qps
            if r.recall10 >= args.target and (r.threads, r.mode) == (1, "batch"):
                ef = int(r.setting.split("ef=")[1])

                def rival_fn(ef: int = ef) -> np.ndarray:
                    faiss_threads(1)
                    hnsw_index.hnsw.efSearch = ef
                    return hnsw_index.search(b.q_vectors, K)[1]

                rival = (r.setting, rival_fn, r.recall10)
    if "binflat" in args.systems:
        run_binary(b, args.build_threads, "flat", 0, [(0, 100), (0, 200), (0, 400)])
    if "binhnsw" in args.systems:
        run_binary(b, args.build_threads, "hnsw", args.hnsw_m, [(128, 100), (256, 200), (512, 400)])
    for dtype in ("f16", "i8"):
        if f"usearch-{dtype}" in args.systems:
            run_usearch(b, args.build_threads, dtype, u_efs)
    extra = {}
    if "vsearch" in args.systems:
        with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
            extra = run_vsearch(b, data, args, Path(tmp), rival)
    jsonl.close()
    table = summary(b.rows, args.target)
    print(table, file=sys.stderr)
    (out_dir / f"index_bench_{tag}.txt").write_text(table + "\n" + json.dumps(extra, indent=1))
    plot(
        b.rows,
        out_dir / f"index_bench_{tag}.png",
        f"{n:,} items ({data.source}, {args.codes} codes), {len(data.test)} queries, "
        "recall@10 vs exact float IP",
    )
    log.info("done in %.0fs; results in %s", time.perf_counter() - t0, out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())

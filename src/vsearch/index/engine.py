"""The serving engine: a release opened for search, plus its live upserts and deletes.

Why one object: the online pipeline, the evaluation, the admin API and ``tune`` must
all see the same thing ("release + change log"), search it the same way and never serve a
deleted item. A search runs in two stages:

1. **Shortlist** (Hamming): each query searches the partitions of its categories (the predicted
   one, plus runner-ups when unsure: :func:`vsearch.index.routing.route`) for the
   ``rerank_depth`` codes nearest in Hamming distance; candidates from several partitions are
   merged by Hamming distance (one code space) and tombstoned items are dropped.
2. **Re-rank** (float): the shortlist is re-scored by inner product with the float query,
   ``q·x = q·reference + q·residual`` (the reference term comes with the shortlist, the
   residual from the int8/float16 re-rank store), and the top ``k`` are returned.

A search may carry a filter (``allowed``: which internal ids may be returned, from catalog
fields such as price or seller). It is applied *inside* stage 1, so ``k`` results come back
whenever ``k`` allowed items exist in the searched partitions: a partition holding few allowed
items (or a flat one) is scanned exactly over just those items' codes; a large IVF/HNSW
partition is searched with its effort (nprobe, ef, shortlist) scaled by ``1 / share allowed``
(capped) and the non-allowed hits dropped, and a query that still found fewer than ``k`` falls
back to the exact scan (docs/scaling.md#filters).

Writes (:meth:`Engine.upsert`, :meth:`Engine.delete`) are appended to the release's change log
and fsync'd before they are applied and acknowledged; opening a release replays the log, so an
acknowledged write survives a crash. Other processes' writes are picked up by :meth:`sync`
(called before every search: one ``fstat`` when nothing changed).
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vsearch.errors import BadInput
from vsearch.index.embeddings import (
    EmbeddingSet,
    ModelInfo,
    as_str_array,
    check_codes,
    check_vectors,
)
from vsearch.index.manifest import MANIFEST_FILE, Manifest
from vsearch.index.partition import Partition, SearchKnobs
from vsearch.index.release import LOG_FILE, open_manifest, resolve, set_current
from vsearch.index.rerank_store import DotFn, RerankStore, simd_dot
from vsearch.index.routing import route
from vsearch.index.upsert_log import Change, ChangeLog
from vsearch.settings import IndexSettings

log = logging.getLogger(__name__)
_EMPTY_IDS = np.empty(0, dtype=np.int64)

ITEMS_FILE = "items.npy"
CODES_FILE = "codes.npy"
_FAR = np.iinfo(np.int32).max  # Hamming distance of an empty slot
# Queries whose centroid scores the compiled search holds at once: 2048 x ~1,600 lists x 4 B =
# 13 MB at 1M items in 12 partitions.
PROBE_CHUNK = 2048
_FAR16 = np.iinfo(np.int16).max  # the same, as a sort key (codes are at most 32k bits)


class _RWLock:
    """Many concurrent searches, or one writer (faiss indexes are not safe to add to while
    they are searched)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._readers:
                self._cond.wait()
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


@dataclass(frozen=True)
class FilterKnobs:
    """How a filtered search looks for allowed items (``index.filter_*`` settings).

    Attributes:
        exact_max: a partition holding at most this many allowed items is scanned exactly
            over them (flat partitions always are).
        max_overfetch: cap of the effort multiplier ``1 / share allowed`` of a large
            partition (nprobe, ef and shortlist depth).
    """

    exact_max: int
    max_overfetch: float

    @classmethod
    def from_settings(cls, s: IndexSettings) -> FilterKnobs:
        return cls(s.filter_exact_max, s.filter_max_overfetch)


@dataclass(frozen=True)
class _KernelArrays:
    """What :func:`vsearch.index.kernel.search_batch` reads besides the queries (see there)."""

    codes: np.ndarray
    refs: np.ndarray
    x_codes: np.ndarray
    x_rows: np.ndarray
    x_ptr: np.ndarray
    x_local: np.ndarray
    x_ref: np.ndarray


class StaleRelease(BadInput):
    """This release's log was sealed by a compaction: writes go to the newer release."""


@dataclass(frozen=True)
class SearchResult:
    """Top-``k`` per query; missing slots (fewer than ``k`` results) hold ``None``/-1/NaN.

    Attributes:
        item_ids: ``object[nq, k]`` item ids, best first.
        scores: ``float32[nq, k]`` inner products of the float embeddings.
        hamming: ``int32[nq, k]`` Hamming distances of the codes.
        categories: ``object[nq, k]`` partition (category) of each result.
        internal_ids: ``int64[nq, k]`` internal ids (stable within a release).
    """

    item_ids: np.ndarray
    scores: np.ndarray
    hamming: np.ndarray
    categories: np.ndarray
    internal_ids: np.ndarray


def _as_category_lists(categories: Sequence, nq: int) -> list[list[str]]:
    """Accept one category per query (``str``) or a list per query (names checked later)."""
    if len(categories) != nq:
        raise ValueError(f"categories has {len(categories)} entries for {nq} queries")
    out = []
    for c in categories:
        cats = [c] if isinstance(c, str) else list(c)
        if not cats:
            raise ValueError("each query needs at least one category name, got an empty list")
        out.append(cats if len(cats) == 1 else list(dict.fromkeys(cats)))
    return out


class Engine:
    """A release (partitions, id map, re-rank store) with its change log applied.

    Use :meth:`open` or :meth:`open_current`; the constructor takes already-loaded parts.
    """

    def __init__(
        self,
        folder: Path,
        manifest: Manifest,
        partitions: list[Partition],
        store: RerankStore,
        item_ids: np.ndarray,
        change_log: ChangeLog | None,
        writable: bool = True,
    ) -> None:
        self.folder = folder
        self.writable = writable
        self.manifest = manifest
        self.store = store
        self._parts = partitions
        self._part_index = {p.name: i for i, p in enumerate(partitions)}
        self._base_first = np.asarray([p.first_id for p in partitions], dtype=np.int64)
        self._base_order = np.argsort(self._base_first, kind="stable")
        self._item_ids = item_ids  # fixed-width utf-8 bytes, internal id -> item id
        self.n_base = len(item_ids)
        self._extra_ids: list[str] = []
        self._extra_part: list[int] = []
        self._extra_part_arr = np.empty(0, dtype=np.int64)
        self._extra_codes: list[np.ndarray] = []
        self._extra_vectors: list[np.ndarray] = []
        self._live: dict[str, int] = {}  # item id -> internal id, for items written live
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None  # lazy base lookup
        self._dead = np.zeros(self.n_base, dtype=bool)
        self._dead_count = np.zeros(len(partitions), dtype=np.int64)
        self._lock = _RWLock()
        self._pool: ThreadPoolExecutor | None = None
        self._codes: np.ndarray | None = None  # codes.npy, memory-mapped on first filtered search
        self._extra_codes_cat: np.ndarray | None = None
        self.generation = 0  # bumped by every applied change (callers cache id lookups on it)
        self.filter_knobs = FilterKnobs.from_settings(IndexSettings())
        self.search_kernel = IndexSettings().search_kernel
        self._kernel_cache: tuple[tuple[int, int], _KernelArrays] | None = None
        self.log = change_log
        self.sealed_into: str | None = None
        # The newest change-set entry (vsearch.index.changeset) this release's log carries out.
        self.changeset_seq = 0
        s = manifest.search
        self.knobs = SearchKnobs(s.nprobe, s.ef_search, s.quantizer_ef)
        self.rerank_depth = s.rerank_depth
        self.uncertain_confidence = s.uncertain_confidence
        self.max_extra_categories = s.max_extra_categories
        self.extra_depth = s.extra_depth
        if change_log is not None:
            with change_log.locked():
                self._apply(change_log.read_new(repair=True))

    # -- opening ----------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        folder: str | Path,
        expected_model: ModelInfo | str | None = None,
        verify: bool = True,
        writable: bool = True,
        dot: DotFn = simd_dot,
        fsync: bool = True,
    ) -> Engine:
        """Open a release folder for search (and writes).

        Args:
            folder: ``indexes/<version>``.
            expected_model: the model (or fingerprint) the caller serves; a release built from
                another model is refused (:class:`~vsearch.index.release.FingerprintMismatch`).
            verify: check every file against the manifest's sha256 first.
            writable: open the change log for writes (else writes are refused; the log, if
                present, is still replayed).
            dot: inner-product kernel of the re-rank (injectable for tests).
            fsync: fsync each write (leave on; off only to measure the in-memory path).
        """
        folder = Path(folder)
        fp = expected_model.fingerprint if isinstance(expected_model, ModelInfo) else expected_model
        manifest = open_manifest(folder, fp, verify)
        partitions = [Partition.load(folder / p.dir) for p in manifest.partitions]
        store = RerankStore.open(folder, dot)
        item_ids = np.load(folder / ITEMS_FILE, mmap_mode="r")
        log_path = folder / LOG_FILE
        change_log = None
        if writable or log_path.exists():
            change_log = ChangeLog(log_path, fsync=fsync)
        engine = cls(folder, manifest, partitions, store, item_ids, change_log, writable)
        log.info(
            "opened release %s: %d items in %d partitions (%d live changes)",
            manifest.version,
            len(engine),
            len(partitions),
            engine.log.last_seq if engine.log else 0,
        )
        return engine

    @classmethod
    def open_current(
        cls, indexes_dir: str | Path, settings: IndexSettings | None = None, **kwargs
    ) -> Engine:
        """Open the release named by ``indexes/CURRENT`` (see :meth:`open` for arguments)."""
        if settings is not None:
            kwargs.setdefault("verify", settings.verify_checksums)
        indexes_dir = Path(indexes_dir)
        engine = cls.open(resolve(indexes_dir), **kwargs)
        target = engine.sealed_into
        if target is not None and (indexes_dir / target / MANIFEST_FILE).is_file():
            # A compaction sealed this log but died before moving CURRENT: finish its job.
            engine.close()
            set_current(indexes_dir, target)
            engine = cls.open(indexes_dir / target, **kwargs)
        if settings is not None:
            engine.filter_knobs = FilterKnobs.from_settings(settings)
            engine.search_kernel = settings.search_kernel
        return engine

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- facts ------------------------------------------------------------------------------

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def categories(self) -> list[str]:
        return [p.name for p in self._parts]

    @property
    def bits(self) -> int:
        return self.manifest.bits

    @property
    def dim(self) -> int:
        return self.manifest.dim

    def __len__(self) -> int:
        """Live items (tombstones excluded)."""
        return len(self.store) - int(self._dead.sum())

    def partition_sizes(self) -> dict[str, int]:
        """Live items per partition."""
        return {p.name: p.ntotal - int(self._dead_count[i]) for i, p in enumerate(self._parts)}

    @property
    def n_internal(self) -> int:
        """Internal ids handed out so far (live and tombstoned): the length of a filter mask."""
        return len(self._dead)

    def mask_of(self, internal: np.ndarray) -> np.ndarray:
        """``bool[n_internal]`` with the given internal ids set (``-1`` entries ignored)."""
        internal = np.asarray(internal, dtype=np.int64).ravel()
        mask = np.zeros(self.n_internal, dtype=bool)
        mask[internal[(internal >= 0) & (internal < len(mask))]] = True
        return mask

    def allowed_counts(self, allowed: np.ndarray) -> dict[str, int]:
        """Live allowed items per partition (what a filtered search can find in each)."""
        with self._lock.read():
            live = self._live_allowed(allowed)
            out = {}
            for p in self._parts:
                n = int(np.count_nonzero(live[p.first_id : p.first_id + p.n_base]))
                if p._extra:
                    n += int(np.count_nonzero(live[p._extras()[0]]))
                out[p.name] = n
            return out

    def memory_bytes(self) -> dict[str, int]:
        """Bytes that serving keeps resident (the memory-mapped store counted in full)."""
        parts = sum(p.nbytes for p in self._parts)
        lookup = 0 if self._sorted is None else sum(int(a.nbytes) for a in self._sorted)
        live = sum(int(c.nbytes) for c in self._extra_codes + self._extra_vectors)
        out = {
            "partitions": parts,
            "rerank_store": self.store.nbytes,
            "item_ids": int(self._item_ids.nbytes) + lookup,
            "tombstones": int(self._dead.nbytes),
            # live items: exact code + float vector kept for compaction, id maps (~100 B each)
            "live_changes": live + 100 * len(self._extra_ids),
            # the compiled loop reads the release's codes file (faiss keeps its own copy)
            "codes_file": self.n_base * self.bits // 8 if self.kernel_usable else 0,
        }
        out["total"] = sum(out.values())
        return out

    def route(self, probs: np.ndarray, names: Sequence[str]) -> list[list[str]]:
        """Categories to search per query from fused probabilities, with the release's tuned
        widening threshold (:func:`vsearch.index.routing.route`)."""
        return route(probs, names, self.uncertain_confidence, self.max_extra_categories)

    # -- id map -----------------------------------------------------------------------------

    def _partition_of(self, internal: np.ndarray) -> np.ndarray:
        """Partition index of each internal id (all valid)."""
        out = np.empty(len(internal), dtype=np.int64)
        base = internal < self.n_base
        if base.any():
            pos = np.searchsorted(self._base_first[self._base_order], internal[base], "right") - 1
            out[base] = self._base_order[pos]
        if (~base).any():
            if len(self._extra_part_arr) != len(self._extra_part):
                self._extra_part_arr = np.asarray(self._extra_part, dtype=np.int64)
            out[~base] = self._extra_part_arr[internal[~base] - self.n_base]
        return out

    def _decode_ids(self, internal: np.ndarray) -> np.ndarray:
        out = np.full(internal.shape, None, dtype=object)
        flat, res = internal.ravel(), out.ravel()
        base = (flat >= 0) & (flat < self.n_base)
        if base.any():
            res[base] = np.char.decode(self._item_ids[flat[base]], "utf-8").astype(object)
        for j in np.flatnonzero(flat >= self.n_base):
            res[j] = self._extra_ids[flat[j] - self.n_base]
        return out

    def lookup(self, item_ids: Sequence[str]) -> np.ndarray:
        """Internal ids of live items (``-1`` for unknown or deleted ones)."""
        ids = as_str_array(item_ids, "item_ids")
        out = np.full(len(ids), -1, dtype=np.int64)
        if self.n_base and len(ids):
            if self._sorted is None:  # built on the first write: searches never pay for it
                order = np.argsort(self._item_ids, kind="stable")
                self._sorted = (np.asarray(self._item_ids[order]), order.astype(np.int64))
            keys, order = self._sorted
            want = np.char.encode(ids.astype(str), "utf-8")
            pos = np.minimum(np.searchsorted(keys, want), len(keys) - 1)
            hit = keys[pos] == want
            out[hit] = order[pos[hit]]
        for j, item in enumerate(ids):
            if item in self._live:
                out[j] = self._live[item]
        alive = out >= 0
        out[alive & self._dead[np.maximum(out, 0)]] = -1
        return out

    # -- search -----------------------------------------------------------------------------

    def _check_queries(
        self, codes: np.ndarray, vectors: np.ndarray, categories: Sequence
    ) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
        codes = np.atleast_2d(np.asarray(codes))
        vectors = np.atleast_2d(np.asarray(vectors))
        codes = check_codes(codes, nbytes=self.bits // 8)
        vectors = check_vectors(vectors, n=len(codes), dim=self.dim)
        if isinstance(categories, str):
            categories = [categories]
        cats = _as_category_lists(categories, len(codes))
        names = {c for cs in cats for c in cs}
        unknown = sorted(map(repr, names - self._part_index.keys()))
        if unknown:
            raise ValueError(
                f"unknown categories {unknown[:5]}: release {self.version} has "
                f"{sorted(self._part_index)[:20]}"
            )
        return codes, vectors, cats

    def shortlist(
        self,
        codes: np.ndarray,
        vectors: np.ndarray,
        categories: list[list[str]],
        depth: int,
        knobs: SearchKnobs | None = None,
        extra_depth: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stage 1: the ``depth`` live items nearest in Hamming distance in each query's
        categories, merged and sorted by Hamming distance.

        Returns:
            ``(hamming int32[nq, depth], internal ids int64[nq, depth], coarse
            float32[nq, depth])``; ``-1`` ids are padding; ``coarse`` is the query's inner
            product with each candidate's reference vector (see :mod:`.partition`).
        """
        knobs = knobs or self.knobs
        nq = len(codes)
        width = max((len(c) for c in categories), default=1)
        depths = self._slot_depths(depth, extra_depth, width).tolist()
        fetch = [
            [d + int(min(self._dead_count[i], d)) for d in depths] for i in range(len(self._parts))
        ]
        stride = max(max(f) for f in fetch)
        dist = np.full((nq, width * stride), _FAR, dtype=np.int32)
        ids = np.full((nq, width * stride), -1, dtype=np.int64)
        coarse = np.zeros((nq, width * stride), dtype=np.float32)
        for (pi, slot), members in self._slot_groups(categories).items():
            part = self._parts[pi]
            if part.ntotal == 0:
                continue
            qs = np.asarray(members)
            d, i, c = part.search(codes[qs], vectors[qs], fetch[pi][slot], knobs)
            cols = slice(slot * stride, slot * stride + fetch[pi][slot])
            dist[qs, cols] = d
            ids[qs, cols] = i
            coarse[qs, cols] = c
        missing = ids < 0
        if self._dead_count.any():
            missing |= self._dead[np.maximum(ids, 0)] & ~missing
        dist[missing] = _FAR
        ids[missing] = -1
        if width == 1 and stride == depth:
            return dist, ids, coarse  # one partition per query, none dropped: already sorted
        # Merge: rows that searched several partitions, or lost tombstoned hits, are re-sorted
        # by Hamming distance (int16 keys: numpy's stable sort is then a radix sort).
        need = missing.any(axis=1) | np.asarray([len(c) > 1 for c in categories])
        out_d = dist[:, :depth].copy()
        out_i = ids[:, :depth].copy()
        out_c = coarse[:, :depth].copy()
        if need.any():
            keys = np.minimum(dist[need], _FAR16).astype(np.int16)
            order = np.argsort(keys, axis=1, kind="stable")[:, :depth]
            out_d[need] = np.take_along_axis(dist[need], order, 1)
            out_i[need] = np.take_along_axis(ids[need], order, 1)
            out_c[need] = np.take_along_axis(coarse[need], order, 1)
        return out_d, out_i, out_c

    def _slot_depths(self, depth: int, extra_depth: float | None, width: int) -> np.ndarray:
        """Shortlist depth per searched category slot (0 = the predicted one): runner-up
        categories are searched less deep, most widened queries were right anyway."""
        extra = self.extra_depth if extra_depth is None else extra_depth
        return np.array([depth] + [max(1, math.ceil(depth * extra))] * (width - 1), np.int64)

    def _slot_groups(self, categories: list[list[str]]) -> dict[tuple[int, int], list[int]]:
        """Queries by (partition index, category slot): each group is one batched search."""
        groups: dict[tuple[int, int], list[int]] = {}
        for qi, names in enumerate(categories):
            for slot, name in enumerate(names):
                groups.setdefault((self._part_index[name], slot), []).append(qi)
        return groups

    def score(self, vectors: np.ndarray, ids: np.ndarray, coarse: np.ndarray) -> np.ndarray:
        """Stage 2: inner products ``q·x = q·reference + q·residual`` (``-inf`` for padding)."""
        return self.store.score(vectors, ids) + coarse

    def search(
        self,
        codes: np.ndarray,
        vectors: np.ndarray,
        categories: Sequence,
        k: int = 10,
        rerank_depth: int | None = None,
        knobs: SearchKnobs | None = None,
        threads: int = 1,
        extra_depth: float | None = None,
        allowed: np.ndarray | None = None,
        filter_knobs: FilterKnobs | None = None,
    ) -> SearchResult:
        """Top-``k`` items per query (batch API; a single query is a batch of one).

        Args:
            codes: ``uint8[nq, bits/8]`` query codes (or ``uint8[bits/8]`` for one query).
            vectors: ``float32[nq, d]`` query embeddings (L2-normalised like the catalog's).
            categories: per query, a category name or a list of names to search (see
                :func:`vsearch.index.routing.route` to derive them from probabilities).
            k: results per query.
            rerank_depth: Hamming shortlist size (default: the release's tuned value).
            knobs: partition search effort (default: the release's tuned values).
            threads: split a batch across this many threads (faiss and the re-rank kernel
                release the GIL); keep faiss's own OpenMP threads at 1 when using it.
            extra_depth: shortlist depth in runner-up categories as a share of the depth
                (default: the release's tuned value).
            allowed: ``bool[n]`` over internal ids (:meth:`mask_of`): only these items may be
                returned, found inside the search (the module docstring says how); ids
                beyond ``n`` (written after the mask was made) are not allowed.
            filter_knobs: effort of a filtered search (default: :attr:`filter_knobs`).
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        codes, vectors, cats = self._check_queries(codes, vectors, categories)
        depth = max(rerank_depth or self.rerank_depth, k)
        if allowed is not None:
            allowed = np.asarray(allowed)
            if allowed.dtype != bool or allowed.ndim != 1:
                raise ValueError(
                    f"allowed must be a 1-d bool mask, got {allowed.dtype}[{allowed.shape}]"
                )
        fk = filter_knobs or self.filter_knobs
        self.sync()
        with self._lock.read():
            n = len(codes)
            if threads == 1 or n < 2 * threads:
                return self._search(codes, vectors, cats, k, depth, knobs, extra_depth, allowed, fk)
            if self._pool is None or self._pool._max_workers < threads:
                self._pool = ThreadPoolExecutor(threads, thread_name_prefix="vsearch")
            bounds = np.linspace(0, n, threads + 1).astype(int)
            parts = list(
                self._pool.map(
                    lambda b: self._search(
                        codes[b[0] : b[1]],
                        vectors[b[0] : b[1]],
                        cats[b[0] : b[1]],
                        k,
                        depth,
                        knobs,
                        extra_depth,
                        allowed,
                        fk,
                    ),
                    itertools.pairwise(bounds),
                )
            )
            return SearchResult(
                *(
                    np.concatenate([getattr(p, f) for p in parts])
                    for f in SearchResult.__dataclass_fields__
                )
            )

    def _search(
        self,
        codes: np.ndarray,
        vectors: np.ndarray,
        cats: list[list[str]],
        k: int,
        depth: int,
        knobs: SearchKnobs | None,
        extra_depth: float | None = None,
        allowed: np.ndarray | None = None,
        filter_knobs: FilterKnobs | None = None,
    ) -> SearchResult:
        if allowed is None and self.kernel_usable:
            return self._kernel_search(codes, vectors, cats, k, depth, knobs, extra_depth)
        if allowed is None:
            ham, cand, coarse = self.shortlist(codes, vectors, cats, depth, knobs, extra_depth)
        else:
            ham, cand, coarse = self._shortlist_filtered(
                codes,
                vectors,
                cats,
                depth,
                k,
                knobs,
                extra_depth,
                allowed,
                filter_knobs or self.filter_knobs,
            )
        return self._top_k(self.score(vectors, cand, coarse), ham, cand, k)

    # -- compiled search (vsearch.index.kernel) ---------------------------------------------

    @property
    def kernel_usable(self) -> bool:
        """Whether unfiltered searches run the compiled loop: asked for by
        ``index.search_kernel``, an int8 store, whole 64-bit code words, no ``hnsw`` partition
        (their candidates come from a graph walk the loop does not do)."""
        return (
            self.search_kernel == "compiled"
            and self.store.quantizer.kind == "int8"
            and self.bits % 64 == 0
            and all(p.kind != "hnsw" for p in self._parts)
        )

    def _kernel_arrays(self) -> _KernelArrays:
        """The arrays the compiled loop reads, rebuilt when a write or a new partition changed
        them (live items grouped by partition, with the row of their reference vector)."""
        key = (self.generation, len(self._parts))
        if self._kernel_cache is not None and self._kernel_cache[0] == key:
            return self._kernel_cache[1]
        old = self._kernel_cache
        if old is not None and old[0][1] == len(self._parts):
            refs = old[1].refs  # references change only with the partitions, not with writes
        else:
            refs = np.concatenate([p.refs for p in self._parts]).astype(np.float32)
        ref_start = np.cumsum([0] + [len(p.refs) for p in self._parts]).astype(np.int64)
        x_local, x_ref, x_ptr = [], [], [0]
        for pi, part in enumerate(self._parts):
            ids, lists = part._extras() if part._extra else (_EMPTY_IDS, _EMPTY_IDS)
            x_local.append(ids - self.n_base)
            x_ref.append(ref_start[pi] + lists)
            x_ptr.append(x_ptr[-1] + len(ids))
        arrays = _KernelArrays(
            codes=self._base_codes().view(np.uint64),
            refs=refs,
            x_codes=np.ascontiguousarray(self._live_codes()).view(np.uint64),
            x_rows=self.store.live_rows,
            x_ptr=np.asarray(x_ptr, dtype=np.int64),
            x_local=np.concatenate(x_local).astype(np.int64),
            x_ref=np.concatenate(x_ref).astype(np.int64),
        )
        self._kernel_cache = (key, arrays)
        return arrays

    def _kernel_search(
        self,
        codes: np.ndarray,
        vectors: np.ndarray,
        cats: list[list[str]],
        k: int,
        depth: int,
        knobs: SearchKnobs | None,
        extra_depth: float | None,
    ) -> SearchResult:
        """Stages 1 and 2 as one compiled loop (same depths, merge and scores as
        :meth:`shortlist` + :meth:`score`), after the centroid search (:meth:`_kernel_probe`)."""
        from vsearch.index.kernel import search_batch

        knobs = knobs or self.knobs
        arr = self._kernel_arrays()
        nq = len(codes)
        width = max((len(c) for c in cats), default=1)
        slot_depth = self._slot_depths(depth, extra_depth, width)
        per_slot = max(knobs.nprobe, 1)
        starts = np.full((nq, width * per_slot), -1, dtype=np.int64)
        ends = np.zeros_like(starts)
        ref = np.zeros(starts.shape, dtype=np.float32)
        slot = np.full(starts.shape, -1, dtype=np.int64)
        slot_part = np.full((nq, width), -1, dtype=np.int64)
        scan = 1
        for (pi, s), members in self._slot_groups(cats).items():
            part = self._parts[pi]
            qs = np.asarray(members)
            slot_part[qs, s] = pi
            c0 = s * per_slot
            live = int(arr.x_ptr[pi + 1] - arr.x_ptr[pi])
            if part.n_base == 0:
                scan = max(scan, live)
                continue
            if part.kind == "ivf":
                sc, assign = self._kernel_probe(part, vectors[qs], knobs)
                valid = assign >= 0
                lists = np.maximum(assign, 0)
                lo = np.where(valid, part.first_id + part.list_offsets[lists], -1)
                hi = np.where(valid, part.first_id + part.list_offsets[lists + 1], 0)
                cols = slice(c0, c0 + assign.shape[1])
                starts[qs, cols], ends[qs, cols], ref[qs, cols] = lo, hi, sc
                slot[qs, cols] = s
                scan = max(scan, int(np.where(valid, hi - lo, 0).sum(axis=1).max()) + live)
            else:  # flat: one list holding the whole partition, its mean as the reference
                starts[qs, c0] = part.first_id
                ends[qs, c0] = part.first_id + part.n_base
                ref[qs, c0] = vectors[qs] @ part.refs[0]
                slot[qs, c0] = s
                scan = max(scan, part.n_base + live)
        q8, mult, bias = self.store.quantizer.prepare(vectors)
        ids, scores, ham = search_batch(
            np.ascontiguousarray(codes).view(np.uint64),
            vectors,
            q8,
            mult,
            bias,
            starts,
            ends,
            ref,
            slot,
            slot_part,
            slot_depth,
            arr.codes,
            self.store.base,
            arr.x_codes,
            arr.x_rows,
            arr.x_ptr,
            arr.x_local,
            arr.x_ref,
            arr.refs,
            self._dead,
            depth,
            k,
            self.bits,
            max(scan, int(slot_depth.sum())),
        )
        return self._result(ids, scores, ham)

    @staticmethod
    def _kernel_probe(
        part: Partition, vectors: np.ndarray, knobs: SearchKnobs
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`Partition.probe`, for an exact quantizer as BLAS products and
        :func:`~vsearch.index.kernel.top_lists` (half the time of faiss's flat search at ~1,000
        lists), in chunks of :data:`PROBE_CHUNK` queries to bound the score matrix."""
        if not part.exact_quantizer:
            return part.probe(vectors, knobs)
        from vsearch.index.kernel import top_lists

        nprobe = min(knobs.nprobe, len(part.refs))
        parts = [
            top_lists(vectors[i : i + PROBE_CHUNK] @ part.refs.T, nprobe)
            for i in range(0, len(vectors), PROBE_CHUNK)
        ]
        if len(parts) == 1:
            return parts[0]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    # -- filtered search --------------------------------------------------------------------

    def _live_allowed(self, allowed: np.ndarray) -> np.ndarray:
        """``allowed`` resized to the current internal ids, tombstones removed."""
        n = self.n_internal
        live = np.zeros(n, dtype=bool)
        m = min(n, len(allowed))
        live[:m] = allowed[:m]
        live &= ~self._dead
        return live

    def _allowed_in(self, pi: int, live: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Internal ids of the live allowed items of partition ``pi`` and their list index."""
        part = self._parts[pi]
        lo, hi = part.first_id, part.first_id + part.n_base
        base = np.flatnonzero(live[lo:hi]).astype(np.int64) + lo
        base_lists = part.lists_of_local(base - lo) if len(base) else _EMPTY_IDS
        if not part._extra:
            return base, base_lists
        extra_ids, extra_lists = part._extras()
        keep = live[extra_ids]
        return (
            np.concatenate([base, extra_ids[keep]]),
            np.concatenate([base_lists, extra_lists[keep]]),
        )

    def _codes_of(self, internal: np.ndarray) -> np.ndarray:
        """Binary codes of items by internal id (release file for the base, live ones kept)."""
        out = np.empty((len(internal), self.bits // 8), dtype=np.uint8)
        base = internal < self.n_base
        if base.any():
            out[base] = self._base_codes()[internal[base]]
        if (~base).any():
            out[~base] = self._live_codes()[internal[~base] - self.n_base]
        return out

    def _base_codes(self) -> np.ndarray:
        """The release's codes (``codes.npy``, memory-mapped on first use)."""
        if self._codes is None:
            # a plain ndarray over the mapping (np.memmap's __getitem__ is slow, see the store)
            self._codes = np.load(self.folder / CODES_FILE, mmap_mode="r").view(np.ndarray)
        return self._codes

    def _live_codes(self) -> np.ndarray:
        """Codes of the items written live, by ``internal id - n_base``."""
        n_extra = len(self._extra_ids)
        if self._extra_codes_cat is None or len(self._extra_codes_cat) != n_extra:
            parts = self._extra_codes or [np.empty((0, self.bits // 8), dtype=np.uint8)]
            self._extra_codes_cat = np.concatenate(parts)
        return self._extra_codes_cat

    def _exact_in(
        self,
        pi: int,
        ids: np.ndarray,
        lists: np.ndarray,
        codes: np.ndarray,
        vectors: np.ndarray,
        depth: int,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ``depth`` allowed items nearest in Hamming distance, by an exact scan of
        only the allowed items' codes (``faiss.knn_hamming``)."""
        import faiss

        sub = np.ascontiguousarray(self._codes_of(ids))
        dist, pos = faiss.knn_hamming(np.ascontiguousarray(codes), sub, depth)
        valid = pos >= 0
        pos = np.maximum(pos, 0)
        # Query · reference of the lists the allowed items are in (not of every list).
        used, where = np.unique(lists, return_inverse=True)
        table = vectors @ self._parts[pi].refs[used].T
        coarse = np.take_along_axis(table, where.reshape(-1)[pos], axis=1)
        return (
            np.where(valid, dist, _FAR).astype(np.int32),
            np.where(valid, ids[pos], -1),
            coarse.astype(np.float32),
        )

    def _overfetch_in(
        self,
        pi: int,
        n_allowed: int,
        live: np.ndarray,
        codes: np.ndarray,
        vectors: np.ndarray,
        depth: int,
        knobs: SearchKnobs,
        fk: FilterKnobs,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A large partition searched with its effort scaled by ``1 / share allowed``; hits
        that are not allowed are dropped (allowed ones first, in Hamming order)."""
        part = self._parts[pi]
        alive = max(part.ntotal - int(self._dead_count[pi]), 1)
        factor = min(fk.max_overfetch, alive / n_allowed)
        wide = SearchKnobs(
            math.ceil(knobs.nprobe * factor),
            math.ceil(knobs.ef_search * factor),
            knobs.quantizer_ef,
        )
        fetch = min(part.ntotal, math.ceil(depth * factor) + int(self._dead_count[pi]))
        dist, ids, coarse = part.search(codes, vectors, max(fetch, depth), wide)
        keep = (ids >= 0) & live[np.maximum(ids, 0)]
        order = np.argsort(~keep, axis=1, kind="stable")[:, :depth]
        keep = np.take_along_axis(keep, order, 1)
        dist = np.where(keep, np.take_along_axis(dist, order, 1), _FAR).astype(np.int32)
        ids = np.where(keep, np.take_along_axis(ids, order, 1), -1)
        return dist, ids, np.take_along_axis(coarse, order, 1)

    def _shortlist_filtered(
        self,
        codes: np.ndarray,
        vectors: np.ndarray,
        categories: list[list[str]],
        depth: int,
        k: int,
        knobs: SearchKnobs | None,
        extra_depth: float | None,
        allowed: np.ndarray,
        fk: FilterKnobs,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stage 1 of a filtered search: like :meth:`shortlist`, over allowed items only.

        Every searched partition contributes up to ``max(k, its depth)`` allowed items, so a
        query whose partitions hold ``k`` allowed items gets ``k`` candidates.
        """
        knobs = knobs or self.knobs
        extra_depth = self.extra_depth if extra_depth is None else extra_depth
        nq = len(codes)
        width = max((len(c) for c in categories), default=1)
        depths = [depth] + [max(k, math.ceil(depth * extra_depth))] * (width - 1)
        stride = max(depths)
        dist = np.full((nq, width * stride), _FAR, dtype=np.int32)
        ids = np.full((nq, width * stride), -1, dtype=np.int64)
        coarse = np.zeros((nq, width * stride), dtype=np.float32)
        live = self._live_allowed(allowed)
        groups: dict[tuple[int, int], list[int]] = {}
        for qi, cats in enumerate(categories):
            for slot, name in enumerate(cats):
                groups.setdefault((self._part_index[name], slot), []).append(qi)
        allowed_in: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for (pi, slot), members in groups.items():
            if pi not in allowed_in:
                allowed_in[pi] = self._allowed_in(pi, live)
            p_ids, p_lists = allowed_in[pi]
            m = len(p_ids)
            if m == 0:
                continue
            d = min(depths[slot], m)
            qs = np.asarray(members)
            if self._parts[pi].kind == "flat" or m <= fk.exact_max:
                dd, ii, cc = self._exact_in(pi, p_ids, p_lists, codes[qs], vectors[qs], d)
            else:
                dd, ii, cc = self._overfetch_in(pi, m, live, codes[qs], vectors[qs], d, knobs, fk)
                short = np.flatnonzero((ii >= 0).sum(axis=1) < min(k, m))
                if len(short):  # reachable lists held too few: scan the allowed items
                    dd[short], ii[short], cc[short] = self._exact_in(
                        pi, p_ids, p_lists, codes[qs[short]], vectors[qs[short]], d
                    )
            cols = slice(slot * stride, slot * stride + d)
            dist[qs, cols] = dd
            ids[qs, cols] = ii
            coarse[qs, cols] = cc
        keys = np.minimum(dist, _FAR16).astype(np.int16)
        order = np.argsort(keys, axis=1, kind="stable")[:, :depth]
        return (
            np.take_along_axis(dist, order, 1),
            np.take_along_axis(ids, order, 1),
            np.take_along_axis(coarse, order, 1),
        )

    def _top_k(self, scores: np.ndarray, ham: np.ndarray, cand: np.ndarray, k: int) -> SearchResult:
        nq = len(scores)
        kk = min(k, scores.shape[1])
        if kk < scores.shape[1]:
            part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        else:
            part = np.broadcast_to(np.arange(kk), (nq, kk))
        order = np.take_along_axis(part, np.argsort(-np.take_along_axis(scores, part, 1), 1), 1)
        top_ids = np.full((nq, k), -1, dtype=np.int64)
        top_scores = np.full((nq, k), np.nan, dtype=np.float32)
        top_ham = np.full((nq, k), -1, dtype=np.int32)
        top_ids[:, :kk] = np.take_along_axis(cand, order, 1)
        top_scores[:, :kk] = np.take_along_axis(scores, order, 1)
        top_ham[:, :kk] = np.take_along_axis(ham, order, 1)
        return self._result(top_ids, top_scores, top_ham)

    def _result(
        self, top_ids: np.ndarray, top_scores: np.ndarray, top_ham: np.ndarray
    ) -> SearchResult:
        """The result of internal ids ``[nq, k]`` (``-1``: none) with their scores/distances."""
        empty = top_ids < 0
        top_scores[empty] = np.nan
        top_ham[empty] = -1
        cats = np.full(top_ids.shape, None, dtype=object)
        if (~empty).any():
            names = np.asarray(self.categories, dtype=object)
            cats[~empty] = names[self._partition_of(top_ids[~empty])]
        return SearchResult(self._decode_ids(top_ids), top_scores, top_ham, cats, top_ids)

    # -- writes -----------------------------------------------------------------------------

    def _writable_log(self) -> ChangeLog:
        if self.log is None or not self.writable:
            raise BadInput(f"release {self.version} was opened read-only; writes are refused")
        return self.log

    def upsert(self, items: EmbeddingSet, ref: int | None = None) -> int:
        """Insert or replace items; durable (fsync'd) when this returns.

        Args:
            items: the items (same bits and dimension as the release).
            ref: the change-set sequence number this write carries out (admin writes).

        Returns:
            The change log sequence number of the write.

        Raises:
            ValueError: codes/vectors do not match the release's bits/dimension.
            StaleRelease: a compaction sealed this release; reopen ``CURRENT``.
        """
        if items.bits != self.bits or items.dim != self.dim:
            raise ValueError(
                f"items have {items.bits} bits / {items.dim} dims, release {self.version} "
                f"has {self.bits} / {self.dim}"
            )
        if len(items) == 0:
            return self.log.last_seq if self.log else 0
        change_log = self._writable_log()
        with self._lock.write(), change_log.locked():
            self._apply(change_log.read_new(repair=True))
            self._refuse_if_sealed()
            change = change_log.append_upsert(
                items.item_ids, items.categories, items.codes, items.vectors, ref
            )
            self._apply([change])
            return change.seq

    def delete(self, item_ids: Sequence[str], ref: int | None = None) -> int:
        """Tombstone items (unknown ids are ignored); durable when this returns.

        ``ref``: the change-set sequence number this write carries out (admin writes).

        Returns:
            How many live items were deleted.
        """
        ids = as_str_array(item_ids, "item_ids")
        change_log = self._writable_log()
        with self._lock.write(), change_log.locked():
            self._apply(change_log.read_new(repair=True))
            self._refuse_if_sealed()
            found = int((self.lookup(ids) >= 0).sum())
            if len(ids):
                self._apply([change_log.append_delete(ids, ref)])
            return found

    def _refuse_if_sealed(self) -> None:
        if self.sealed_into is not None:
            raise StaleRelease(
                f"release {self.version} was compacted into {self.sealed_into}; reopen the "
                "CURRENT release and retry the write"
            )

    def sync(self) -> int:
        """Apply changes other processes appended to the log; returns how many."""
        if self.log is None or not self.log.has_new():
            return 0
        with self._lock.write():
            changes = self.log.read_new()
            self._apply(changes)
            return len(changes)

    def _apply(self, changes: list[Change]) -> None:
        if changes:
            self.generation += 1
        for ch in changes:
            if ch.ref is not None:
                self.changeset_seq = max(self.changeset_seq, int(ch.ref))
            if ch.op == "upsert":
                self._apply_upsert(ch)
            elif ch.op == "delete":
                self._kill(self.lookup(ch.item_ids))
                for item in ch.item_ids:
                    self._live.pop(item, None)
            elif ch.op == "seal":
                self.sealed_into = ch.target
            elif ch.op == "unseal":
                self.sealed_into = None

    def _kill(self, internal: np.ndarray) -> None:
        internal = internal[internal >= 0]
        internal = internal[~self._dead[internal]]
        if len(internal):
            self._dead[internal] = True
            np.add.at(self._dead_count, self._partition_of(internal), 1)

    def _apply_upsert(self, ch: Change) -> None:
        if ch.codes.shape[1] * 8 != self.bits or ch.vectors.shape[1] != self.dim:
            raise ValueError(f"log record {ch.seq} does not match the release's bits/dimension")
        self._kill(self.lookup(ch.item_ids))
        for name in dict.fromkeys(ch.categories.tolist()):
            pi = self._partition_index(name)
            part = self._parts[pi]
            rows = np.flatnonzero(ch.categories == name)
            vectors = ch.vectors[rows]
            lists = part.assign_lists(vectors)
            new_ids = self.store.append(vectors - part.refs[lists])
            self._dead = np.concatenate([self._dead, np.zeros(len(new_ids), dtype=bool)])
            part.add(ch.codes[rows], lists, new_ids)
            ids = ch.item_ids[rows].tolist()
            self._extra_ids.extend(ids)
            self._extra_part.extend([pi] * len(rows))
            # Live items keep their exact code and float vector until compaction folds them in.
            self._extra_codes.append(ch.codes[rows])
            self._extra_vectors.append(vectors)
            self._live.update(zip(ids, new_ids.tolist(), strict=True))

    def _partition_index(self, name: str) -> int:
        """The partition of a category, created empty (flat) for a category new to the release."""
        if name not in self._part_index:
            part = Partition.empty(name, self.bits, self.dim)
            self._parts.append(part)
            self._part_index[name] = len(self._parts) - 1
            self._dead_count = np.append(self._dead_count, 0)
            log.info("new category %r: created a live flat partition", name)
        return self._part_index[name]

    # -- export (compaction, tuning) --------------------------------------------------------

    def _references(self, base: np.ndarray) -> np.ndarray:
        """Reference vector (list centroid or partition mean) of release items."""
        out = np.empty((len(base), self.dim), dtype=np.float32)
        pidx = self._partition_of(base)
        for pi in np.unique(pidx):
            part = self._parts[pi]
            rows = np.flatnonzero(pidx == pi)
            out[rows] = part.refs[part.lists_of_local(base[rows] - part.first_id)]
        return out

    def vectors(self, internal: np.ndarray) -> np.ndarray:
        """Float vectors of items by internal id: reference + re-rank residual for release
        items (within one int8 step), the exact vector for live ones.

        Why: the search pipeline groups near-duplicate listings among the results by the
        cosine of their own vectors, which only the engine holds (the catalog may have changed
        since the build).
        """
        internal = np.asarray(internal, dtype=np.int64).ravel()
        out = np.empty((len(internal), self.dim), dtype=np.float32)
        with self._lock.read():
            base = internal < self.n_base
            if base.any():
                rows = internal[base]
                out[base] = self.store.vectors(rows) + self._references(rows)
            if (~base).any():
                live = np.concatenate(self._extra_vectors)
                out[~base] = live[internal[~base] - self.n_base]
        return out

    def live_internal_ids(self) -> np.ndarray:
        return np.flatnonzero(~self._dead).astype(np.int64)

    def export(self, source_vectors: np.ndarray | None = None) -> EmbeddingSet:
        """The live catalog as an :class:`EmbeddingSet` (the input of a rebuild).

        Args:
            source_vectors: the release's original float vectors (by internal id, for the base
                items); without them, base vectors are decoded from the re-rank store
                (exact for float16, within one quantisation step for int8).
        """
        with self._lock.read():
            live = self.live_internal_ids()
            base = live[live < self.n_base]
            extra = live[live >= self.n_base] - self.n_base
            codes = np.load(self.folder / CODES_FILE, mmap_mode="r")[base]
            if source_vectors is not None:
                vectors = np.asarray(source_vectors[base], dtype=np.float32)
            else:
                vectors = self.store.vectors(base) + self._references(base)
            if len(extra):
                codes = np.concatenate([codes, np.concatenate(self._extra_codes)[extra]])
                vectors = np.concatenate([vectors, np.concatenate(self._extra_vectors)[extra]])
            cats = np.asarray(self.categories, dtype=object)[self._partition_of(live)]
            return EmbeddingSet(self._decode_ids(live), cats, codes, vectors, self.manifest.model)

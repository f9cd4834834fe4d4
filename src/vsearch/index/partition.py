"""One category partition: a faiss binary index over its items' codes, searched by Hamming.

Why partitions: a query only needs the products of its (predicted) category, so each search
touches ~1/12 of the catalog, partitions build independently (one Dask task each) and shard
across replicas at serving time.

Kinds (chosen per partition from its size and ``index.large_kind``):

* ``flat``: ``faiss.IndexBinaryFlat``, exhaustive Hamming scan. Exact, and the fastest choice
  below ``flat_max`` items.
* ``ivf``: ``faiss.IndexBinaryIVF`` whose inverted lists come from *float* k-means on the
  embeddings (the coarse step uses the query's float vector, via ``search_preassigned``); each
  probed list is then scanned by Hamming distance. Why float centroids: measured on 1M items,
  binary k-means lists hold 88% of the true top-10 in a 400-deep shortlist at nprobe 16 of 256
  (104 us/query) and 96% at nprobe 64 (137 us), while float lists of ~100 items hold 97% at
  nprobe 12 (~80 us): the float query localises far better than its code (docs/scaling.md).
* ``hnsw``: ``faiss.IndexBinaryHNSW``, a graph walk in Hamming space (kept for comparison and
  for catalogs whose float vectors are not available at build time).

Items are numbered locally ``0..n-1`` in the order this module returns (``order``); the engine
maps local ids to internal ids (``first_id + local`` for the release's items, a table for items
added live).

Each item also has a *reference* vector: its IVF list's centroid, or the partition's mean for
``flat``/``hnsw``. The re-rank store keeps ``item - reference`` (a residual ~10x smaller in
variance, so int8 loses far less), and a search returns the query's inner product with each
candidate's reference (the ``coarse`` score), which for IVF the centroid search has already
computed: ``q·x = q·reference + q·residual``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vsearch.index.embeddings import check_codes, check_vectors
from vsearch.settings import IndexSettings

log = logging.getLogger(__name__)

PartitionKind = Literal["flat", "hnsw", "ivf"]
BINARY_FILE = "binary.faissbin"
QUANTIZER_FILE = "quantizer.faiss"
REFS_FILE = "refs.npy"
META_FILE = "partition.json"


@dataclass(frozen=True)
class SearchKnobs:
    """Search-time effort of a partition (tuned per release, see :mod:`vsearch.index.tune`).

    Attributes:
        nprobe: inverted lists scanned per query (``ivf``).
        ef_search: HNSW candidate-list size (``hnsw``; at least ``k``).
        quantizer_ef: HNSW ef of the centroid search when the ``ivf`` quantizer is a graph.
    """

    nprobe: int = 12
    ef_search: int = 256
    quantizer_ef: int = 48

    @classmethod
    def from_settings(cls, s: IndexSettings) -> SearchKnobs:
        return cls(s.ivf_nprobe, s.hnsw_ef_search, s.ivf_quantizer_ef)


def choose_kind(n: int, settings: IndexSettings) -> PartitionKind:
    """``flat`` up to ``flat_max`` items, else ``large_kind``."""
    return "flat" if n <= settings.flat_max else settings.large_kind


@dataclass
class BuiltPartition:
    """The result of :func:`build_partition` (picklable faiss objects are serialised bytes).

    Attributes:
        kind: which index kind was built.
        order: ``int64[n]``: local id ``j`` is input row ``order[j]``.
        binary: the serialised ``faiss.IndexBinary`` (``faiss.serialize_index_binary``).
        quantizer: the serialised float centroid index (``ivf`` only).
        refs: ``float32[n_lists, d]`` reference vectors (centroids, or the mean).
        list_sizes: ``int64[n_lists]`` items per list, in local order (local ids of list ``j``
            follow those of list ``j - 1``).
        seconds: build wall time.
    """

    kind: PartitionKind
    order: np.ndarray
    binary: np.ndarray
    quantizer: np.ndarray | None
    refs: np.ndarray
    list_sizes: np.ndarray
    seconds: float

    @property
    def item_lists(self) -> np.ndarray:
        """List (reference) index of each local id."""
        return np.repeat(np.arange(len(self.list_sizes)), self.list_sizes)

    def save(self, folder: Path, name: str, first_id: int) -> list[Path]:
        """Write the partition folder; returns the files written."""
        folder.mkdir(parents=True, exist_ok=True)
        files = [folder / BINARY_FILE, folder / META_FILE, folder / REFS_FILE]
        (folder / BINARY_FILE).write_bytes(self.binary.tobytes())
        np.save(folder / REFS_FILE, self.refs)
        if self.quantizer is not None:
            (folder / QUANTIZER_FILE).write_bytes(self.quantizer.tobytes())
            files.append(folder / QUANTIZER_FILE)
        meta = {
            "name": name,
            "kind": self.kind,
            "first_id": first_id,
            "n": len(self.order),
            "list_sizes": self.list_sizes.tolist(),
        }
        (folder / META_FILE).write_text(json.dumps(meta))
        return files


def build_partition(
    codes: np.ndarray,
    vectors: np.ndarray,
    settings: IndexSettings,
    seed: int = 0,
    kind: PartitionKind | None = None,
) -> BuiltPartition:
    """Build one partition's index (pure: arrays in, bytes out; runs in a Dask worker).

    Args:
        codes: ``uint8[n, bits/8]``.
        vectors: ``float32[n, d]`` (the ``ivf`` lists are float k-means cells, and every kind
            records the reference vectors of the residual re-rank).
        settings: sizes and graph/list parameters.
        seed: k-means seed (builds are reproducible).
        kind: force a kind instead of :func:`choose_kind`.
    """
    import faiss

    t0 = time.perf_counter()
    codes = check_codes(codes)
    n, bits = len(codes), codes.shape[1] * 8
    if n == 0:
        raise ValueError("cannot build an empty partition")
    if vectors is None:
        raise ValueError("a partition needs the float vectors (ivf lists, re-rank references)")
    x = check_vectors(vectors, n=n)
    kind = kind or choose_kind(n, settings)
    order = np.arange(n, dtype=np.int64)
    quantizer_bytes = None
    refs = x.mean(axis=0, keepdims=True).astype(np.float32)
    list_sizes = np.array([n], dtype=np.int64)
    if kind == "flat":
        index = faiss.IndexBinaryFlat(bits)
        index.add(codes)
    elif kind == "hnsw":
        index = faiss.IndexBinaryHNSW(bits, settings.hnsw_m)
        index.hnsw.efConstruction = settings.hnsw_ef_construction
        index.add(codes)
    elif kind == "ivf":
        nlist = max(1, math.ceil(n / settings.ivf_list_size))
        km = faiss.Kmeans(
            x.shape[1],
            nlist,
            niter=settings.ivf_kmeans_iters,
            spherical=True,
            seed=seed,
            max_points_per_centroid=settings.ivf_train_per_list,
            min_points_per_centroid=1,
        )
        km.train(x)
        flat = faiss.IndexFlatIP(x.shape[1])
        flat.add(km.centroids)
        _, assign = flat.search(x, 1)
        # Store items list by list: a list's codes and re-rank rows are then contiguous,
        # so the re-rank of one probe reads neighbouring memory pages.
        order = np.argsort(assign[:, 0], kind="stable").astype(np.int64)
        index = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(bits), bits, nlist)
        index.is_trained = True
        sorted_codes = np.ascontiguousarray(codes[order])
        sorted_assign = np.ascontiguousarray(assign[order, 0], dtype=np.int64)
        index.add_core(n, faiss.swig_ptr(sorted_codes), None, faiss.swig_ptr(sorted_assign))
        quantizer = _centroid_index(km.centroids, settings)
        quantizer_bytes = faiss.serialize_index(quantizer)
        refs = np.ascontiguousarray(km.centroids, dtype=np.float32)
        list_sizes = np.bincount(assign[:, 0], minlength=nlist).astype(np.int64)
    else:
        raise ValueError(f"unknown partition kind {kind!r} (flat | hnsw | ivf)")
    binary = faiss.serialize_index_binary(index)
    return BuiltPartition(
        kind, order, binary, quantizer_bytes, refs, list_sizes, time.perf_counter() - t0
    )


def _centroid_index(centroids: np.ndarray, settings: IndexSettings) -> Any:
    """Exact inner-product search over few centroids, an HNSW graph over many."""
    import faiss

    d = centroids.shape[1]
    if len(centroids) <= settings.ivf_quantizer_flat_max:
        q = faiss.IndexFlatIP(d)
    else:
        q = faiss.IndexHNSWFlat(d, settings.ivf_quantizer_m, faiss.METRIC_INNER_PRODUCT)
        q.hnsw.efConstruction = max(2 * settings.ivf_quantizer_ef, 40)
    q.add(np.ascontiguousarray(centroids, dtype=np.float32))
    return q


@dataclass
class Partition:
    """A loaded partition: faiss index (+ centroid index), references and the id maps.

    Attributes:
        name: the category.
        kind: index kind.
        index: ``faiss.IndexBinary``.
        quantizer: float centroid index (``ivf``) or ``None``.
        first_id: internal id of local item 0 (the release numbers a partition contiguously).
        n_base: items that came with the release (local ids ``< n_base``).
        refs: ``float32[n_lists, d]`` reference vectors (list centroids, or the mean).
        list_offsets: ``int64[n_lists + 1]``: base local ids of list ``j`` are
            ``list_offsets[j] .. list_offsets[j + 1] - 1``.
    """

    name: str
    kind: PartitionKind
    index: Any
    quantizer: Any
    first_id: int
    n_base: int
    refs: np.ndarray
    list_offsets: np.ndarray
    _extra: list[int] = field(default_factory=list)
    _extra_lists: list[int] = field(default_factory=list)
    _extra_arr: np.ndarray | None = None
    _extra_lists_arr: np.ndarray | None = None

    @classmethod
    def empty(cls, name: str, bits: int, dim: int) -> Partition:
        """A flat partition with no items (a category first seen in a live upsert)."""
        import faiss

        return cls(
            name,
            "flat",
            faiss.IndexBinaryFlat(bits),
            None,
            0,
            0,
            np.zeros((1, dim), dtype=np.float32),
            np.zeros(2, dtype=np.int64),
        )

    @classmethod
    def from_built(cls, name: str, built: BuiltPartition, first_id: int) -> Partition:
        import faiss

        index = faiss.deserialize_index_binary(built.binary)
        quantizer = None if built.quantizer is None else faiss.deserialize_index(built.quantizer)
        offsets = np.concatenate([[0], np.cumsum(built.list_sizes)]).astype(np.int64)
        return cls(
            name, built.kind, index, quantizer, first_id, len(built.order), built.refs, offsets
        )

    @classmethod
    def load(cls, folder: Path) -> Partition:
        import faiss

        meta = json.loads((folder / META_FILE).read_text())
        index = faiss.read_index_binary(str(folder / BINARY_FILE))
        quantizer = None
        if (folder / QUANTIZER_FILE).is_file():
            quantizer = faiss.read_index(str(folder / QUANTIZER_FILE))
        if index.ntotal != meta["n"]:
            raise ValueError(f"{folder}: index holds {index.ntotal} items, meta says {meta['n']}")
        refs = np.load(folder / REFS_FILE)
        offsets = np.concatenate([[0], np.cumsum(meta["list_sizes"])]).astype(np.int64)
        return cls(
            meta["name"],
            meta["kind"],
            index,
            quantizer,
            int(meta["first_id"]),
            meta["n"],
            refs,
            offsets,
        )

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def nbytes(self) -> int:
        """Resident size of the faiss structures (their serialised size), references, tables."""
        import faiss

        size = len(faiss.serialize_index_binary(self.index))
        if self.quantizer is not None:
            size += len(faiss.serialize_index(self.quantizer))
        return size + self.refs.nbytes + self.list_offsets.nbytes + 16 * len(self._extra)

    def internal_ids(self, local: np.ndarray) -> np.ndarray:
        """Map faiss labels (local ids, ``-1`` = none) to internal ids."""
        out = np.where(local >= 0, local + self.first_id, -1)
        if self._extra:
            live = local >= self.n_base
            out[live] = self._extras()[0][local[live] - self.n_base]
        return out

    def _extras(self) -> tuple[np.ndarray, np.ndarray]:
        if self._extra_arr is None or len(self._extra_arr) != len(self._extra):
            self._extra_arr = np.asarray(self._extra, dtype=np.int64)
            self._extra_lists_arr = np.asarray(self._extra_lists, dtype=np.int64)
        return self._extra_arr, self._extra_lists_arr

    def lists_of_local(self, local: np.ndarray) -> np.ndarray:
        """Reference (list) index of valid local ids."""
        out = np.searchsorted(self.list_offsets, local, side="right") - 1
        live = local >= self.n_base
        if live.any():
            out[live] = self._extras()[1][local[live] - self.n_base]
        return out

    def search(
        self, codes: np.ndarray, vectors: np.ndarray, k: int, knobs: SearchKnobs
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Hamming top-``k`` of each query inside this partition.

        Returns:
            ``(hamming int32[nq, k], internal ids int64[nq, k], coarse float32[nq, k])``:
            ``-1`` ids where fewer than ``k`` items were reachable; ``coarse`` is the query's
            inner product with each candidate's reference vector.
        """
        import faiss

        # Knobs travel as per-call SearchParameters, never as attributes of the shared faiss
        # objects: concurrent searches with different nprobe/efSearch must not race.
        if self.kind == "ivf":
            ref_scores, assign = self.probe(vectors, knobs)
            dist, local = _search_preassigned(self.index, codes, k, assign, assign.shape[1])
            lists = self.lists_of_local(np.maximum(local, 0))
            # Every hit lies in a probed list: look its centroid score up, don't recompute it.
            table = np.zeros((len(codes), self.index.nlist), dtype=np.float32)
            probed = assign >= 0
            rows = np.broadcast_to(np.arange(len(codes))[:, None], assign.shape)
            table[rows[probed], assign[probed]] = ref_scores[probed]
            coarse = np.take_along_axis(table, lists, axis=1)
        else:
            if self.kind == "hnsw":
                hp = faiss.SearchParametersHNSW()
                hp.efSearch = max(knobs.ef_search, k)
                dist, local = self.index.search(codes, k, params=hp)
            else:
                dist, local = self.index.search(codes, k)
            coarse = np.repeat(vectors @ self.refs[0][:, None], k, axis=1)
        return dist, self.internal_ids(local), coarse.astype(np.float32)

    @property
    def exact_quantizer(self) -> bool:
        """Whether lists are assigned by exact search over the centroids (:attr:`refs`), not by
        an HNSW graph over them: then ``vectors @ refs.T`` and a top-``nprobe`` probe too."""
        return self.kind == "ivf" and not hasattr(self.quantizer, "hnsw")

    def probe(self, vectors: np.ndarray, knobs: SearchKnobs) -> tuple[np.ndarray, np.ndarray]:
        """The ``nprobe`` lists (``ivf``) nearest each query by its float vector:
        ``(query · centroid float32[nq, nprobe], list int64[nq, nprobe])``, ``-1`` past the
        last list."""
        import faiss

        nprobe = min(knobs.nprobe, self.index.nlist)
        if hasattr(self.quantizer, "hnsw"):
            qp = faiss.SearchParametersHNSW()
            qp.efSearch = max(knobs.quantizer_ef, nprobe)
            return _float_search(self.quantizer, vectors, nprobe, qp)
        return self.quantizer.search(vectors, nprobe)

    def assign_lists(self, vectors: np.ndarray) -> np.ndarray:
        """The list (reference) new items belong to."""
        if self.kind == "ivf":
            return self.quantizer.search(vectors, 1)[1][:, 0].astype(np.int64)
        return np.zeros(len(vectors), dtype=np.int64)

    def add(self, codes: np.ndarray, lists: np.ndarray, internal_ids: np.ndarray) -> None:
        """Append items (live upserts) to their lists: searchable when this returns."""
        import faiss

        if self.kind == "ivf":
            lists = np.ascontiguousarray(lists, dtype=np.int64)
            codes = np.ascontiguousarray(codes)
            self.index.add_core(len(codes), faiss.swig_ptr(codes), None, faiss.swig_ptr(lists))
        else:
            self.index.add(codes)
        self._extra.extend(int(i) for i in internal_ids)
        self._extra_lists.extend(int(j) for j in lists)


def _float_search(index: Any, x: np.ndarray, k: int, params: Any) -> tuple[np.ndarray, ...]:
    """``index.search(x, k, params=params)`` on a float faiss index, whoever patched it.

    Why: importing ``faiss.contrib.torch_utils`` (pytorch-metric-learning's evaluation tools do)
    replaces ``search`` on every float ``faiss.Index`` class, process-wide, with a wrapper that
    has no ``params`` argument; the original stays as ``search_numpy``. Binary indexes are not
    patched.
    """
    search = getattr(index, "search_numpy", index.search)
    return search(x, k, params=params)


def _search_preassigned(
    index: Any, codes: np.ndarray, k: int, assign: np.ndarray, nprobe: int
) -> tuple[np.ndarray, np.ndarray]:
    """``IndexBinaryIVF.search_preassigned`` with ``nprobe`` as a per-call parameter.

    faiss's Python wrapper of the binary version takes no ``params`` (it reads the index's
    ``nprobe`` attribute), so this calls the C++ method with an ``IVFSearchParameters``.
    """
    import faiss

    n = len(codes)
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    assign = np.ascontiguousarray(assign, dtype=np.int64)
    coarse = np.zeros(assign.shape, dtype=np.int32)  # unused: lists are scanned in full
    dist = np.empty((n, k), dtype=np.int32)
    local = np.empty((n, k), dtype=np.int64)
    params = faiss.SearchParametersIVF()
    params.nprobe = nprobe
    index.search_preassigned_c(
        n,
        faiss.swig_ptr(codes),
        k,
        faiss.swig_ptr(assign),
        faiss.swig_ptr(coarse),
        faiss.swig_ptr(dist),
        faiss.swig_ptr(local),
        False,
        params,
    )
    return dist, local

"""The unfiltered search of a batch as one compiled loop: Hamming shortlist, merge, re-rank.

Why: the faiss path (:meth:`vsearch.index.partition.Partition.search`, then the engine's merge
and :meth:`vsearch.index.rerank_store.RerankStore.score`) is numpy glue around per-partition
faiss calls and a per-query Python loop for the re-rank; at 1M items that glue, faiss's top-R
heap and the re-rank loop were most of a query's ~120 us (docs/scaling.md). Here, per query and
per searched category, every probed list's codes are scanned by popcount, the ``depth`` nearest
by Hamming distance are *selected* with a histogram of the distances (integers ``0..bits``: no
heap), the categories' shortlists are merged the same way, and the int8 re-rank rows are
scored in the same loop, keeping the best ``k``. The centroid search before it is one BLAS
product per partition and batch (numpy) and :func:`top_lists`. numba compiles it once per
machine (cached in ``__pycache__``) and the loop releases the GIL, so the engine's search
threads run it in parallel.

What it reads: the release's ``codes.npy`` (items of a list are contiguous in it: the builder
stores partitions list by list), the re-rank rows, the references; items upserted live are
scanned exhaustively in their category (few until compaction folds them into lists);
tombstoned items are skipped. It answers what the faiss path answers except at ties: items at
the ``depth``-th Hamming distance are taken in storage order (faiss's heap keeps others), so a
result can differ at the margin (measured on 1,000 queries at 50k items: 99.8% of top-10 ids
identical, same recall). The shortlist's re-rank rows are prefetched a few ahead of the one
being scored (:data:`PREFETCH_AHEAD`): at 1M items the scoring waited on DRAM for most of its
time.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

# Rows of the re-rank store requested ahead of the one being scored. Why: the shortlist's rows
# are scattered over the whole store (256 B each at d=256, from DRAM at 1M items), and the
# scoring loop alone waits for one row at a time (~120 ns per row measured); asking for the row
# 8 ahead keeps several loads in flight (~47 ns per row; 4 to 16 ahead are within 5%, 32 and a
# whole-shortlist burst are slower, as they evict rows before they are used).
PREFETCH_AHEAD = 8
CACHE_LINE = 64


@intrinsic
def _prefetch(typingctx, arr, i, j):
    """Hint the CPU to load the cache line holding ``arr[i, j]`` (``llvm.prefetch``: read,
    keep in all cache levels); no effect on results."""

    def codegen(context, builder, sig, args):
        aryty = sig.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1], args[2]])
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.none(arr, i, j), codegen


@njit(cache=True, nogil=True, inline="always")
def _prefetch_row(rows: np.ndarray, i: int) -> None:
    """Every cache line of ``rows[i]`` (a C-contiguous 2-d array)."""
    for t in range(0, rows.shape[1] * rows.itemsize, CACHE_LINE):
        _prefetch(rows, i, t // rows.itemsize)


@njit(cache=True, nogil=True, inline="always")
def _popcount64(x: np.uint64) -> int:
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return int((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@njit(cache=True, nogil=True, inline="always")
def _place(best: np.ndarray, v: float) -> int:
    """Where ``v`` goes in the descending ``best`` (``len(best)``: below all of them; ties
    keep the earlier one first)."""
    pos = len(best)
    while pos > 0 and best[pos - 1] < v:
        pos -= 1
    return pos


@njit(cache=True, nogil=True, inline="always")
def _shift_in(row: np.ndarray, pos: int, v: float) -> None:
    """``v`` inserted at ``pos`` of ``row``, its last element dropped."""
    for j in range(len(row) - 1, pos, -1):
        row[j] = row[j - 1]
    row[pos] = v


@njit(cache=True, nogil=True)
def top_lists(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest of each row of ``scores`` (``float32[nq, n_lists]``, query · list
    centroid), best first: ``(scores float32[nq, k], lists int64[nq, k])``.

    Why not faiss's flat quantizer search: at 1M items (~1,000 lists per partition) its
    per-query heap cost as much as the BLAS product itself; keeping the ``k`` best with an
    insertion that rejects almost every score at the first comparison halves the centroid step.
    """
    nq, n = scores.shape
    k = min(k, n)
    vals = np.full((nq, k), -np.inf, dtype=np.float32)
    ids = np.full((nq, k), -1, dtype=np.int64)
    for i in range(nq):
        for c in range(n):
            v = scores[i, c]
            pos = _place(vals[i], v)
            if pos < k:
                _shift_in(vals[i], pos, v)
                _shift_in(ids[i], pos, c)
    return vals, ids


@njit(cache=True, nogil=True)
def select_smallest(
    dist: np.ndarray, m: int, r: int, bits: int, hist: np.ndarray, out: np.ndarray
) -> int:
    """Positions of the ``r`` smallest of the integer distances ``dist[:m]`` (in ``0..bits``)
    written to ``out`` in storage order; returns how many (``min(m, r)``). Ties at the cut
    are taken first-come."""
    if m <= r:
        for i in range(m):
            out[i] = i
        return m
    hist[: bits + 1] = 0
    for i in range(m):
        hist[dist[i]] += 1
    below, cut = 0, 0
    while below + hist[cut] < r:
        below += hist[cut]
        cut += 1
    n, ties = 0, r - below
    for i in range(m):
        d = dist[i]
        if d < cut or (d == cut and ties > 0):
            if d == cut:
                ties -= 1
            out[n] = i
            n += 1
    return n


@njit(cache=True, nogil=True, inline="always")
def _prefetch_candidate(c: int, rows: np.ndarray, x_rows: np.ndarray, n_base: int) -> None:
    """The re-rank row of internal id ``c``: the release's, or one written live."""
    if c < n_base:
        _prefetch_row(rows, c)
    else:
        _prefetch_row(x_rows, c - n_base)


@njit(cache=True, nogil=True)
def search_batch(
    q_codes: np.ndarray,
    q_vectors: np.ndarray,
    q8: np.ndarray,
    mult: np.ndarray,
    bias: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    ref: np.ndarray,
    slot: np.ndarray,
    slot_part: np.ndarray,
    slot_depth: np.ndarray,
    codes: np.ndarray,
    rows: np.ndarray,
    x_codes: np.ndarray,
    x_rows: np.ndarray,
    x_ptr: np.ndarray,
    x_local: np.ndarray,
    x_ref: np.ndarray,
    refs: np.ndarray,
    dead: np.ndarray,
    depth: int,
    k: int,
    bits: int,
    max_scan: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-``k`` (internal ids, scores, Hamming distances) of each query; ``-1`` ids past the
    last hit.

    Args:
        q_codes: ``uint64[nq, W]`` query codes; ``q_vectors``: ``float32[nq, d]``.
        q8, mult, bias: the queries prepared for the int8 store
            (:meth:`~vsearch.index.rerank_store.Quantizer.prepare`).
        starts, ends: ``int64[nq, P]`` internal-id range of each probed release list (``-1``
            start: no probe); ``ref``: ``float32[nq, P]`` query · that list's reference;
            ``slot``: ``int64[nq, P]`` the searched category (0 = predicted) it belongs to.
        slot_part: ``int64[nq, S]`` partition of each searched category (``-1``: none);
            ``slot_depth``: ``int64[S]`` shortlist depth per category slot.
        codes, rows: ``uint64[n_base, W]`` and ``int8[n_base, d]`` of the release.
        x_codes, x_rows: the same for items written live (internal id ``n_base + i``).
        x_ptr, x_local, x_ref: live items by partition: those of partition ``p`` are
            ``x_local[x_ptr[p]:x_ptr[p+1]]`` (index into ``x_codes``), with the row of their
            reference vector in ``refs`` (``float32[L, d]``, every partition's references).
        dead: ``bool[n_base + n_live]`` tombstones.
        depth: shortlist length after the merge; ``k``: results; ``bits``: code length.
        max_scan: the longest candidate list a query can scan (buffer size).
    """
    nq, n_probe = starts.shape
    n_slots = slot_depth.shape[0]
    words = codes.shape[1]
    dim = rows.shape[1]
    n_base = codes.shape[0]
    out_ids = np.full((nq, k), -1, dtype=np.int64)
    out_sc = np.full((nq, k), -np.inf, dtype=np.float32)
    out_ham = np.full((nq, k), -1, dtype=np.int32)
    dist = np.empty(max_scan, dtype=np.int32)
    cand = np.empty(max_scan, dtype=np.int64)
    cref = np.empty(max_scan, dtype=np.float32)
    sel = np.empty(max_scan, dtype=np.int64)
    hist = np.zeros(bits + 1, dtype=np.int64)
    m_dist = np.empty(max_scan, dtype=np.int32)
    m_cand = np.empty(max_scan, dtype=np.int64)
    m_ref = np.empty(max_scan, dtype=np.float32)
    for qi in range(nq):
        merged = 0
        for s in range(n_slots):
            pi = slot_part[qi, s]
            if pi < 0:
                continue
            m = 0
            for p in range(n_probe):
                if slot[qi, p] != s or starts[qi, p] < 0:
                    continue
                r0 = ref[qi, p]
                for c in range(starts[qi, p], ends[qi, p]):
                    if dead[c]:
                        continue
                    h = 0
                    for w in range(words):
                        h += _popcount64(q_codes[qi, w] ^ codes[c, w])
                    dist[m] = h
                    cand[m] = c
                    cref[m] = r0
                    m += 1
            for j in range(x_ptr[pi], x_ptr[pi + 1]):
                i = x_local[j]
                if dead[n_base + i]:
                    continue
                h = 0
                for w in range(words):
                    h += _popcount64(q_codes[qi, w] ^ x_codes[i, w])
                r0 = np.float32(0.0)
                for t in range(refs.shape[1]):
                    r0 += q_vectors[qi, t] * refs[x_ref[j], t]
                dist[m] = h
                cand[m] = n_base + i
                cref[m] = r0
                m += 1
            got = select_smallest(dist, m, slot_depth[s], bits, hist, sel)
            for j in range(got):
                i = sel[j]
                m_dist[merged] = dist[i]
                m_cand[merged] = cand[i]
                m_ref[merged] = cref[i]
                merged += 1
        got = select_smallest(m_dist, merged, depth, bits, hist, sel)
        for j in range(min(got, PREFETCH_AHEAD)):
            _prefetch_candidate(m_cand[sel[j]], rows, x_rows, n_base)
        for j in range(got):
            if j + PREFETCH_AHEAD < got:
                _prefetch_candidate(m_cand[sel[j + PREFETCH_AHEAD]], rows, x_rows, n_base)
            i = sel[j]
            c = m_cand[i]
            acc = 0
            if c < n_base:
                for t in range(dim):
                    acc += np.int32(q8[qi, t]) * np.int32(rows[c, t])
            else:
                for t in range(dim):
                    acc += np.int32(q8[qi, t]) * np.int32(x_rows[c - n_base, t])
            score = np.float32(mult[qi] * acc + bias[qi] + m_ref[i])
            pos = _place(out_sc[qi], score)
            if pos < k:
                _shift_in(out_sc[qi], pos, score)
                _shift_in(out_ids[qi], pos, c)
                _shift_in(out_ham[qi], pos, m_dist[i])
    return out_ids, out_sc, out_ham

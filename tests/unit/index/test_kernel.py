"""The compiled search loop: the same answers as the faiss path, tombstones and live writes
included, and its top-R selection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vsearch.index.builder import build_release
from vsearch.index.embeddings import EmbeddingSet
from vsearch.index.engine import Engine
from vsearch.index.kernel import select_smallest, top_lists
from vsearch.index.routing import route
from vsearch.index.synthetic import SyntheticWorld
from vsearch.settings import IndexSettings

pytestmark = pytest.mark.unit


def _both(root: Path, settings: IndexSettings) -> tuple[Engine, Engine]:
    """The same release opened with each kernel (the faiss one read-only)."""
    compiled = Engine.open_current(root, settings.model_copy(update={"search_kernel": "compiled"}))
    plain = Engine.open_current(
        root, settings.model_copy(update={"search_kernel": "faiss"}), writable=False
    )
    assert compiled.kernel_usable and not plain.kernel_usable
    return compiled, plain


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([len(set(x) & set(y)) / len(x) for x, y in zip(a, b, strict=True)]))


@pytest.mark.parametrize("exact_quantizer", [False, True])
def test_compiled_answers_as_the_faiss_path(
    tmp_path: Path,
    indexes_dir: Path,
    world: SyntheticWorld,
    index_settings: IndexSettings,
    exact_quantizer: bool,
) -> None:
    q = world.queries(200, seed=21)
    if exact_quantizer:  # lists found by BLAS + top_lists instead of faiss's HNSW quantizer
        index_settings = index_settings.model_copy(update={"ivf_quantizer_flat_max": 4096})
        indexes_dir = tmp_path / "exact"
        build_release(world.catalog, index_settings, indexes_dir)
    compiled, plain = _both(indexes_dir, index_settings)
    ivf = [p for p in compiled._parts if p.kind == "ivf"]
    assert ivf and all(p.exact_quantizer == exact_quantizer for p in ivf)
    with compiled, plain:
        cats = route(q.category_probs, list(world.category_names), 0.95, 2)
        assert any(len(c) > 1 for c in cats)  # widened queries merge several partitions
        a = compiled.search(q.codes, q.vectors, cats, k=10)
        b = plain.search(q.codes, q.vectors, cats, k=10)
    # ties at the R-th Hamming distance may be broken differently, nothing else
    assert _agreement(a.item_ids, b.item_ids) > 0.97
    same = a.item_ids == b.item_ids
    np.testing.assert_allclose(a.scores[same], b.scores[same], rtol=1e-5, atol=1e-5)
    assert (a.hamming[same] == b.hamming[same]).all()
    assert (np.diff(a.scores, axis=1) <= 1e-6).all()  # best first
    assert (a.categories == b.categories)[same].all()


def test_compiled_skips_tombstones_and_finds_live_writes(
    indexes_dir: Path, world: SyntheticWorld, index_settings: IndexSettings
) -> None:
    q = world.queries(30, seed=22)
    compiled, plain = _both(indexes_dir, index_settings)
    with compiled, plain:
        cats = [[c] for c in q.category]
        first = compiled.search(q.codes, q.vectors, cats, k=5)
        gone = sorted({x for x in first.item_ids[:, 0] if x is not None})
        compiled.delete(gone)
        # new listings: copies of the queries themselves (their best match), one in a new
        # category the release never had
        new = EmbeddingSet(
            np.asarray([f"new{i}" for i in range(len(q))], dtype=object),
            np.asarray([*q.category[:-1], "brand-new"], dtype=object),
            q.codes,
            q.vectors,
            compiled.manifest.model,
        )
        compiled.upsert(new)
        plain.sync()
        cats[-1] = ["brand-new"]
        a = compiled.search(q.codes, q.vectors, cats, k=5)
        b = plain.search(q.codes, q.vectors, cats, k=5)
    assert not set(gone) & set(a.item_ids.ravel().tolist())
    assert a.item_ids[:, 0].tolist() == [f"new{i}" for i in range(len(q))]
    assert _agreement(a.item_ids, b.item_ids) > 0.97
    assert a.categories[-1, 0] == "brand-new"


def test_faiss_kernel_for_what_the_loop_does_not_do(
    tmp_path: Path, world: SyntheticWorld, index_settings: IndexSettings
) -> None:
    f16 = index_settings.model_copy(update={"rerank_dtype": "float16"})
    build_release(world.catalog, f16, tmp_path / "f16")
    with Engine.open_current(tmp_path / "f16", f16) as e:
        assert not e.kernel_usable
    hnsw = index_settings.model_copy(update={"large_kind": "hnsw"})
    build_release(world.catalog, hnsw, tmp_path / "hnsw")
    with Engine.open_current(tmp_path / "hnsw", hnsw) as e:
        assert not e.kernel_usable


@pytest.mark.parametrize("r", [1, 7, 50, 199, 200, 500])
def test_select_smallest_keeps_the_r_nearest(r: int) -> None:
    rng = np.random.default_rng(r)
    dist = rng.integers(0, 40, 200).astype(np.int32)  # many ties
    out = np.empty(len(dist), dtype=np.int64)
    got = select_smallest(dist, len(dist), r, 64, np.zeros(65, dtype=np.int64), out)
    assert got == min(r, len(dist))
    picked = out[:got]
    assert len(set(picked.tolist())) == got
    assert sorted(dist[picked].tolist()) == sorted(dist.tolist())[:got]


@pytest.mark.parametrize(("lists", "k"), [(50, 8), (5, 8), (300, 1)])
def test_top_lists_keeps_the_best_lists_best_first(lists: int, k: int) -> None:
    rng = np.random.default_rng(lists)
    scores = rng.standard_normal((40, lists)).astype(np.float32)
    vals, ids = top_lists(scores, k)
    want = np.argsort(-scores, axis=1, kind="stable")[:, : min(k, lists)]
    assert ids.shape == want.shape
    assert (ids == want).all()
    np.testing.assert_array_equal(vals, np.take_along_axis(scores, want, axis=1))


def test_centroid_step_in_chunks_answers_as_in_one(
    tmp_path: Path, world: SyntheticWorld, index_settings: IndexSettings, monkeypatch
) -> None:
    from vsearch.index import engine as engine_module

    exact = index_settings.model_copy(update={"ivf_quantizer_flat_max": 4096})
    build_release(world.catalog, exact, tmp_path / "exact")
    q = world.queries(50, seed=5)
    cats = route(q.category_probs, list(world.category_names), 0.95, 2)
    with Engine.open_current(tmp_path / "exact", exact) as e:
        whole = e.search(q.codes, q.vectors, cats, k=10)
        monkeypatch.setattr(engine_module, "PROBE_CHUNK", 7)  # 50 queries: 8 chunks, one short
        chunked = e.search(q.codes, q.vectors, cats, k=10)
    assert (whole.item_ids == chunked.item_ids).all()
    np.testing.assert_array_equal(whole.scores, chunked.scores)

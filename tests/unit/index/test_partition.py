"""Partitions: exact Hamming results on hand-made codes, all kinds, id mapping, live adds."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from vsearch.index.codes import hamming
from vsearch.index.partition import Partition, SearchKnobs, build_partition, choose_kind
from vsearch.settings import IndexSettings

pytestmark = pytest.mark.unit


def _codes(*rows: list[int]) -> np.ndarray:
    return np.asarray(rows, dtype=np.uint8)


def test_flat_partition_exact_on_hand_made_codes() -> None:
    base = _codes([0b0000_0000], [0b0000_0111], [0b1111_1111], [0b0000_0001])
    vectors = np.eye(4, 2, dtype=np.float32)
    built = build_partition(base, vectors, IndexSettings(bits=8), kind="flat")
    part = Partition.from_built("cat", built, first_id=100)
    query = np.array([[1.0, 0.0]], np.float32)
    dist, ids, coarse = part.search(_codes([0b0000_0000]), query, 4, SearchKnobs())
    assert dist.tolist() == [[0, 1, 3, 8]]
    assert ids.tolist() == [[100, 103, 101, 102]]  # internal = first_id + local
    np.testing.assert_allclose(coarse, 0.25)  # q · partition mean (0.25, 0.25)


def test_choose_kind_by_size() -> None:
    s = IndexSettings(flat_max=10, large_kind="hnsw")
    assert choose_kind(10, s) == "flat" and choose_kind(11, s) == "hnsw"


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_every_kind_finds_exact_duplicates(kind: str, world) -> None:
    emb = world.catalog.subset(np.arange(800))
    s = IndexSettings(ivf_list_size=20, ivf_quantizer_flat_max=8, hnsw_m=8)
    built = build_partition(emb.codes, emb.vectors, s, kind=kind)
    assert built.kind == kind and sorted(built.order.tolist()) == list(range(800))
    part = Partition.from_built("p", built, first_id=0)
    q = np.arange(0, 800, 40)
    local_of_row = np.argsort(built.order)
    dist, ids, coarse = part.search(
        emb.codes[q], emb.vectors[q], 5, SearchKnobs(nprobe=4, ef_search=32)
    )
    refs = built.refs[part.lists_of_local(ids)]
    np.testing.assert_allclose(coarse, np.einsum("qkd,qd->qk", refs, emb.vectors[q]), atol=1e-5)
    assert (dist[:, 0] == 0).all()  # each query is in the index: distance 0 comes first
    # ids are internal ids = local positions; the item found at distance 0 has the query's code
    found_rows = built.order[ids[:, 0]]
    np.testing.assert_array_equal(emb.codes[found_rows], emb.codes[q])
    assert (local_of_row[q] >= 0).all()
    ref = hamming(emb.codes[q], emb.codes)
    assert (np.sort(ref, axis=1)[:, 0] == 0).all()


def test_ivf_order_groups_lists_and_partition_roundtrip(tmp_path, world) -> None:
    emb = world.catalog.subset(np.arange(600))
    s = IndexSettings(ivf_list_size=30, ivf_quantizer_flat_max=4)
    built = build_partition(emb.codes, emb.vectors, s, kind="ivf")
    built.save(tmp_path / "p000", "shoes", first_id=7)
    part = Partition.load(tmp_path / "p000")
    assert (part.name, part.kind, part.first_id, part.n_base) == ("shoes", "ivf", 7, 600)
    assert part.quantizer is not None and hasattr(part.quantizer, "hnsw")  # 20 lists > 4
    sizes = [part.index.get_list_size(i) for i in range(part.index.nlist)]
    assert sum(sizes) == 600


def test_live_add_maps_to_given_internal_ids(world) -> None:
    emb = world.catalog.subset(np.arange(300))
    s = IndexSettings(ivf_list_size=30, ivf_quantizer_flat_max=64)
    part = Partition.from_built("p", build_partition(emb.codes, emb.vectors, s, kind="ivf"), 0)
    new = world.catalog.subset(np.arange(2000, 2003))
    lists = part.assign_lists(new.vectors)
    part.add(new.codes, lists, np.array([5000, 5001, 5002]))
    assert part.ntotal == 303
    dist, ids, coarse = part.search(new.codes, new.vectors, 1, SearchKnobs(nprobe=10))
    assert ids[:, 0].tolist() == [5000, 5001, 5002] and (dist[:, 0] == 0).all()
    np.testing.assert_allclose(
        coarse[:, 0], np.einsum("qd,qd->q", part.refs[lists], new.vectors), atol=1e-5
    )


def test_partition_needs_vectors() -> None:
    with pytest.raises(ValueError, match="float vectors"):
        build_partition(np.zeros((50, 4), np.uint8), None, IndexSettings(bits=32), kind="ivf")


def test_empty_partition_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        build_partition(np.zeros((0, 4), np.uint8), np.zeros((0, 2)), IndexSettings(bits=32))


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_concurrent_searches_with_different_knobs_do_not_race(kind: str, world) -> None:
    """Knobs are per-call parameters: threads asking for different nprobe/efSearch each get
    exactly what a lone search with their knobs gets (no shared faiss attribute flips)."""
    from concurrent.futures import ThreadPoolExecutor

    emb = world.catalog.subset(np.arange(800))
    s = IndexSettings(ivf_list_size=20, ivf_quantizer_flat_max=8, hnsw_m=8)
    part = Partition.from_built("p", build_partition(emb.codes, emb.vectors, s, kind=kind), 0)
    q = np.arange(0, 800, 7)
    knobs = [SearchKnobs(nprobe=1, ef_search=10), SearchKnobs(nprobe=40, ef_search=400)]
    alone = [part.search(emb.codes[q], emb.vectors[q], 20, kn)[1] for kn in knobs]
    assert not np.array_equal(alone[0], alone[1])  # the knobs matter on this data

    def run(i: int) -> bool:
        return np.array_equal(
            part.search(emb.codes[q], emb.vectors[q], 20, knobs[i % 2])[1], alone[i % 2]
        )

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(run, range(40)))


def test_search_survives_faiss_torch_utils_patch() -> None:
    """pytorch-metric-learning imports ``faiss.contrib.torch_utils``, which swaps ``search`` on
    every float faiss index for a wrapper without ``params``: IVF partitions (HNSW quantizer)
    must still search. In a subprocess: the patch is process-wide and cannot be undone."""
    script = textwrap.dedent(
        """
        import numpy as np
        import faiss
        import faiss.contrib.torch_utils  # noqa: F401  the patch
        from vsearch.index.partition import Partition, SearchKnobs, build_partition
        from vsearch.settings import IndexSettings

        rng = np.random.default_rng(0)
        vectors = rng.standard_normal((600, 16)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        codes = np.packbits(vectors > 0, axis=1)
        s = IndexSettings(bits=16, ivf_list_size=20, ivf_quantizer_flat_max=8, hnsw_m=8)
        part = Partition.from_built("p", build_partition(codes, vectors, s, kind="ivf"), 0)
        assert hasattr(part.quantizer, "hnsw")
        try:  # the patched search indeed refuses params: this test exercises the patch
            part.quantizer.search(vectors[:2], 4, params=faiss.SearchParametersHNSW())
        except TypeError:
            pass
        else:
            raise SystemExit("faiss.contrib.torch_utils no longer drops params")
        dist, ids, _ = part.search(codes[:20], vectors[:20], 5, SearchKnobs(nprobe=4))
        assert (dist[:, 0] == 0).all() and (ids >= 0).all()
        print("ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]

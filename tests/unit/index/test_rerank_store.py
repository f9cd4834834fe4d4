"""Re-rank store: quantisation error bounds, scores match float math, padding, files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vsearch.index.rerank_store import Quantizer, RerankStore, numpy_dot, simd_dot

pytestmark = pytest.mark.unit


def _unit(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize(("kind", "tol"), [("float16", 2e-3), ("int8", 2e-2)])
@pytest.mark.parametrize("dot", [simd_dot, numpy_dot])
def test_scores_match_float_inner_products(kind: str, tol: float, dot) -> None:
    x, q = _unit(500, 64, 0), _unit(7, 64, 1)
    quant = Quantizer.fit(x, kind)
    store = RerankStore(quant, quant.encode(x), dot)
    cand = np.random.default_rng(2).integers(0, 500, (7, 30))
    got = store.score(q, cand)
    want = np.einsum("qcd,qd->qc", x[cand], q)
    assert np.abs(got - want).max() < tol


def test_padding_scores_minus_inf_and_order_kept() -> None:
    x, q = _unit(20, 8, 3), _unit(2, 8, 4)
    store = RerankStore(Quantizer.fit(x, "float16"), x.astype(np.float16), numpy_dot)
    cand = np.array([[3, -1, 5], [-1, -1, -1]])
    got = store.score(q, cand)
    assert np.isneginf(got[0, 1]) and np.isneginf(got[1]).all()
    np.testing.assert_allclose(got[0, [0, 2]], x[[3, 5]] @ q[0], atol=2e-3)


def test_int8_clips_outliers_instead_of_coarsening() -> None:
    x = _unit(2000, 16, 5)
    x[0] *= 50  # one wild row
    clipped = Quantizer.fit(x, "int8", clip_quantile=0.999)
    by_max = Quantizer.fit(x, "int8", clip_quantile=1.0)
    err = np.abs(clipped.decode(clipped.encode(x[1:])) - x[1:])
    err_max = np.abs(by_max.decode(by_max.encode(x[1:])) - x[1:])
    assert np.percentile(err, 99) < 0.005 < np.percentile(err_max, 99)


def test_append_then_gather_and_vectors() -> None:
    x = _unit(10, 8, 6)
    quant = Quantizer.fit(x, "float16")
    store = RerankStore(quant, quant.encode(x), numpy_dot)
    new = _unit(3, 8, 7)
    ids = store.append(new)
    assert ids.tolist() == [10, 11, 12] and len(store) == 13
    np.testing.assert_allclose(store.vectors(np.array([11, 2])), [new[1], x[2]], atol=1e-3)


def test_write_open_roundtrip_is_memory_mapped(tmp_path: Path) -> None:
    x = _unit(100, 32, 8)
    quant = Quantizer.fit(x, "int8")
    RerankStore.write(tmp_path, quant, x, chunk=30)
    store = RerankStore.open(tmp_path, numpy_dot)
    assert isinstance(store.base.base, np.memmap)  # a plain view over the file mapping
    assert not store.base.flags.owndata and store.base.dtype == np.int8
    np.testing.assert_array_equal(store.base, quant.encode(x))
    assert store.nbytes == 100 * 32


def test_bad_kind_and_shapes() -> None:
    with pytest.raises(ValueError, match="store kind"):
        Quantizer.fit(_unit(5, 4, 0), "int4")  # type: ignore[arg-type]
    quant = Quantizer.fit(_unit(5, 4, 0), "float16")
    with pytest.raises(ValueError, match="store rows"):
        RerankStore(quant, np.zeros((5, 4), np.int8))
    store = RerankStore(quant, quant.encode(_unit(5, 4, 0)))
    with pytest.raises(ValueError, match="candidates"):
        store.score(_unit(2, 4, 1), np.zeros((3, 2), np.int64))

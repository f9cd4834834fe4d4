"""Binary codes: bit packing agrees with faiss, Hamming oracle, the projection encoder."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from vsearch.index.codes import ProjectionEncoder, hamming, pack_signs, unpack_bits

pytestmark = pytest.mark.unit


def test_hamming_on_hand_made_codes() -> None:
    a = np.array([[0b00000000, 0b00000000], [0b11111111, 0b00000001]], dtype=np.uint8)
    b = np.array([[0b00000001, 0b00000000], [0b11111111, 0b11111111]], dtype=np.uint8)
    np.testing.assert_array_equal(hamming(a, b), [[1, 16], [8, 7]])


def test_pack_signs_uses_faiss_bit_order() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 32)).astype(np.float32)
    ours = pack_signs(x)
    theirs = np.empty_like(ours)
    faiss.real_to_binary(
        32 * 5, faiss.swig_ptr(np.ascontiguousarray(x.ravel())), faiss.swig_ptr(theirs)
    )
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(unpack_bits(ours), (x > 0).astype(np.uint8))


def test_hamming_matches_faiss_binary_flat() -> None:
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (50, 8), dtype=np.uint8)
    query = rng.integers(0, 256, (3, 8), dtype=np.uint8)
    index = faiss.IndexBinaryFlat(64)
    index.add(base)
    dist, ids = index.search(query, 50)
    ref = hamming(query, base)
    np.testing.assert_array_equal(np.take_along_axis(ref, ids, 1), dist)


def test_pack_signs_rejects_bad_width() -> None:
    with pytest.raises(ValueError, match="multiple of 8"):
        pack_signs(np.zeros((2, 12)))


def test_projection_encoder_keeps_neighbours(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(400, 16)).astype(np.float32)
    enc = ProjectionEncoder.fit(x, bits=64, seed=3)
    codes = enc.encode(x)
    assert codes.shape == (400, 8) and codes.dtype == np.uint8
    near = enc.encode(x + 0.01 * rng.normal(size=x.shape).astype(np.float32))
    far = enc.encode(rng.normal(size=x.shape).astype(np.float32))
    d_near = np.diag(hamming(codes, near)).mean()
    d_far = np.diag(hamming(codes, far)).mean()
    assert d_near < 0.2 * d_far  # a small perturbation flips few bits, a random vector half
    enc.save(tmp_path / "enc.npz")
    np.testing.assert_array_equal(ProjectionEncoder.load(tmp_path / "enc.npz").encode(x), codes)


def test_projection_encoder_validates() -> None:
    with pytest.raises(ValueError, match="multiple of 8"):
        ProjectionEncoder.fit(np.zeros((10, 4), dtype=np.float32), bits=12)
    with pytest.raises(ValueError, match="energy"):
        ProjectionEncoder.fit(np.zeros((10, 4), dtype=np.float32), bits=8, energy=0)

"""Fixtures of the index tests: a seeded synthetic catalog and small index params.

Why synthetic: the engine works on any (item_id, category, code, vector) input, so its tests
need no model; :mod:`vsearch.index.synthetic` gives clustered, product-like embeddings (not
uniform noise) so recall figures mean something, from a fixed seed so they are reproducible.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vsearch.index.builder import build_release
from vsearch.index.embeddings import EmbeddingSet, ModelInfo
from vsearch.index.synthetic import SyntheticSpec, SyntheticWorld, make_world
from vsearch.settings import IndexSettings

MODEL = ModelInfo(name="test-model", version="3", fingerprint="fp-test")


@pytest.fixture(scope="session")
def world() -> SyntheticWorld:
    """3,000 items in 4 categories (seeded); sizes put some partitions above ``flat_max``."""
    return make_world(SyntheticSpec(items=3000, categories=4, seed=11, encoder_sample=3000))


@pytest.fixture
def index_settings() -> IndexSettings:
    """Small-catalog params: IVF above 500 items, lists of ~25, a short tuning grid."""
    return IndexSettings(
        flat_max=500,
        ivf_list_size=25,
        ivf_nprobe=8,
        ivf_quantizer_flat_max=16,
        rerank_depth=60,
        tune_sample=200,
        tune_depths=[20, 40, 80, 160],
        tune_nprobes=[2, 4, 8, 16],
        keep_releases=3,
    )


@pytest.fixture
def indexes_dir(tmp_path: Path, world: SyntheticWorld, index_settings: IndexSettings) -> Path:
    """A folder with one built, CURRENT release of the synthetic world."""
    root = tmp_path / "indexes"
    build_release(world.catalog, index_settings, root)
    return root


def tiny_set(
    n: int = 6,
    bits: int = 16,
    dim: int = 4,
    seed: int = 0,
    prefix: str = "x",
    category: str = "a",
    model: ModelInfo = MODEL,
) -> EmbeddingSet:
    """A hand-sized embeddings set (random codes, unit vectors)."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return EmbeddingSet(
        np.asarray([f"{prefix}{i}" for i in range(n)], dtype=object),
        np.asarray([category] * n, dtype=object),
        rng.integers(0, 256, (n, bits // 8), dtype=np.uint8),
        v,
        model,
    )


@pytest.fixture
def tiny():
    """``tiny(n=..., bits=..., dim=..., seed=..., prefix=..., category=...)`` factory."""
    return tiny_set


@pytest.fixture
def model() -> ModelInfo:
    return MODEL

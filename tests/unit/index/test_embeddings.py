"""EmbeddingSet: the index's input contract (validation and the folder round trip)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vsearch.index.embeddings import EmbeddingSet

pytestmark = pytest.mark.unit


def test_save_load_roundtrip(tmp_path: Path, tiny, model) -> None:
    emb = tiny(n=5, bits=24, dim=3)
    loaded = EmbeddingSet.load(emb.save(tmp_path / "emb"))
    assert loaded.item_ids.tolist() == emb.item_ids.tolist()
    assert loaded.categories.tolist() == emb.categories.tolist()
    np.testing.assert_array_equal(loaded.codes, emb.codes)
    np.testing.assert_array_equal(loaded.vectors, emb.vectors)
    assert loaded.model == model and loaded.bits == 24 and loaded.dim == 3


def test_load_mmap_keeps_values(tmp_path: Path, tiny) -> None:
    emb = tiny()
    loaded = EmbeddingSet.load(emb.save(tmp_path / "emb"), mmap=True)
    np.testing.assert_array_equal(np.asarray(loaded.vectors), emb.vectors)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"item_ids": ["a", "a"]}, "unique"),
        ({"item_ids": ["a", ""]}, "non-empty"),
        ({"categories": ["c"]}, "categories has 1 rows"),
        ({"codes": np.zeros((2, 2), dtype=np.int32)}, "uint8"),
        ({"codes": np.zeros((3, 2), dtype=np.uint8)}, "codes has 3 rows"),
        ({"vectors": np.full((2, 4), np.nan, dtype=np.float32)}, "NaN"),
        ({"vectors": np.zeros((2, 4), dtype=np.int64)}, "float"),
    ],
)
def test_bad_input_is_a_value_error(change: dict, message: str) -> None:
    good = {
        "item_ids": ["a", "b"],
        "categories": ["c", "c"],
        "codes": np.zeros((2, 2), dtype=np.uint8),
        "vectors": np.zeros((2, 4), dtype=np.float32),
    }
    with pytest.raises(ValueError, match=message):
        EmbeddingSet(**{**good, **change})


def test_load_names_missing_files(tmp_path: Path) -> None:
    (tmp_path / "emb").mkdir()
    with pytest.raises(ValueError, match=r"missing .*codes\.npy"):
        EmbeddingSet.load(tmp_path / "emb")


def test_subset_keeps_model(tiny) -> None:
    emb = tiny(n=6)
    sub = emb.subset(np.array([4, 1]))
    assert sub.item_ids.tolist() == ["x4", "x1"] and sub.model == emb.model

"""Training data: labels come from mining (truth only in oracle mode), held-out queries stay out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vsearch.errors import BadInput
from vsearch.settings import SplitSettings
from vsearch.split import holdout_mask, is_held_out
from vsearch.training.data import (
    BatchSampler,
    ClickLabels,
    TrainData,
    build_train_data,
    category_labels,
    load_click_labels,
    oracle_labels,
)

pytestmark = pytest.mark.unit


def _q(ids: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"query_id": ids})


def test_holdout_split_is_stable_and_about_the_share() -> None:
    ids = [f"q-{i:05d}" for i in range(4000)]
    hashed = SplitSettings(method="hash", eval_share=0.2)
    mask = is_held_out(_q(ids), hashed)
    assert 0.17 < mask.mean() < 0.23
    rev = is_held_out(_q(ids[::-1]), hashed)[::-1]
    assert np.array_equal(mask, rev)  # independent of row order
    assert not is_held_out(_q(ids), SplitSettings(method="hash", eval_share=0.0)).any()
    other = is_held_out(_q(ids), SplitSettings(method="hash", eval_share=0.2, salt="other"))
    assert not np.array_equal(mask, other)  # a new salt draws a new split
    with pytest.raises(ValueError):
        holdout_mask(ids, 1.0, salt="holdout", buckets=10_000)


def test_click_labels_and_missing_mining(tiny_world, tmp_path: Path) -> None:
    labels = load_click_labels(tiny_world.mining)
    assert labels.source == "clicks"
    assert all(v.startswith("v:") for v in labels.item_vid.values())
    assert labels.negatives  # skip-above negatives are read
    with pytest.raises(BadInput, match="vsearch mine"):
        load_click_labels(tmp_path)


def test_train_data_uses_click_labels_and_keeps_holdout_out(tiny_world, tiny_data) -> None:
    d = tiny_data
    assert d.catalog_images.shape == (tiny_world.n_items, 3, 64, 64)
    assert d.categories == ["bag", "cup", "hat"]
    # never-clicked listings (product 0) are their own classes; clicked ones share a virtual ID
    sizes = np.bincount(d.item_class)
    assert (sizes == 1).sum() == 2 and (sizes == 2).sum() == (tiny_world.n_items - 2) // 2
    queries = pd.read_parquet(tiny_world.drop / "queries.parquet")
    held = set(queries["query_id"][is_held_out(queries, SplitSettings(eval_share=0.2))])
    seen = set(d.query_ids) | set(d.val_query_ids)
    assert held and not (held & seen)
    assert d.query_images.shape[0] == len(d.query_ids)
    for q, c in zip(d.query_ids, d.query_class, strict=True):  # a clicked class has listings
        assert (d.item_class == c).any(), q


def test_oracle_labels_come_from_the_truth(tiny_world) -> None:
    labels = oracle_labels(tiny_world.truth, tiny_world.mining)
    assert labels.source == "oracle"
    assert set(labels.item_vid.values()) == {f"sku-{i}" for i in range(6)}
    data = _load(tiny_world.drop, labels)
    assert data.label_source == "oracle" and data.num_classes == 6


def _load(drop: Path, labels: ClickLabels) -> TrainData:
    """The drop's photos at 64 px with ``labels``, no validation share."""
    return build_train_data(
        drop,
        labels,
        64,
        split=SplitSettings(eval_share=0.2),
        val_share=0.0,
        matte_threshold=0.1,
        seed=0,
    )


def test_category_labels_know_only_categories(tiny_world) -> None:
    labels = category_labels(tiny_world.drop, tiny_world.mining)
    catalog = pd.read_parquet(tiny_world.drop / "catalog.parquet")
    item_cat = dict(zip(catalog["item_id"], catalog["category"], strict=True))
    assert labels.source == "category"
    assert labels.item_vid == item_cat
    assert set(labels.query_vid.values()) <= set(item_cat.values())
    for q, items in labels.negatives.items():  # same-category skips would contradict labels
        assert all(item_cat[i] != labels.query_vid[q] for i in items)
    data = _load(tiny_world.drop, labels)
    assert data.num_classes == len(data.categories) == 3


def test_batches_pair_queries_with_their_clicked_listings(tiny_data) -> None:
    sampler = BatchSampler(tiny_data, 12, 2, 0.25, 0.5, 1.0)
    rng = np.random.default_rng(0)
    for _ in range(5):
        b = sampler.sample(rng)
        items = np.concatenate((b.scene_items, b.studio_items))
        assert len(items) + len(b.queries) == 12 and len(b.queries) == 3
        for q in b.queries:
            assert (tiny_data.item_class[items] == tiny_data.query_class[q]).any()
    a = BatchSampler(tiny_data, 12, 2, 0.25, 0.5, 1.0).sample(np.random.default_rng(4))
    b = BatchSampler(tiny_data, 12, 2, 0.25, 0.5, 1.0).sample(np.random.default_rng(4))
    assert all(
        np.array_equal(x, y) for x, y in zip(vars(a).values(), vars(b).values(), strict=True)
    )

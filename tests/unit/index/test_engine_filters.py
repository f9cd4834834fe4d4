"""Filtered search in the engine: an allowed-items mask applied inside the search.

The synthetic catalog (3,000 items, 4 categories, ``flat_max`` 500) has IVF partitions, so the
three ways of looking for allowed items are all exercised: the exact scan over few allowed
items, the widened IVF search for many, and the exact fallback when the widened search still
finds too few.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vsearch.index.embeddings import EmbeddingSet
from vsearch.index.engine import Engine, FilterKnobs
from vsearch.index.synthetic import SyntheticWorld

pytestmark = pytest.mark.unit

K = 10


def _allowed_truth(world: SyntheticWorld, vectors: np.ndarray, allowed_ids: set[str], k: int):
    """Exact float top-``k`` among the allowed items (the reference a filtered search aims at)."""
    ids = world.catalog.item_ids
    keep = np.asarray([i in allowed_ids for i in ids])
    scores = vectors @ world.catalog.vectors[keep].T
    order = np.argsort(-scores, axis=1)[:, :k]
    return ids[keep][order]


def test_narrow_filter_spread_over_partitions_returns_k(
    indexes_dir: Path, world: SyntheticWorld
) -> None:
    rng = np.random.default_rng(3)
    chosen = rng.choice(len(world.catalog), K, replace=False)
    allowed_ids = set(world.catalog.item_ids[chosen].tolist())
    assert len(set(world.catalog.categories[chosen])) > 1  # spread over partitions
    q = world.queries(20, seed=21)
    with Engine.open_current(indexes_dir, writable=False) as e:
        assert {p.kind for p in e._parts} >= {"ivf"}
        mask = e.mask_of(e.lookup(sorted(allowed_ids)))
        assert mask.sum() == K
        res = e.search(q.codes, q.vectors, [e.categories] * len(q), k=K, allowed=mask)
        for row in res.item_ids:
            assert set(row.tolist()) == allowed_ids  # all k, nothing else
        # Searching one category: exactly the allowed items of that category come back.
        cat = world.catalog.categories[chosen[0]]
        in_cat = set(world.catalog.item_ids[chosen][world.catalog.categories[chosen] == cat])
        one = e.search(q.codes[:1], q.vectors[:1], [cat], k=K, allowed=mask)
        assert {x for x in one.item_ids[0].tolist() if x is not None} == in_cat
        counts = e.allowed_counts(mask)
        assert sum(counts.values()) == K and counts[cat] == len(in_cat)


@pytest.mark.parametrize(
    "knobs",
    [
        FilterKnobs(exact_max=10_000, max_overfetch=32.0),  # exact scan of the allowed items
        FilterKnobs(exact_max=1, max_overfetch=32.0),  # widened IVF search
        FilterKnobs(exact_max=1, max_overfetch=1.0),  # widening capped: exact fallback
    ],
    ids=["exact", "overfetch", "fallback"],
)
def test_filtered_results_are_allowed_and_close_to_exact(
    indexes_dir: Path, world: SyntheticWorld, knobs: FilterKnobs
) -> None:
    rng = np.random.default_rng(4)
    ids = world.catalog.item_ids
    allowed_ids = set(ids[rng.random(len(ids)) < 0.08].tolist())
    q = world.queries(60, seed=22)
    truth = _allowed_truth(world, q.vectors, allowed_ids, K)
    with Engine.open_current(indexes_dir, writable=False) as e:
        mask = e.mask_of(e.lookup(sorted(allowed_ids)))
        res = e.search(
            q.codes, q.vectors, [e.categories] * len(q), k=K, allowed=mask, filter_knobs=knobs
        )
    got = res.item_ids
    assert all(x in allowed_ids for x in got.ravel())  # never a listing outside the filter
    assert (res.internal_ids >= 0).all()  # k found for every query
    recall = np.mean([len(set(g) & set(t)) / K for g, t in zip(got, truth, strict=True)])
    assert recall >= 0.8


def test_filter_skips_tombstones_and_sees_live_upserts(
    indexes_dir: Path, world: SyntheticWorld
) -> None:
    ids = world.catalog.item_ids
    allowed_ids = sorted(ids[:5].tolist())
    q = world.queries(3, seed=23)
    with Engine.open_current(indexes_dir) as e:
        e.delete(allowed_ids[:1])
        mask = e.mask_of(e.lookup(allowed_ids))  # the deleted one maps to -1
        res = e.search(q.codes, q.vectors, [e.categories] * len(q), k=K, allowed=mask)
        for row in res.item_ids:
            assert {x for x in row.tolist() if x is not None} == set(allowed_ids[1:])
        # A listing written live is found once the mask includes it (built after the write).
        src = world.catalog.subset(np.asarray([10]))
        new = EmbeddingSet(
            np.asarray(["live-1"], dtype=object), src.categories, src.codes, src.vectors, src.model
        )
        e.upsert(new)
        mask = e.mask_of(e.lookup(["live-1"]))
        res = e.search(new.codes, new.vectors, [e.categories], k=3, allowed=mask)
        assert res.item_ids[0].tolist() == ["live-1", None, None]
        # A mask made before the write (all allowed then) does not allow it: the search
        # finds the item it was copied from instead.
        old = np.ones(e.n_internal - 1, dtype=bool)
        res = e.search(new.codes, new.vectors, [e.categories], k=3, allowed=old)
        assert "live-1" not in res.item_ids[0].tolist()
        assert res.item_ids[0][0] == world.catalog.item_ids[10]


def test_bad_mask_is_a_value_error(indexes_dir: Path, world: SyntheticWorld) -> None:
    q = world.queries(1, seed=24)
    with (
        Engine.open_current(indexes_dir, writable=False) as e,
        pytest.raises(ValueError, match="bool mask"),
    ):
        e.search(q.codes, q.vectors, [e.categories], k=3, allowed=np.zeros(5, np.int64))

"""Products, look-alikes and seller counts: fine-grained identity exists and is consistent."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from vsearch.contracts import PRODUCTS_TRUTH, read_table
from vsearch.world.catalog import seller_counts
from vsearch.world.products import ATTRIBUTES, differing_attributes, make_products
from vsearch.world.shapes import CATEGORIES

pytestmark = pytest.mark.unit


def test_lookalike_groups_differ_in_exactly_one_attribute() -> None:
    products = make_products(400, CATEGORIES, 0.3, np.random.default_rng(0))
    groups: dict[str, list] = {}
    for cp in products:
        groups.setdefault(cp.lookalike_group, []).append(cp.product)
    multi = [g for g in groups.values() if len(g) > 1]
    assert multi, "look-alikes must exist"
    in_groups = sum(len(g) for g in multi)
    assert 0.25 <= in_groups / len(products) <= 0.35  # lookalike_fraction 0.3
    varied = set()
    for g in multi:
        for a, b in itertools.combinations(g, 2):
            diff = differing_attributes(a, b)
            assert len(diff) == 1 and diff[0] in ATTRIBUTES, diff
            varied.add(diff[0])
    assert len(varied) >= 4  # shape, logo, pattern and colours all make look-alikes
    assert len({cp.product for cp in products}) == len(products)  # no two SKUs look the same
    assert len({cp.sku for cp in products}) == len(products)
    assert {cp.product.category for cp in products} == set(CATEGORIES)


def test_no_lookalikes_when_fraction_is_zero() -> None:
    products = make_products(50, CATEGORIES[:3], 0.0, np.random.default_rng(1))
    assert len({cp.lookalike_group for cp in products}) == 50
    assert {cp.product.category for cp in products} <= set(CATEGORIES[:3])


def test_generated_truth_has_consistent_groups(small_world: tuple[Path, Path]) -> None:
    df = read_table(small_world[1], PRODUCTS_TRUTH)
    for _, g in df.groupby("lookalike_group"):
        assert g["category"].nunique() == 1
        attrs = [json.loads(a) for a in g["attributes"]]
        for a, b in itertools.combinations(attrs, 2):
            assert sum(a[k] != b[k] for k in ATTRIBUTES) == 1
    assert (df["lookalike_group"].value_counts() > 1).any()


@pytest.mark.parametrize(
    ("n", "lo", "hi"), [(3000, 1, 5), (12, 1, 5), (7, 2, 3), (10, 5, 5), (5, 2, 4), (1, 1, 1)]
)
def test_seller_counts_sum_exactly_within_bounds(n: int, lo: int, hi: int) -> None:
    for seed in range(5):
        counts = seller_counts(n, lo, hi, np.random.default_rng(seed))
        assert sum(counts) == n
        assert all(lo <= c <= hi for c in counts)


def test_seller_counts_refuse_impossible_splits() -> None:
    with pytest.raises(ValueError, match="minimum"):
        seller_counts(2, 3, 5, np.random.default_rng(0))
    with pytest.raises(ValueError, match="cannot be split"):
        seller_counts(7, 3, 3, np.random.default_rng(0))

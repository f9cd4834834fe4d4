"""The click model: a sane CTR, position bias, clicks mostly on the identical product."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vsearch.settings import WorldSettings
from vsearch.world.catalog import make_listings, make_sellers, product_popularity, seller_counts
from vsearch.world.clicks import ctr, simulate_impressions
from vsearch.world.products import make_products
from vsearch.world.shapes import CATEGORIES
from vsearch.world.traffic import plan_queries

pytestmark = pytest.mark.unit
WINDOW = (1_790_000_000_000_000, 1_792_592_000_000_000)  # 30 days, in microseconds


def _log(world: WorldSettings, n_items: int = 1500, n_queries: int = 1500, seed: int = 0):
    rng = np.random.default_rng(seed)
    counts = seller_counts(n_items, world.min_sellers, world.max_sellers, rng)
    products = make_products(len(counts), CATEGORIES, world.lookalike_fraction, rng)
    pop = product_popularity(len(products), world.query_popularity, rng)
    sellers = make_sellers(world.n_sellers, rng)
    listings = make_listings(products, counts, sellers, pop, WINDOW[0], rng)
    plan = plan_queries(
        n_queries, products, pop, CATEGORIES, WINDOW, world.distractor_prob, world.clicks, rng
    )
    imp = simulate_impressions(plan, listings, products, world.clicks, rng)
    return products, listings, plan, imp


def test_ctr_is_sane_and_position_biased(world_settings: WorldSettings) -> None:
    *_, plan, imp = _log(world_settings)
    assert 0.02 <= ctr(imp) <= 0.3
    by_pos = imp.groupby("position")["clicked"].mean()
    assert by_pos.iloc[0] > 3 * by_pos.iloc[5:].mean()
    assert (imp.groupby("query_id").size() == world_settings.clicks.list_length).mean() > 0.9
    assert imp["query_id"].nunique() == len(plan)
    switch = imp["click_order"].dropna()
    assert (switch == 0).sum() > (switch == 1).sum() > 0  # first clicks and switch clicks


def test_clicks_prefer_identical_then_lookalikes(world_settings: WorldSettings) -> None:
    products, listings, plan, imp = _log(world_settings)
    group = {cp.sku: cp.lookalike_group for cp in products}
    m = imp.merge(listings[["item_id", "sku"]], on="item_id").merge(
        plan[["query_id", "sku"]].rename(columns={"sku": "q_sku"}), on="query_id"
    )
    identical = m["sku"] == m["q_sku"]
    lookalike = ~identical & (m["sku"].map(group) == m["q_sku"].map(group))
    rate = lambda sel: m.loc[sel, "clicked"].mean()  # noqa: E731
    assert rate(identical) > rate(lookalike) > rate(~identical & ~lookalike)
    assert m.loc[m["clicked"], "sku"].eq(m.loc[m["clicked"], "q_sku"]).mean() > 0.5
    # the true item is sometimes absent from the list (p_true_absent, wrong category)
    shown_true = m.groupby("query_id").apply(lambda g: (g["sku"] == g["q_sku"]).any())
    assert 0.5 < shown_true.mean() < 0.95


def test_switching_off_clicks_gives_no_clicks(world_settings: WorldSettings) -> None:
    clicks = world_settings.clicks.model_copy(
        update={
            "p_click_identical": 0.0,
            "p_click_lookalike": 0.0,
            "p_click_same_category": 0.0,
            "p_click_noise": 0.0,
        }
    )
    quiet = world_settings.model_copy(update={"clicks": clicks})
    *_, imp = _log(quiet, n_items=200, n_queries=50)
    assert not imp["clicked"].any() and imp["click_order"].isna().all()


def test_queries_are_in_time_order_within_the_window(world_settings: WorldSettings) -> None:
    _, _, plan, imp = _log(world_settings, n_items=200, n_queries=300)
    assert plan["ts_us"].is_monotonic_increasing
    assert plan["ts_us"].between(*WINDOW).all()
    assert plan["query_id"].is_unique and imp["event_id"].is_unique
    # sessions: one user each, consecutive queries
    assert (plan.groupby("session_id")["user_id"].nunique() == 1).all()
    assert isinstance(plan, pd.DataFrame) and plan["session_id"].nunique() < len(plan)

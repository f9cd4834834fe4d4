"""The click log: a weak search engine shows ranked lists, biased shoppers click.

Why simulate it this way: the paper learns identity from clicks alone, and clicks are a noisy,
biased signal. The engine here ranks by a crude attribute/colour similarity plus noise (like a
pre-deep-learning system), searches only the category it predicted (or the one the user picked)
and sometimes does not even have the true item in its list. Shoppers examine position ``i``
with probability ``1 / (1 + i) ** position_bias``, click the identical product with high
probability, a look-alike sometimes, a same-category item rarely, anything else very rarely,
and after a click keep browsing ("switch clicks") with probability ``p_switch``. Mining must
cope with exactly these biases.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from vsearch.settings import ClickModelSettings
from vsearch.world.products import ATTRIBUTES, CatalogProduct

# The weak engine's idea of similarity: colour first, then shape, pattern and logo.
ENGINE_WEIGHTS: dict[str, float] = {
    "body": 1.0,
    "variant": 0.5,
    "pattern": 0.4,
    "accent": 0.4,
    "logo": 0.15,
}
ENGINE_QUALITY_WEIGHT = 0.3  # engines favour good listings a little
LATENCY_MS = (120.0, 1500.0)  # results are shown this long after the query is logged
DWELL_FACTOR = (1.6, 1.0, 0.5, 0.3)  # dwell by relation: identical, look-alike, category, other
IDENTICAL, LOOKALIKE, SAME_CATEGORY, OTHER = range(4)
US_PER_MS = 1_000
COLUMNS = ("query_id", "session_id", "item_id", "position", "clicked", "click_order",
           "dwell_ms", "ts_us")  # fmt: skip


@dataclass(frozen=True)
class _Shop:
    """The catalog as arrays the engine and the shoppers look things up in."""

    sku_index: dict[str, int]  # sku -> product row
    codes: np.ndarray  # [products, attributes] integer attribute codes
    group: np.ndarray  # [products] look-alike group code
    item_prod: np.ndarray  # [listings] product row
    item_cat: np.ndarray  # [listings] category
    item_quality: np.ndarray  # [listings] 0..1
    item_ids: np.ndarray  # [listings] item_id
    by_category: dict[str, np.ndarray]  # category -> listing rows


def _shop(products: list[CatalogProduct], listings: pd.DataFrame) -> _Shop:
    index = {cp.sku: i for i, cp in enumerate(products)}
    codes = np.zeros((len(products), len(ATTRIBUTES)), dtype=np.int64)
    for j, name in enumerate(ATTRIBUTES):
        values: dict[object, int] = {}
        for i, cp in enumerate(products):
            codes[i, j] = values.setdefault(getattr(cp.product, name), len(values))
    groups: dict[str, int] = {}
    group = np.array([groups.setdefault(cp.lookalike_group, len(groups)) for cp in products])
    item_cat = listings["category"].to_numpy()
    return _Shop(
        sku_index=index,
        codes=codes,
        group=group,
        item_prod=listings["sku"].map(index).to_numpy(),
        item_cat=item_cat,
        item_quality=listings["quality"].to_numpy(dtype=np.float64),
        item_ids=listings["item_id"].to_numpy(),
        by_category={c: np.flatnonzero(item_cat == c) for c in np.unique(item_cat)},
    )


def _ranked_list(
    shop: _Shop, product: int, category: str, cfg: ClickModelSettings, rng: np.random.Generator
) -> np.ndarray:
    """The weak engine's top ``list_length`` listings of ``category`` for a photo of ``product``.

    Score: weighted attribute matches with the photographed product, a little listing quality,
    plus noise. With probability ``p_true_absent`` the product's own listings are missing.
    """
    cand = shop.by_category.get(category, np.empty(0, dtype=np.int64))
    if rng.random() < cfg.p_true_absent:
        cand = cand[shop.item_prod[cand] != product]
    weights = np.array([ENGINE_WEIGHTS[a] for a in ATTRIBUTES])
    score = (shop.codes[shop.item_prod[cand]] == shop.codes[product]) @ weights
    score = score + ENGINE_QUALITY_WEIGHT * shop.item_quality[cand]
    score = score + cfg.baseline_noise * rng.standard_normal(len(cand))
    return cand[np.argsort(-score, kind="stable")[: cfg.list_length]]


def _relations(shop: _Shop, shown: np.ndarray, product: int, category: str) -> np.ndarray:
    """What each shown listing is to the photographed product (IDENTICAL ... OTHER)."""
    relation = np.full(len(shown), OTHER)
    relation[shop.item_cat[shown] == category] = SAME_CATEGORY
    relation[shop.group[shop.item_prod[shown]] == shop.group[product]] = LOOKALIKE
    relation[shop.item_prod[shown] == product] = IDENTICAL
    return relation


def simulate_impressions(
    queries: pd.DataFrame,
    listings: pd.DataFrame,
    products: list[CatalogProduct],
    cfg: ClickModelSettings,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """One row per shown result of every query.

    Args:
        queries: the plan (query_id, session_id, ts_us, sku, category, predicted_category,
            selected_category).
        listings: the catalog (item_id, sku, category, quality).
        products: all products (attributes and look-alike groups).
        cfg: engine and shopper behaviour.
        rng: the click log's generator.

    Returns:
        Columns event_id, query_id, session_id, item_id, position, clicked, click_order
        (nullable Int64), dwell_ms (nullable Int64), ts_us.
    """
    shop = _shop(products, listings)
    p_click = np.array(
        [cfg.p_click_identical, cfg.p_click_lookalike, cfg.p_click_same_category, cfg.p_click_noise]
    )
    dwell_mean = cfg.dwell_ms_mean * np.array(DWELL_FACTOR)
    examine = 1.0 / (1.0 + np.arange(cfg.list_length)) ** cfg.position_bias
    cols: dict[str, list] = {k: [] for k in COLUMNS}
    for q in queries.itertuples(index=False):
        # the engine searches the category the user picked, else the one it predicted
        picked = q.selected_category if isinstance(q.selected_category, str) else None
        product = shop.sku_index[q.sku]
        shown = _ranked_list(shop, product, picked or q.predicted_category, cfg, rng)
        relation = _relations(shop, shown, product, q.category)
        looked = rng.random(len(shown)) < examine[: len(shown)]
        wants = rng.random(len(shown)) < p_click[relation]
        stays = rng.random(len(shown)) < cfg.p_switch
        ts = q.ts_us + int(rng.uniform(*LATENCY_MS) * US_PER_MS)
        order = 0  # next click's order; -1 once the shopper has left
        for pos, item in enumerate(shown):
            clicked = bool(order >= 0 and looked[pos] and wants[pos])
            dwell = round(rng.exponential(dwell_mean[relation[pos]])) if clicked else None
            cols["query_id"].append(q.query_id)
            cols["session_id"].append(q.session_id)
            cols["item_id"].append(shop.item_ids[item])
            cols["position"].append(pos)
            cols["clicked"].append(clicked)
            cols["click_order"].append(order if clicked else None)
            cols["dwell_ms"].append(max(1, dwell) if clicked else None)
            cols["ts_us"].append(ts)
            if clicked:
                order = order + 1 if stays[pos] else -1
    df = pd.DataFrame(cols)
    df["click_order"] = df["click_order"].astype("Int64")
    df["dwell_ms"] = df["dwell_ms"].astype("Int64")
    df.insert(0, "event_id", [f"ev-{i:08d}" for i in range(len(df))])
    return df


def ctr(impressions: pd.DataFrame) -> float:
    """Clicks per impression."""
    return float(impressions["clicked"].mean()) if len(impressions) else 0.0

"""A small click-log simulator shaped like the demo world, for mining tests with known answers.

Why our own simulator instead of ``vsearch world``: the demo world renders images and takes
seconds to minutes; mining only needs the *log*, and the tests need to turn single knobs
(ranking, position bias, look-alike click rate) to show what each correction does. The click
model follows the demo world's: a weak ranker (base score by relation plus Gaussian noise)
shows ``list_length`` results (the identical product's listings, look-alikes, same-category
items); a shopper examines position ``p`` with
probability ``1 / (1 + p) ** position_bias``, clicks identical listings, look-alikes, same-category
and other items with decreasing probabilities, and keeps browsing after a click with
probability ``p_switch`` (later clicks are switch clicks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

# Ranker base scores before noise: identical > look-alike > same category > other category.
_SCORE = {"identical": 1.0, "lookalike": 0.8, "same_category": 0.4, "other": 0.0}
# Queries scored per batch (bounds memory: batch x catalog scores).
_CHUNK = 2000
# Mean dwell of a click by relation, as a multiple of dwell_ms_mean (as in the demo world):
# shoppers stay longer on the product they were looking for.
_DWELL_FACTOR = np.array([1.6, 1.0, 0.5, 0.3])


@dataclass
class ClickWorld:
    """Knobs of the simulated shop and shoppers (defaults mirror ``world.clicks`` in params)."""

    n_products: int = 300
    min_sellers: int = 1
    max_sellers: int = 5
    categories: int = 6
    lookalike_fraction: float = 0.3
    queries_per_product: float = 6.0
    queries_per_session: int = 3
    list_length: int = 20
    p_true_absent: float = 0.15
    p_click_identical: float = 0.85
    p_click_lookalike: float = 0.25
    p_click_same_category: float = 0.04
    p_click_noise: float = 0.01
    position_bias: float = 0.7
    p_switch: float = 0.35
    dwell_ms_mean: float = 9000.0
    with_dwell: bool = True
    ranker_noise: float = 0.3
    random_ranking: bool = False
    seed: int = 0


@dataclass
class ClickLog:
    """A simulated log and its ground truth (truth is for assertions only)."""

    impressions: pd.DataFrame
    item_truth: pd.DataFrame
    query_truth: pd.DataFrame

    def examination(self, positions: np.ndarray, bias: float) -> np.ndarray:
        """The true examination curve the simulator used."""
        return 1.0 / (1.0 + positions) ** bias


def _catalog(w: ClickWorld, rng: np.random.Generator) -> tuple[pd.DataFrame, dict[int, int]]:
    """Products with 1..max sellers each, a category, and look-alike partners (pairs)."""
    rows = []
    for p in range(w.n_products):
        for s in range(int(rng.integers(w.min_sellers, w.max_sellers + 1))):
            rows.append({"item_id": f"i{p:04d}_{s}", "sku": f"p{p:04d}", "product": p})
    items = pd.DataFrame(rows)
    category = rng.integers(0, w.categories, w.n_products)
    items["category"] = category[items["product"].to_numpy()]
    # look-alikes: pair up a fraction of products within a category
    lookalike: dict[int, int] = {}
    for c in range(w.categories):
        prods = rng.permutation(np.flatnonzero(category == c))
        n_pairs = int(len(prods) * w.lookalike_fraction / 2)
        for a, b in zip(prods[: 2 * n_pairs : 2], prods[1 : 2 * n_pairs : 2], strict=True):
            lookalike[int(a)], lookalike[int(b)] = int(b), int(a)
    return items, lookalike


def simulate_click_log(w: ClickWorld | None = None, **overrides: object) -> ClickLog:
    """Simulate impressions (contract columns) with position bias, look-alikes and switch clicks.

    Vectorised over queries (one pass per list position), so tens of thousands of queries take
    about a second.
    """
    w = w or ClickWorld()
    for k, v in overrides.items():
        setattr(w, k, v)
    rng = np.random.default_rng(w.seed)
    items, lookalike = _catalog(w, rng)
    item_product = items["product"].to_numpy()
    item_cat = items["category"].to_numpy()
    n_items = len(items)
    n_queries = round(w.n_products * w.queries_per_product)
    length = min(w.list_length, n_items)
    query_product = rng.integers(0, w.n_products, n_queries)
    partner = np.array([lookalike.get(p, -1) for p in range(w.n_products)])
    product_cat = np.zeros(w.n_products, dtype=int)
    product_cat[item_product] = item_cat
    relation = np.array(["identical", "lookalike", "same_category", "other"])
    base = np.array([_SCORE[r] for r in relation])
    click_p = np.array(
        [w.p_click_identical, w.p_click_lookalike, w.p_click_same_category, w.p_click_noise]
    )
    shown = np.empty((n_queries, length), dtype=int)
    rel_shown = np.empty((n_queries, length), dtype=int)
    for lo in range(0, n_queries, _CHUNK):
        qp = query_product[lo : lo + _CHUNK]
        rel = np.full((len(qp), n_items), 3)
        rel[item_cat[None, :] == product_cat[qp][:, None]] = 2
        rel[item_product[None, :] == partner[qp][:, None]] = 1
        rel[item_product[None, :] == qp[:, None]] = 0
        if w.random_ranking:
            score = rng.random(rel.shape)
        else:
            score = base[rel] + rng.normal(0.0, w.ranker_noise, rel.shape)
        absent = rng.random(len(qp)) < w.p_true_absent
        score[absent[:, None] & (rel == 0)] = -np.inf
        top = np.argsort(-score, axis=1)[:, :length]
        shown[lo : lo + _CHUNK] = top
        rel_shown[lo : lo + _CHUNK] = np.take_along_axis(rel, top, axis=1)
    # shoppers scan top-down: examine with the position bias, click by relation, and after a
    # click keep browsing with probability p_switch
    clicked = np.zeros((n_queries, length), dtype=bool)
    order = np.full((n_queries, length), -1)
    browsing = np.ones(n_queries, dtype=bool)
    n_clicks = np.zeros(n_queries, dtype=int)
    for pos in range(length):
        examined = rng.random(n_queries) < 1.0 / (1.0 + pos) ** w.position_bias
        hit = browsing & examined & (rng.random(n_queries) < click_p[rel_shown[:, pos]])
        clicked[:, pos] = hit
        order[hit, pos] = n_clicks[hit]
        n_clicks += hit
        browsing &= ~hit | (rng.random(n_queries) < w.p_switch)
    dwell = rng.exponential(w.dwell_ms_mean * _DWELL_FACTOR[rel_shown]).round().astype(int) + 1
    dwell_ms = np.where(clicked & w.with_dwell, dwell, -1).ravel()
    qids = np.array([f"q{q:06d}" for q in range(n_queries)])
    q_idx = np.repeat(np.arange(n_queries), length)
    pos_idx = np.tile(np.arange(length), n_queries)
    t0 = pd.Timestamp("2026-10-01T00:00:00Z")
    imp = pd.DataFrame(
        {
            "event_id": [f"e{q}_{p}" for q, p in zip(q_idx, pos_idx, strict=True)],
            "query_id": qids[q_idx],
            "session_id": [f"s{q // w.queries_per_session:06d}" for q in q_idx],
            "item_id": items["item_id"].to_numpy()[shown.ravel()],
            "position": pos_idx.astype("int64"),
            "clicked": clicked.ravel(),
            "click_order": pd.array(np.where(clicked, order, -1).ravel(), dtype="Int64"),
            "dwell_ms": pd.array(dwell_ms, dtype="Int64"),
            "ts": t0 + pd.to_timedelta(q_idx * 60 + pos_idx, unit="s"),
        }
    )
    imp.loc[~imp["clicked"], "click_order"] = pd.NA
    imp.loc[imp["dwell_ms"] < 0, "dwell_ms"] = pd.NA
    skus = np.array([f"p{p:04d}" for p in range(w.n_products)])
    query_truth = pd.DataFrame({"query_id": qids, "sku": skus[query_product]})
    return ClickLog(imp, items[["item_id", "sku"]].copy(), query_truth)


@pytest.fixture(scope="session")
def simulate() -> Callable[..., ClickLog]:
    """``simulate(**knobs)``: a fresh simulated click log (see :class:`ClickWorld`)."""
    return simulate_click_log


@pytest.fixture(scope="session")
def demo_like_log() -> ClickLog:
    """One demo-world-like log shared by the slower end-to-end mining tests (seeded)."""
    return simulate_click_log(ClickWorld(seed=11))


Row = tuple[str, str, str, int, bool, int | None] | tuple[str, str, str, int, bool, int | None, int]


def hand_log(rows: list[Row]) -> pd.DataFrame:
    """Impressions from ``(query, session, item, position, clicked, click_order[, dwell_ms])``."""
    full = [(*r, None) if len(r) == 6 else r for r in rows]
    t0 = pd.Timestamp("2026-10-01T00:00:00Z")
    return pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(len(full))],
            "query_id": [r[0] for r in full],
            "session_id": [r[1] for r in full],
            "item_id": [r[2] for r in full],
            "position": pd.array([r[3] for r in full], dtype="int64"),
            "clicked": [r[4] for r in full],
            "click_order": pd.array([r[5] for r in full], dtype="Int64"),
            "dwell_ms": pd.array([r[6] for r in full], dtype="Int64"),
            "ts": [t0 + pd.Timedelta(seconds=i) for i in range(len(full))],
        }
    )


def clicks_log(
    groups: dict[str, list[str]], session_of: dict[str, str] | None = None
) -> pd.DataFrame:
    """A log where each query shows and clicks exactly the listed items, in order."""
    rows: list[Row] = []
    for q, items in groups.items():
        session = (session_of or {}).get(q, f"s_{q}")
        rows.extend((q, session, item, pos, True, pos) for pos, item in enumerate(items))
    return hand_log(rows)


@pytest.fixture(scope="session")
def make_log() -> Callable[[list[Row]], pd.DataFrame]:
    """``make_log(rows)``: impressions from hand-written rows (see :func:`hand_log`)."""
    return hand_log


@pytest.fixture(scope="session")
def make_clicks() -> Callable[..., pd.DataFrame]:
    """``make_clicks({query: [clicked items]})``: a log of clicks only (for graph tests)."""
    return clicks_log

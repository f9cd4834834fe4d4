"""Click logs for the mining tests: the demo world's own click model, and hand-written logs.

Why the world's click model (:mod:`vsearch.world.clicks`) and not a simulator of our own:
mining has to cope with exactly the biases of the logs it is given, and one click model keeps
the tests and the demo world honest with each other. Products, listings and queries are drawn
the way ``vsearch world`` draws them, but without images (``plan_world``), so a log of tens of
thousands of queries takes about a second; the tests turn single knobs of ``world.clicks``
(position bias, switch clicks, click rates, a random ranking) to show what each correction does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import pytest

_RANDOM_RANKING_NOISE = 1e9  # engine score noise that makes the result order random
_US_PER_DAY = 86_400 * 1_000_000


@dataclass
class ClickLog:
    """A click log and its ground truth (truth is for assertions only)."""

    impressions: pd.DataFrame
    item_truth: pd.DataFrame
    query_truth: pd.DataFrame


def world_click_log(
    n_products: int = 300,
    queries_per_product: float = 6.0,
    *,
    seed: int = 0,
    categories: int = 6,
    random_ranking: bool = False,
    **clicks: object,
) -> ClickLog:
    """A click log from the demo world's own click model (:mod:`vsearch.world.clicks`).

    Products, listings and queries are drawn as ``vsearch world`` draws them, without images
    (:func:`vsearch.world.generate.plan_world`); shoppers photograph products uniformly, and
    ``clicks`` overrides the click model's settings (``world.clicks``). ``random_ranking``
    drowns the engine's scores in noise, so results come in random order.
    """
    from vsearch.settings import ClickModelSettings, WorldSettings
    from vsearch.world.generate import plan_world

    if random_ranking:
        clicks["baseline_noise"] = _RANDOM_RANKING_NOISE
    world = WorldSettings(
        categories=categories,
        query_popularity=0.0,
        clicks=ClickModelSettings(**clicks),
    )
    start_us = pd.Timestamp(world.start).value // 1_000
    window = (start_us, start_us + world.days * _US_PER_DAY)
    n_items = round(n_products * (world.min_sellers + world.max_sellers) / 2)
    plan = plan_world(world, seed, n_items, round(n_products * queries_per_product), window)
    imp = plan.impressions.copy()
    imp["ts"] = pd.to_datetime(imp.pop("ts_us"), unit="us", utc=True)
    return ClickLog(
        imp,
        plan.listings[["item_id", "sku"]].reset_index(drop=True),
        plan.queries[["query_id", "sku"]].reset_index(drop=True),
    )


@pytest.fixture(scope="session")
def simulate() -> Callable[..., ClickLog]:
    """``simulate(n_products, queries_per_product, seed=, **knobs)``: a world click log."""
    return world_click_log


@pytest.fixture(scope="session")
def demo_like_log() -> ClickLog:
    """One demo-world log shared by the slower end-to-end mining tests (seeded)."""
    return world_click_log(seed=11)


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

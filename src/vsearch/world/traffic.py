"""Who searched for what, and when: the plan of the query log.

Why a plan apart from the clicks: the query rows (user, session, time, what the engine predicted)
and the photographed product are decided here; the renderer turns the plan into photos and the
click model into impressions. Shoppers photograph popular products more often (Zipf demand),
come back in sessions of a few searches, and the engine's category prediction is right most of
the time but not always (a wrong category hides the true item: the paper's first failure mode).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vsearch.settings import ClickModelSettings
from vsearch.world.catalog import US_PER_S
from vsearch.world.products import CatalogProduct

USERS_PER_QUERY = 0.4  # distinct users per query issued (most users search a few times)
USER_ZIPF = 0.8  # some users search much more than others
SESSION_EXTRA_QUERIES = 0.6  # mean extra queries per session beyond the first (geometric)
SESSION_GAP_S = (20.0, 240.0)  # seconds between searches in one session
SESSION_MAX_SPAN_S = 3_600  # sessions start early enough to end inside the window


def plan_queries(
    n_queries: int,
    products: list[CatalogProduct],
    popularity: np.ndarray,
    categories: tuple[str, ...],
    window_us: tuple[int, int],
    distractor_prob: float,
    clicks: ClickModelSettings,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """One row per query, in time order.

    Columns: query_id, user_id, session_id, ts_us, sku, category (true), predicted_category,
    selected_category (None unless the user picked one), distractor_sku (None or a second
    product in the photo).
    """
    start, end = window_us
    n_users = max(1, round(n_queries * USERS_PER_QUERY))
    user_w = 1.0 / np.arange(1, n_users + 1) ** USER_ZIPF
    user_w = user_w[rng.permutation(n_users)] / user_w.sum()

    sessions: list[tuple[int, int]] = []  # (ts_us, session number) per query
    users: list[int] = []
    latest_start = max(start, end - SESSION_MAX_SPAN_S * US_PER_S)
    n_sessions = 0
    while len(sessions) < n_queries:
        user = int(rng.choice(n_users, p=user_w))
        t = int(rng.integers(start, latest_start, endpoint=True))
        length = int(rng.geometric(1 / (1 + SESSION_EXTRA_QUERIES)))  # >= 1
        for _ in range(min(length, n_queries - len(sessions))):
            sessions.append((t, n_sessions))
            users.append(user)
            t += int(rng.uniform(*SESSION_GAP_S) * US_PER_S)
        n_sessions += 1

    order = sorted(range(n_queries), key=lambda i: (sessions[i][0], i))
    session_ids: dict[int, str] = {}
    for i in order:  # number sessions by first appearance, so ids follow time too
        session_ids.setdefault(sessions[i][1], f"sess-{len(session_ids):06d}")

    sku_idx = rng.choice(len(products), size=n_queries, p=popularity)
    rows = []
    for q, i in enumerate(order):
        cp = products[int(sku_idx[q])]
        true_cat = cp.product.category
        predicted = true_cat
        if len(categories) > 1 and rng.random() >= clicks.p_category_correct:
            others = [c for c in categories if c != true_cat]
            predicted = others[int(rng.integers(len(others)))]
        selected = true_cat if rng.random() < clicks.p_category_selected else None
        distractor = None
        if len(products) > 1 and rng.random() < distractor_prob:
            d = int(rng.integers(len(products) - 1))
            distractor = products[d + (d >= int(sku_idx[q]))].sku
        rows.append(
            {
                "query_id": f"q-{q:06d}",
                "user_id": f"user-{users[i]:05d}",
                "session_id": session_ids[sessions[i][1]],
                "ts_us": min(sessions[i][0], end),
                "sku": cp.sku,
                "category": true_cat,
                "predicted_category": predicted,
                "selected_category": selected,
                "distractor_sku": distractor,
            }
        )
    return pd.DataFrame(rows)

"""Propensities: exact on hand-made counts, monotone, clipped, and recovered from simulated logs."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from vsearch.mining.propensity import click_rates_by_position, estimate_propensity, propensity_at
from vsearch.settings import MiningSettings

pytestmark = pytest.mark.unit

BIAS = 0.7  # the simulated examination curve is 1 / (1 + p) ** BIAS


def _counts_log(make_log: Callable, shown_clicks: list[tuple[int, int]]) -> pd.DataFrame:
    """One row per impression: at position p, ``shown`` impressions of which ``clicks`` clicked."""
    rows = []
    for pos, (shown, clicks) in enumerate(shown_clicks):
        for i in range(shown):
            clicked = i < clicks
            rows.append((f"q{i}", "s", f"i{pos}", pos, clicked, 0 if clicked else None))
    return make_log(rows)


def test_ctr_ratio_is_click_rate_relative_to_top(make_log: Callable) -> None:
    log = _counts_log(make_log, [(10, 5), (10, 2), (10, 1)])
    s = MiningSettings(propensity_max_position=2, propensity_floor=0.1)
    p = estimate_propensity(log, s)
    assert list(p.index) == [0, 1, 2]
    np.testing.assert_allclose(p.to_numpy(), [1.0, 0.4, 0.2])


def test_non_monotone_positions_are_pooled(make_log: Callable) -> None:
    # position 2 clicked more than position 1 (noise): isotonic fit pools them, 4/20 = 0.2
    log = _counts_log(make_log, [(10, 5), (10, 1), (10, 3)])
    p = estimate_propensity(log, MiningSettings(propensity_max_position=2, propensity_floor=0.1))
    np.testing.assert_allclose(p.to_numpy(), [1.0, 0.4, 0.4])


def test_floor_clips_and_deep_positions_share_the_last_bucket(make_log: Callable) -> None:
    log = _counts_log(make_log, [(10, 5), (10, 1), (10, 0), (10, 0), (10, 1)])
    s = MiningSettings(propensity_max_position=3, propensity_floor=0.1)
    rates = click_rates_by_position(log, 3)
    assert rates.loc[3, "impressions"] == 20 and rates.loc[3, "clicks"] == 1  # 3 and 4 pooled
    p = estimate_propensity(log, s)
    assert p.min() == pytest.approx(0.1)  # 0.0 at position 2 is clipped to the floor
    assert p.is_monotonic_decreasing
    # look-ups past the table use its last value
    np.testing.assert_allclose(
        propensity_at(np.array([0, 3, 50]), p), [1.0, p.iloc[-1], p.iloc[-1]]
    )


def test_no_clicks_means_no_correction(make_log: Callable) -> None:
    log = _counts_log(make_log, [(5, 0), (5, 0)])
    p = estimate_propensity(log, MiningSettings(propensity_max_position=1))
    np.testing.assert_allclose(p.to_numpy(), [1.0, 1.0])


def test_propensity_at_accepts_a_sparse_series() -> None:
    p = pd.Series({0: 1.0, 2: 0.5})
    np.testing.assert_allclose(propensity_at([0, 1, 2, 3], p), [1.0, 1.0, 0.5, 0.5])
    with pytest.raises(ValueError, match="empty"):
        propensity_at([0], pd.Series(dtype=float))


def test_ctr_ratio_recovers_the_curve_when_ranking_is_random(simulate: Callable) -> None:
    """With results in random order, relevance does not depend on position: exact recovery."""
    log = simulate(
        n_products=100,
        queries_per_product=60,
        random_ranking=True,
        p_switch=1.0,  # no stopping after a click, so examination is the pure position curve
        p_click_same_category=0.3,
        p_click_noise=0.3,
        position_bias=BIAS,
        seed=5,
    )
    s = MiningSettings(propensity_max_position=15, propensity_floor=0.01)
    p = estimate_propensity(log.impressions, s)
    true = 1.0 / (1.0 + np.arange(16)) ** BIAS
    np.testing.assert_allclose(p.to_numpy(), true, atol=0.04)


def test_informative_ranking_makes_ctr_ratio_steeper(simulate: Callable) -> None:
    """Known limitation, documented: relevant items sit on top, so the curve drops too fast."""
    log = simulate(n_products=150, queries_per_product=20, seed=6)
    p = estimate_propensity(log.impressions, MiningSettings(propensity_floor=0.01))
    true = 1.0 / (1.0 + np.arange(len(p))) ** BIAS
    assert p.iloc[1] < true[1] - 0.1
    assert (p.to_numpy() <= true + 1e-9).all()


def _popularity_confounded_log(seed: int = 0) -> pd.DataFrame:
    """Items with their own attractiveness; the ranker shows attractive items first.

    Clicks follow the position-based model ``P(click) = theta[pos] * gamma[item]``, so the click
    rate at the top mixes position and attractiveness: ``ctr_ratio`` is confounded, while EM
    can separate them because each item appears at many positions across queries.
    """
    rng = np.random.default_rng(seed)
    n_items, n_queries, length = 200, 6000, 10
    gamma = rng.uniform(0.05, 0.9, n_items)
    theta = 1.0 / (1.0 + np.arange(length)) ** BIAS
    rows = []
    for q in range(n_queries):
        cand = rng.choice(n_items, 2 * length, replace=False)
        order = cand[np.argsort(-(gamma[cand] + rng.normal(0, 0.1, len(cand))))][:length]
        clicks = rng.random(length) < theta * gamma[order]
        for pos, (item, c) in enumerate(zip(order, clicks, strict=True)):
            rows.append((f"q{q}", f"s{q}", f"i{item}", pos, bool(c)))
    df = pd.DataFrame(rows, columns=["query_id", "session_id", "item_id", "position", "clicked"])
    df["click_order"] = pd.array(np.where(df["clicked"], 0, -1), dtype="Int64")
    df.loc[~df["clicked"], "click_order"] = pd.NA
    return df


def test_pbm_em_removes_item_popularity_confounding() -> None:
    log = _popularity_confounded_log()
    true = 1.0 / (1.0 + np.arange(10)) ** BIAS
    base = {"propensity_max_position": 9, "propensity_floor": 0.01}
    em = estimate_propensity(log, MiningSettings(propensity_method="pbm_em", **base))
    ratio = estimate_propensity(log, MiningSettings(propensity_method="ctr_ratio", **base))
    em_err = np.abs(em.to_numpy() - true).max()
    ratio_err = np.abs(ratio.to_numpy() - true).max()
    assert em_err < 0.04
    assert ratio_err > 3 * em_err

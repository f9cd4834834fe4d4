"""Position-bias propensities estimated from the click log itself.

Why: a click at position 0 says less about relevance than a click at position 15, because
almost everyone looks at the top result and few scroll to the 16th. Weighting a click by the
inverse of the probability that its position was examined (inverse propensity weighting) makes
the positives an unbiased sample of what shoppers would click if they looked at everything.

Two estimators, both returning ``theta[p] = P(examined at p) / P(examined at 0)``:

* ``ctr_ratio`` (default): click rate per position divided by the click rate at position 0,
  made non-increasing by weighted isotonic regression (noisy deep positions are pooled with
  their neighbours instead of producing a spike). It is exact when relevance does not depend on
  position (randomised results); with an informative ranker the top holds more relevant items,
  so the curve comes out *steeper* than the true one: positives deep in the list are
  over-weighted. The floor clip bounds that error and the report shows the curve.
* ``pbm_em``: the position-based click model ``P(click) = theta[position] * gamma[item]``
  fitted by EM (Chuklin et al., *Click Models for Web Search*), which removes the part of the
  confounding that comes from some items being both popular and ranked high. It cannot remove
  query-specific relevance (each query is a new photo, so (query, item) pairs are not repeated),
  so on the demo world it is not better than ``ctr_ratio``; use it on logs where the same items
  reappear at many positions.

Propensities are clipped to ``[propensity_floor, 1]`` so that no single click can weigh more
than ``1 / propensity_floor`` (the usual variance guard for IPW).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression

from vsearch.mining._frames import check_impressions
from vsearch.settings import MiningSettings

log = logging.getLogger(__name__)

PROPENSITY = "propensity"
# EM starts from the click-rate curve kept strictly inside (0, 1) (EM cannot leave 0 or 1) and
# from an uninformative attractiveness for every item.
_EM_START_CLIP = (0.01, 0.99)
_EM_START_ATTRACTIVENESS = 0.5


def click_rates_by_position(impressions: pd.DataFrame, max_position: int) -> pd.DataFrame:
    """Impressions, clicks and click rate per position bucket (deeper ones share the last).

    Returns:
        A frame indexed by position ``0..max_position`` with ``impressions``, ``clicks``, ``ctr``;
        buckets never shown have zero impressions and a NaN rate.
    """
    df = check_impressions(impressions)
    bucket = df["position"].clip(upper=max_position)
    grouped = df.groupby(bucket)["clicked"].agg(["size", "sum"])
    out = pd.DataFrame(index=pd.RangeIndex(max_position + 1, name="position"))
    out["impressions"] = grouped["size"].reindex(out.index, fill_value=0).astype("int64")
    out["clicks"] = grouped["sum"].reindex(out.index, fill_value=0).astype("int64")
    out["ctr"] = out["clicks"] / out["impressions"].where(out["impressions"] > 0)
    return out


def _monotone_normalised(
    values: np.ndarray, weights: np.ndarray, floor: float, index: pd.Index
) -> pd.Series:
    """Weighted isotonic (non-increasing) fit, divided by position 0, clipped to [floor, 1]."""
    shown = weights > 0
    theta = np.ones(len(index))
    if shown.any() and values[shown].max() > 0:
        iso = IsotonicRegression(increasing=False, out_of_bounds="clip")
        x = np.asarray(index, dtype=float)
        iso.fit(x[shown], values[shown], sample_weight=weights[shown])
        fitted = iso.predict(x)
        top = fitted[0]
        theta = fitted / top if top > 0 else theta
    else:
        log.warning("no clicks in the log: assuming no position bias (all propensities 1)")
    return pd.Series(np.clip(theta, floor, 1.0), index=index, name=PROPENSITY)


def _ctr_ratio(impressions: pd.DataFrame, settings: MiningSettings) -> pd.Series:
    rates = click_rates_by_position(impressions, settings.propensity_max_position)
    values = rates["ctr"].fillna(0.0).to_numpy()
    return _monotone_normalised(
        values, rates["impressions"].to_numpy(float), settings.propensity_floor, rates.index
    )


def _pbm_em(impressions: pd.DataFrame, settings: MiningSettings) -> pd.Series:
    """EM for ``P(click) = theta[k] * gamma[item]`` (examination x attractiveness)."""
    df = check_impressions(impressions)
    n_pos = settings.propensity_max_position + 1
    k = df["position"].clip(upper=settings.propensity_max_position).to_numpy()
    d, _ = pd.factorize(df["item_id"])
    c = df["clicked"].to_numpy(float)
    n_k = np.bincount(k, minlength=n_pos).astype(float)
    n_d = np.bincount(d).astype(float)
    ctr = np.bincount(k, weights=c, minlength=n_pos) / np.maximum(n_k, 1.0)
    theta = np.clip(ctr / max(ctr.max(), np.finfo(float).tiny), *_EM_START_CLIP)
    gamma = np.full(len(n_d), _EM_START_ATTRACTIVENESS)
    for it in range(settings.em_iterations):
        t, g = theta[k], gamma[d]
        denom = np.maximum(1.0 - t * g, np.finfo(float).eps)
        seen_not_attractive = t * (1.0 - g) / denom  # P(E=1, R=0 | no click)
        attractive_not_seen = (1.0 - t) * g / denom  # P(E=0, R=1 | no click)
        new_theta = np.bincount(k, weights=c + (1 - c) * seen_not_attractive, minlength=n_pos)
        new_theta = new_theta / np.maximum(n_k, 1.0)
        gamma = np.bincount(d, weights=c + (1 - c) * attractive_not_seen) / n_d
        shift = np.max(np.abs(new_theta - theta)[n_k > 0], initial=0.0)
        theta = new_theta
        if shift < settings.em_tolerance:
            log.debug("pbm_em converged after %d iterations", it + 1)
            break
    index = pd.RangeIndex(n_pos, name="position")
    return _monotone_normalised(theta, n_k, settings.propensity_floor, index)


def estimate_propensity(impressions: pd.DataFrame, settings: MiningSettings) -> pd.Series:
    """Relative examination probability per position, estimated from the log.

    Args:
        impressions: the impressions table (contract columns; only the mining ones are read).
        settings: ``mining`` settings (method, deepest bucket, floor, EM limits).

    Returns:
        A Series indexed by position ``0..propensity_max_position`` named ``propensity``:
        1 at position 0, non-increasing, clipped to ``[propensity_floor, 1]``.
    """
    if settings.propensity_method == "pbm_em":
        return _pbm_em(impressions, settings)
    return _ctr_ratio(impressions, settings)


def propensity_at(positions: pd.Series | np.ndarray, propensity: pd.Series) -> np.ndarray:
    """Look up propensities for positions; positions past the table use its last value."""
    if propensity.empty:
        raise ValueError("propensity table is empty: expected one value per position from 0")
    table = propensity.sort_index()
    dense = table.reindex(pd.RangeIndex(int(table.index.max()) + 1)).ffill().bfill()
    pos = np.clip(np.asarray(positions, dtype="int64"), 0, len(dense) - 1)
    return dense.to_numpy(float)[pos]

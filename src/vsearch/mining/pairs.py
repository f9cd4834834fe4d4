"""(query, item) training pairs from clicks: weighted positives and skip-above negatives.

Why these rules (Joachims et al., *Accurately Interpreting Clickthrough Data as Implicit
Feedback*, and the Pailitao paper's click mining):

* **Positives** are the items a query clicked. A query's first click is the shopper's best
  guess at the identical product; later (switch) clicks are more often look-alikes or
  comparison shopping, so they weigh ``switch_click_weight`` instead of ``first_click_weight``.
  Each positive is divided by its position's propensity (inverse propensity weighting), so the
  many easy clicks at the top do not drown out the rarer ones further down. The price: deeper
  clicks are less often the photographed product, and a log from one ranker overstates the
  bias (see :mod:`.propensity`), so IPW lowers the weighted share of correct positives (demo
  world click model: 0.84 unweighted, 0.75 with the default floor 0.2). ``propensity_floor``
  is the knob; 1.0 turns IPW off.
* **Negatives** follow the *skip-above* rule: an item shown above the lowest click and not
  clicked was most likely looked at and rejected. Items below the last click, and every item of
  a query without clicks, say nothing (the shopper may never have scrolled there) and are not
  used. A negative weighs ``negative_weight * propensity``: under the position-based model the
  chance that an unclicked item was examined (so its non-click is evidence) is about the
  examination propensity of its position.
* Negatives that share a virtual ID with one of the query's positives are most likely another
  seller's listing of the same product (not clicked because the shopper had found it already);
  :func:`drop_false_negatives` removes them once virtual IDs exist.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vsearch.mined import KIND_FIRST, KIND_SKIP_ABOVE, KIND_SWITCH, NEGATIVE, POSITIVE
from vsearch.mining._frames import check_impressions, ranked_clicks
from vsearch.mining.propensity import PROPENSITY, estimate_propensity, propensity_at
from vsearch.settings import MiningSettings

#: Columns of the pairs table, in order.
PAIR_COLUMNS = (
    "query_id",
    "session_id",
    "item_id",
    "position",
    "label",
    "kind",
    "click_rank",
    PROPENSITY,
    "weight",
)


def _empty_pairs() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "query_id": pd.Series(dtype=str),
            "session_id": pd.Series(dtype=str),
            "item_id": pd.Series(dtype=str),
            "position": pd.Series(dtype="int64"),
            "label": pd.Series(dtype="int8"),
            "kind": pd.Series(dtype=str),
            "click_rank": pd.Series(dtype="Int64"),
            PROPENSITY: pd.Series(dtype=float),
            "weight": pd.Series(dtype=float),
        }
    )


def mine_pairs(
    impressions: pd.DataFrame,
    settings: MiningSettings,
    propensity: pd.Series | None = None,
) -> pd.DataFrame:
    """Weighted positives (clicks) and skip-above negatives for every query with a click.

    Args:
        impressions: the impressions table (query_id, session_id, item_id, position, clicked,
            click_order are read).
        settings: ``mining`` settings (click weights, negative weight, propensity estimation).
        propensity: relative examination probability per position; estimated from
            ``impressions`` with :func:`estimate_propensity` when not given.

    Returns:
        One row per pair with columns :data:`PAIR_COLUMNS`: ``label`` 1 (positive) or 0
        (negative); ``kind`` ``first`` / ``switch`` / ``skip_above``; ``click_rank`` 0 for the
        first click, 1.. for switch clicks (null for negatives); ``weight`` as described in the
        module docstring. Sorted by query, label (positives first), position.
    """
    df = check_impressions(impressions)
    if propensity is None:
        propensity = estimate_propensity(impressions, settings)
    clicks = ranked_clicks(df)
    if clicks.empty:
        return _empty_pairs()
    first = clicks["click_rank"] == 0
    clicks["kind"] = np.where(first, KIND_FIRST, KIND_SWITCH)
    clicks["label"] = np.int8(POSITIVE)
    clicks[PROPENSITY] = propensity_at(clicks["position"], propensity)
    kind_weight = np.where(first, settings.first_click_weight, settings.switch_click_weight)
    clicks["weight"] = kind_weight / clicks[PROPENSITY]

    lowest_click = clicks.groupby("query_id")["position"].max()
    shown = df[~df["clicked"]].copy()
    shown["_lowest"] = shown["query_id"].map(lowest_click).astype("float")
    negs = shown[shown["position"] < shown["_lowest"]].copy()  # NaN (no click) compares False
    negs["kind"] = KIND_SKIP_ABOVE
    negs["label"] = np.int8(NEGATIVE)
    negs["click_rank"] = pd.array([pd.NA] * len(negs), dtype="Int64")
    negs[PROPENSITY] = propensity_at(negs["position"], propensity)
    negs["weight"] = settings.negative_weight * negs[PROPENSITY]

    pairs = pd.concat([clicks[list(PAIR_COLUMNS)], negs[list(PAIR_COLUMNS)]], ignore_index=True)
    pairs["label"] = pairs["label"].astype("int8")
    pairs = pairs.sort_values(
        ["query_id", "label", "position"], ascending=[True, False, True], kind="stable"
    )
    return pairs.reset_index(drop=True)


def drop_false_negatives(pairs: pd.DataFrame, virtual_ids: pd.DataFrame) -> pd.DataFrame:
    """Remove negatives whose virtual ID is also the virtual ID of a positive of the same query.

    Why: in a shop where several sellers list the same product, a shopper who clicked one
    listing rarely clicks its twins above it; the skip-above rule would call those twins
    negatives and teach the model to push identical products apart. Virtual IDs (clusters of
    co-clicked listings) recognise the twins without any ground truth.

    Args:
        pairs: output of :func:`mine_pairs`.
        virtual_ids: ``item_id, virtual_id`` (output of ``assign_virtual_ids``); items not in it
            are their own identity and never dropped.

    Returns:
        ``pairs`` without those negatives (index reset).
    """
    if pairs.empty:
        return pairs.copy()
    vid = pairs["item_id"].map(virtual_ids.set_index("item_id")["virtual_id"])
    tagged = pairs.assign(_vid=vid.fillna("item:" + pairs["item_id"]))
    positive_keys = (
        tagged.loc[tagged["label"] == POSITIVE, ["query_id", "_vid"]]
        .drop_duplicates()
        .assign(_hit=True)
    )
    tagged = tagged.merge(positive_keys, on=["query_id", "_vid"], how="left")
    false_neg = (tagged["label"] == NEGATIVE) & tagged["_hit"].fillna(False).astype(bool)
    return pairs[~false_neg].reset_index(drop=True)


def triplets(pairs: pd.DataFrame) -> pd.DataFrame:
    """(query, positive item, negative item) triplets: every positive with every negative.

    The triplet weight is the product of the two pair weights, so a deep first click against a
    surely-examined skip counts most. Queries without negatives give no triplets.

    Returns:
        ``query_id, positive_id, negative_id, weight``.
    """
    pos = pairs.loc[pairs["label"] == POSITIVE, ["query_id", "item_id", "weight"]]
    neg = pairs.loc[pairs["label"] == NEGATIVE, ["query_id", "item_id", "weight"]]
    trip = pos.merge(neg, on="query_id", suffixes=("_pos", "_neg"))
    return pd.DataFrame(
        {
            "query_id": trip["query_id"],
            "positive_id": trip["item_id_pos"],
            "negative_id": trip["item_id_neg"],
            "weight": trip["weight_pos"] * trip["weight_neg"],
        }
    ).reset_index(drop=True)

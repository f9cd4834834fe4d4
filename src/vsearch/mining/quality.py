"""How good are the virtual IDs and the mined pairs? Measured against demo ground truth.

Report only: ground truth is never an input to mining or training; these functions are called
after mining, by the CLI with ``--truth`` and by the tests, to choose and justify settings.

Definitions (over the items that have a virtual ID, i.e. clicked items, joined with the truth):

* **purity**: in clusters of size >= 2, the share of items that belong to their cluster's
  majority product (size-weighted). Singletons are trivially pure and are left out.
* **coverage**: share of clicked items that sit in a cluster of size >= 2 (they contribute a
  multi-listing class); ``coverage_catalog`` is the same over every item in the truth table,
  and ``coverage_achievable`` over clicked items whose product has at least two clicked
  listings (a product with one listing can never be covered correctly).
* **split_fraction**: among products with >= 2 clicked listings, the share whose listings
  ended in more than one virtual ID.
* **pairwise precision / recall**: over item pairs, "same cluster" vs "same product".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from vsearch.mined import NEGATIVE, POSITIVE


def _pairs_count(sizes: pd.Series | np.ndarray) -> int:
    n = np.asarray(sizes, dtype="int64")
    return int((n * (n - 1) // 2).sum())


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den else None


def virtual_id_quality(
    virtual_ids: pd.DataFrame,
    item_truth: pd.DataFrame,
    query_virtual_ids: pd.DataFrame | None = None,
    query_truth: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Purity, coverage, splits, pairwise precision/recall and cluster sizes of virtual IDs.

    Args:
        virtual_ids: ``item_id, virtual_id`` (``cluster_size`` is recomputed).
        item_truth: ``item_id, sku`` for the catalog (demo world only).
        query_virtual_ids: optional ``query_id, virtual_id`` to score query assignment.
        query_truth: optional ``query_id, sku``; with ``query_virtual_ids`` gives
            ``query_vid_accuracy``: the share of assigned queries whose virtual ID's majority
            product is the product in the photo.

    Returns:
        A JSON-ready dict (``None`` where a ratio has no denominator).
    """
    truth = item_truth[["item_id", "sku"]].astype(str).drop_duplicates("item_id")
    vids = virtual_ids[["item_id", "virtual_id"]].astype(str)
    joined = vids.merge(truth, on="item_id", how="inner")
    size = joined.groupby("virtual_id")["item_id"].transform("size")
    clustered = joined[size >= 2]
    majority = clustered.groupby(["virtual_id", "sku"]).size().groupby(level=0).max()
    cluster_sizes = joined.groupby("virtual_id").size()
    multi = cluster_sizes[cluster_sizes >= 2]

    sku_clicked = joined.groupby("sku")["item_id"].transform("size")
    achievable = joined[sku_clicked >= 2]
    ach_size = achievable["virtual_id"].map(cluster_sizes)
    vids_per_sku = achievable.groupby("sku")["virtual_id"].nunique()

    same_cluster = _pairs_count(cluster_sizes)
    same_cluster_same_sku = _pairs_count(joined.groupby(["virtual_id", "sku"]).size())
    same_sku = _pairs_count(joined.groupby("sku").size())
    precision = _ratio(same_cluster_same_sku, same_cluster)
    recall = _ratio(same_cluster_same_sku, same_sku)
    f1 = (
        2 * precision * recall / (precision + recall)
        if precision is not None and recall is not None and precision + recall > 0
        else None
    )
    report: dict[str, Any] = {
        "items": len(vids),
        "items_with_truth": len(joined),
        "clusters": len(multi),
        "singletons": int((cluster_sizes == 1).sum()),
        "purity": _ratio(majority.sum(), len(clustered)),
        "coverage": _ratio(len(clustered), len(joined)),
        "coverage_catalog": _ratio(len(clustered), truth["item_id"].nunique()),
        "coverage_achievable": _ratio(int((ach_size >= 2).sum()), len(achievable)),
        "split_fraction": _ratio(int((vids_per_sku > 1).sum()), len(vids_per_sku)),
        "pairwise_precision": precision,
        "pairwise_recall": recall,
        "pairwise_f1": f1,
        "cluster_size": {
            "max": int(multi.max()) if len(multi) else 0,
            "mean": float(multi.mean()) if len(multi) else 0.0,
            "median": float(multi.median()) if len(multi) else 0.0,
            "histogram": {str(k): int(v) for k, v in multi.value_counts().sort_index().items()},
        },
    }
    if query_virtual_ids is not None and query_truth is not None:
        report.update(_query_assignment(query_virtual_ids, joined, query_truth))
    return report


def _query_assignment(
    query_virtual_ids: pd.DataFrame, joined: pd.DataFrame, query_truth: pd.DataFrame
) -> dict[str, Any]:
    majority_sku = (
        joined.groupby(["virtual_id", "sku"])
        .size()
        .reset_index(name="n")
        .sort_values(["virtual_id", "n", "sku"], ascending=[True, False, True])
        .drop_duplicates("virtual_id")
        .set_index("virtual_id")["sku"]
    )
    q = query_virtual_ids[["query_id", "virtual_id"]].astype(str)
    q = q.merge(query_truth[["query_id", "sku"]].astype(str), on="query_id", how="inner")
    hit = q["virtual_id"].map(majority_sku) == q["sku"]
    return {
        "queries_assigned": len(query_virtual_ids),
        "query_vid_accuracy": _ratio(int(hit.sum()), len(q)),
    }


def pair_quality(
    pairs: pd.DataFrame, item_truth: pd.DataFrame, query_truth: pd.DataFrame
) -> dict[str, Any]:
    """How often mined labels agree with the truth: positives that are the query's product,
    negatives that are not. Weighted versions show whether the weights help.

    Returns:
        ``positive_precision`` (share of positives showing the photographed product),
        ``negative_precision`` (share of negatives that are another product) and their
        weight-averaged counterparts, plus the same split for first and switch clicks.
    """
    item_sku = item_truth[["item_id", "sku"]].astype(str).set_index("item_id")["sku"]
    query_sku = query_truth[["query_id", "sku"]].astype(str).set_index("query_id")["sku"]
    df = pairs.assign(
        _match=pairs["item_id"].map(item_sku) == pairs["query_id"].map(query_sku),
        _known=pairs["item_id"].isin(item_sku.index) & pairs["query_id"].isin(query_sku.index),
    )
    df = df[df["_known"]]
    pos, neg = df[df["label"] == POSITIVE], df[df["label"] == NEGATIVE]

    def share(frame: pd.DataFrame, want: bool, weighted: bool) -> float | None:
        ok = frame["_match"] == want
        if weighted:
            return _ratio(float(frame.loc[ok, "weight"].sum()), float(frame["weight"].sum()))
        return _ratio(int(ok.sum()), len(frame))

    return {
        "positive_precision": share(pos, True, False),
        "positive_precision_weighted": share(pos, True, True),
        "first_click_precision": share(pos[pos["kind"] == "first"], True, False),
        "switch_click_precision": share(pos[pos["kind"] == "switch"], True, False),
        "negative_precision": share(neg, False, False),
        "negative_precision_weighted": share(neg, False, True),
    }

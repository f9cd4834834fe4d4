"""``mine``: the whole mining stage as one pure function (impressions in, tables out).

Why one function: the CLI (``vsearch mine``), the Prefect flow and the tests all run the same
steps in the same order: propensities, pairs, co-click graph, virtual IDs, query virtual IDs,
then the false-negative filter that needs the virtual IDs. Files stay in :mod:`.stage`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from vsearch.mined import KIND_FIRST, KIND_SWITCH, NEGATIVE, POSITIVE
from vsearch.mining._frames import check_impressions, ranked_clicks
from vsearch.mining.graph import build_coclick_graph, edges_frame
from vsearch.mining.pairs import drop_false_negatives, mine_pairs
from vsearch.mining.propensity import estimate_propensity
from vsearch.mining.quality import pair_quality, virtual_id_quality
from vsearch.mining.virtual_ids import assign_virtual_ids, prune, query_virtual_ids
from vsearch.settings import MiningSettings


@dataclass
class MiningResult:
    """Everything ``vsearch mine`` writes.

    Attributes:
        pairs: weighted (query, item) positives and negatives (see ``mine_pairs``).
        virtual_ids: ``item_id, virtual_id, cluster_size`` for every clicked item.
        query_virtual_ids: ``query_id, item_id, virtual_id, cluster_size`` per clicked query.
        propensity: relative examination probability per position.
        edges: the co-click graph's edge table (all edges, before pruning).
        report: counts, propensities and, when ground truth was given, quality figures.
    """

    pairs: pd.DataFrame
    virtual_ids: pd.DataFrame
    query_virtual_ids: pd.DataFrame
    propensity: pd.Series
    edges: pd.DataFrame
    report: dict[str, Any] = field(default_factory=dict)


def _weight_summary(weights: pd.Series) -> dict[str, float]:
    if weights.empty:
        return {"mean": 0.0, "max": 0.0}
    return {"mean": round(float(weights.mean()), 4), "max": round(float(weights.max()), 4)}


def mine(
    impressions: pd.DataFrame,
    settings: MiningSettings,
    *,
    seed: int = 0,
    item_truth: pd.DataFrame | None = None,
    query_truth: pd.DataFrame | None = None,
) -> MiningResult:
    """Mine a validated impressions table into training pairs and virtual IDs.

    Args:
        impressions: the drop's impressions (contract columns).
        settings: the ``mining`` section.
        seed: seed for the (optional) Louvain clustering; ``project.seed`` in the CLI.
        item_truth: demo only, ``item_id, sku``: adds virtual-ID quality to the report.
        query_truth: demo only, ``query_id, sku``: adds pair and query-assignment quality.
            Ground truth is read *after* mining and only for the report: nothing mined
            depends on it.

    Returns:
        A :class:`MiningResult`.
    """
    checked = check_impressions(impressions)
    propensity = estimate_propensity(checked, settings)
    raw_pairs = mine_pairs(checked, settings, propensity)
    graph = build_coclick_graph(checked, settings)
    virtual_ids = assign_virtual_ids(graph, settings, seed=seed)
    query_vids = query_virtual_ids(checked, virtual_ids)
    pairs = (
        drop_false_negatives(raw_pairs, virtual_ids) if settings.drop_false_negatives else raw_pairs
    )

    clicks = ranked_clicks(checked)
    positives = pairs[pairs["label"] == POSITIVE]
    negatives = pairs[pairs["label"] == NEGATIVE]
    sizes = virtual_ids.drop_duplicates("virtual_id")["cluster_size"]
    report: dict[str, Any] = {
        "counts": {
            "impressions": len(impressions),
            "queries": int(checked["query_id"].nunique()),
            "queries_with_clicks": int(clicks["query_id"].nunique()),
            "clicks": len(clicks),
            "first_clicks": int((positives["kind"] == KIND_FIRST).sum()),
            "switch_clicks": int((positives["kind"] == KIND_SWITCH).sum()),
            "positives": len(positives),
            "negatives": len(negatives),
            "negatives_dropped_same_virtual_id": int(
                (raw_pairs["label"] == NEGATIVE).sum() - len(negatives)
            ),
            "items_clicked": len(virtual_ids),
            "coclick_edges": graph.number_of_edges(),
            "coclick_edges_kept": prune(graph, settings).number_of_edges(),
            "virtual_ids": len(sizes),
            "virtual_ids_multi_item": int((sizes >= 2).sum()),
            "items_in_multi_item_virtual_ids": int((virtual_ids["cluster_size"] >= 2).sum()),
            "queries_with_virtual_id": len(query_vids),
            "queries_in_multi_item_virtual_ids": int((query_vids["cluster_size"] >= 2).sum()),
            "largest_virtual_id": int(sizes.max()) if len(sizes) else 0,
        },
        "weights": {
            "positive": _weight_summary(positives["weight"]),
            "negative": _weight_summary(negatives["weight"]),
        },
        "propensity": {str(int(k)): round(float(v), 4) for k, v in propensity.items()},
        "settings": settings.model_dump(),
    }
    if item_truth is not None:
        quality: dict[str, Any] = {
            "virtual_ids": virtual_id_quality(virtual_ids, item_truth, query_vids, query_truth)
        }
        if query_truth is not None:
            quality["pairs"] = pair_quality(pairs, item_truth, query_truth)
            quality["pairs_before_false_negative_filter"] = pair_quality(
                raw_pairs, item_truth, query_truth
            )
        report["quality"] = quality
    return MiningResult(
        pairs=pairs,
        virtual_ids=virtual_ids,
        query_virtual_ids=query_vids,
        propensity=propensity,
        edges=edges_frame(graph),
        report=report,
    )

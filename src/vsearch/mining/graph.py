"""The co-click graph: listings clicked for the same query are linked, weighted by evidence.

Why: a shopper who photographs a product and clicks two results usually clicked two sellers'
listings of that same product. Summed over many queries, co-clicks reveal which listings are
one product without any labels; the graph's clusters become virtual IDs.

Why a normalised weight (default ``cosine``): raw co-click counts favour popular items, which
get co-clicked with everything. ``cosine = c_ab / sqrt(n_a * n_b)`` (``n`` = queries that
clicked the item, ``c`` = queries that clicked both) asks "how much of each item's clicking
happens together with the other"; it is high for listings that are clicked together whenever
they are clicked and low for a look-alike that shares a click now and then. ``jaccard`` is the
stricter ``c / (n_a + n_b - c)``; ``count`` keeps the raw evidence.

Each edge also counts its *long* co-clicks: queries where both clicks lasted at least
``long_click_ms`` (dwell time). A shopper who stays on a listing has usually found the product;
short clicks are more often look-alikes and strays (in the demo world the median dwell of a
correct click is about 2.5 times that of a wrong one). Unknown dwell never counts as long.

Scope: by default only clicks of the *same query* link items. A session can hold searches for
different products (shoe, then bag), so session scope (``coclick_scope: session``) adds edges
between unrelated products; it is offered for logs whose query ids do not mean one photo.
Groups with more than ``max_clicks_per_query`` clicked items are left out of the edges
(a click-everything shopper links everything to everything), but their items stay nodes.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd

from vsearch.mined import EDGE_COLUMNS
from vsearch.mining._frames import DWELL, check_impressions
from vsearch.settings import MiningSettings


def _clicked_sets(impressions: pd.DataFrame, settings: MiningSettings) -> pd.DataFrame:
    """One row per (group, clicked item) with ``long`` (a click of at least long_click_ms)."""
    df = check_impressions(impressions)
    group_col = "session_id" if settings.coclick_scope == "session" else "query_id"
    clicks = df.loc[df["clicked"], [group_col, "item_id", DWELL]]
    clicks = clicks.rename(columns={group_col: "group"})
    long = clicks[DWELL].fillna(-1).to_numpy() >= settings.long_click_ms
    clicks = clicks.assign(long=long & (settings.long_click_ms > 0))
    return clicks.groupby(["group", "item_id"], as_index=False)["long"].any()


def item_click_counts(impressions: pd.DataFrame, settings: MiningSettings) -> pd.Series:
    """Number of groups (queries, or sessions in session scope) in which each item was clicked."""
    return _click_counts(_clicked_sets(impressions, settings))


def _click_counts(clicks: pd.DataFrame) -> pd.Series:
    return clicks.groupby("item_id")["group"].nunique().rename("clicks")


def _edges(clicks: pd.DataFrame, settings: MiningSettings) -> pd.DataFrame:
    n_clicks = _click_counts(clicks)
    size = clicks.groupby("group")["item_id"].transform("size")
    linked = clicks[(size >= 2) & (size <= settings.max_clicks_per_query)]
    both = linked.merge(linked, on="group", suffixes=("_a", "_b"))
    both = both[both["item_id_a"] < both["item_id_b"]]
    both = both.assign(long=both["long_a"] & both["long_b"])
    edges = (
        both.groupby(["item_id_a", "item_id_b"])
        .agg(coclicks=("group", "size"), long_coclicks=("long", "sum"))
        .reset_index()
        .rename(columns={"item_id_a": "item_a", "item_id_b": "item_b"})
    )
    edges["coclicks"] = edges["coclicks"].astype("int64")
    edges["long_coclicks"] = edges["long_coclicks"].astype("int64")
    c = edges["coclicks"].to_numpy(float)
    na = edges["item_a"].map(n_clicks).to_numpy(float)
    nb = edges["item_b"].map(n_clicks).to_numpy(float)
    if settings.edge_weight == "jaccard":
        weight = c / np.maximum(na + nb - c, 1.0)
    elif settings.edge_weight == "cosine":
        weight = c / np.sqrt(np.maximum(na * nb, 1.0))
    else:
        weight = c
    edges["weight"] = np.asarray(weight, dtype=float)
    edges["item_a"] = edges["item_a"].astype(str)
    edges["item_b"] = edges["item_b"].astype(str)
    return edges.loc[:, list(EDGE_COLUMNS)].reset_index(drop=True)


def coclick_edges(impressions: pd.DataFrame, settings: MiningSettings) -> pd.DataFrame:
    """Item pairs clicked in the same group, with their evidence and normalised weight.

    Returns:
        ``item_a < item_b, coclicks, long_coclicks (int), weight (float)``, one row per linked
        pair; nothing is pruned here (thresholds belong to
        :func:`~vsearch.mining.virtual_ids.assign_virtual_ids`).
    """
    return _edges(_clicked_sets(impressions, settings), settings)


def build_coclick_graph(impressions: pd.DataFrame, settings: MiningSettings) -> nx.Graph:
    """The co-click graph: every clicked item is a node (``clicks`` attribute); edges from
    :func:`coclick_edges` carry ``coclicks``, ``long_coclicks`` and ``weight``.

    Items clicked but never co-clicked stay as isolated nodes so that they still get a
    (singleton) virtual ID: a query and its clicked item form a valid pair even alone.
    """
    clicks = _clicked_sets(impressions, settings)
    graph = nx.Graph()
    graph.add_nodes_from((item, {"clicks": int(n)}) for item, n in _click_counts(clicks).items())
    graph.add_edges_from(
        (a, b, {"coclicks": int(c), "long_coclicks": int(lc), "weight": float(w)})
        for a, b, c, lc, w in _edges(clicks, settings).itertuples(index=False, name=None)
    )
    return graph


def edges_frame(graph: nx.Graph) -> pd.DataFrame:
    """The edge table of a co-click graph (for writing or inspecting), sorted by weight."""
    rows = [
        (
            a,
            b,
            int(d.get("coclicks", 1)),
            int(d.get("long_coclicks", 0)),
            float(d.get("weight", 1.0)),
        )
        for a, b, d in graph.edges(data=True)
    ]
    edges = pd.DataFrame(rows, columns=list(EDGE_COLUMNS))
    swap = edges["item_a"] > edges["item_b"]
    edges.loc[swap, ["item_a", "item_b"]] = edges.loc[swap, ["item_b", "item_a"]].to_numpy()
    return edges.sort_values(["weight", "item_a", "item_b"], ascending=[False, True, True])


def graph_from_edges(edges: pd.DataFrame, items: pd.Series | None = None) -> nx.Graph:
    """A co-click graph from an edge table (``item_a, item_b`` and optionally the evidence).

    Args:
        edges: the edge table; ``coclicks`` defaults to 1, ``long_coclicks`` to 0 and
            ``weight`` to ``coclicks``.
        items: extra item ids to add as (possibly isolated) nodes.

    Raises:
        ValueError: ``item_a`` or ``item_b`` is missing.
    """
    missing = [c for c in ("item_a", "item_b") if c not in edges.columns]
    if missing:
        raise ValueError(f"edges: missing column(s) {missing}; expected {list(EDGE_COLUMNS)}")
    graph = nx.Graph()
    if items is not None:
        graph.add_nodes_from(str(i) for i in items)
    ones = pd.Series(1, index=edges.index)
    coclicks = edges.get("coclicks", ones)
    long = edges.get("long_coclicks", 0 * ones)
    weight = edges.get("weight", coclicks)
    for a, b, c, lc, w in zip(
        edges["item_a"], edges["item_b"], coclicks, long, weight, strict=True
    ):
        graph.add_edge(str(a), str(b), coclicks=int(c), long_coclicks=int(lc), weight=float(w))
    return graph

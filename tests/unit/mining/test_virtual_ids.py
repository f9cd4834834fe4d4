"""Virtual IDs: two products stay apart despite a look-alike click; size cap; query assignment."""

from __future__ import annotations

from collections.abc import Callable

import networkx as nx
import pandas as pd
import pytest

from vsearch.mining.graph import build_coclick_graph, coclick_edges
from vsearch.mining.virtual_ids import (
    assign_virtual_ids,
    prune,
    query_virtual_ids,
    split_oversized,
)
from vsearch.settings import MiningSettings

pytestmark = pytest.mark.unit

NAIVE = MiningSettings(
    min_coclicks=1, min_relative_weight=0.0, long_click_ms=0, max_cluster_size=1000
)


def _two_products(stray_clicks: int) -> dict[str, list[str]]:
    """Products A and B, each listed by 3 sellers; every pair of a product's listings is
    co-clicked 5 times; ``stray_clicks`` queries for A also click B's listing b1 (a look-alike).
    """
    groups: dict[str, list[str]] = {}
    for p in ("a", "b"):
        for k, (x, y) in enumerate([(1, 2), (1, 3), (2, 3)] * 5):
            groups[f"q_{p}{k}"] = [f"{p}{x}", f"{p}{y}"]
    for k in range(stray_clicks):
        groups[f"q_stray{k}"] = ["a1", "b1"]
    return groups


def _clusters(vids: pd.DataFrame) -> set[frozenset[str]]:
    return {frozenset(g["item_id"]) for _, g in vids.groupby("virtual_id")}


@pytest.mark.parametrize("stray_clicks", [1, 2])
def test_lookalike_click_does_not_merge_two_products(
    make_clicks: Callable, stray_clicks: int
) -> None:
    log = make_clicks(_two_products(stray_clicks))
    vids = assign_virtual_ids(build_coclick_graph(log, MiningSettings()), MiningSettings())
    assert _clusters(vids) == {frozenset({"a1", "a2", "a3"}), frozenset({"b1", "b2", "b3"})}
    assert set(vids["cluster_size"]) == {3}
    assert set(vids["virtual_id"]) == {"v:a1", "v:b1"}  # named after the smallest member


def test_naive_components_chain_the_products(make_clicks: Callable) -> None:
    """Why plain connected components are not the default: one stray click merges both."""
    log = make_clicks(_two_products(1))
    vids = assign_virtual_ids(build_coclick_graph(log, NAIVE), NAIVE)
    assert len(_clusters(vids)) == 1


def test_relative_rule_cuts_a_repeated_lookalike_edge(make_clicks: Callable) -> None:
    # with 2 stray co-clicks the edge passes min_coclicks=2; only the relative rule cuts it
    log = make_clicks(_two_products(2))
    s = MiningSettings(min_relative_weight=0.0)
    assert len(_clusters(assign_virtual_ids(build_coclick_graph(log, s), s))) == 1
    s = MiningSettings(min_relative_weight=0.5)
    assert len(_clusters(assign_virtual_ids(build_coclick_graph(log, s), s))) == 2


def test_louvain_splits_two_triangles_joined_by_one_edge(make_clicks: Callable) -> None:
    log = make_clicks(_two_products(1))
    s = NAIVE.model_copy(update={"clustering": "louvain"})
    vids = assign_virtual_ids(build_coclick_graph(log, s), s, seed=3)
    assert _clusters(vids) == {frozenset({"a1", "a2", "a3"}), frozenset({"b1", "b2", "b3"})}


def test_single_coclick_needs_long_clicks(make_log: Callable) -> None:
    rows = [
        ("q1", "s", "x1", 0, True, 0, 20_000),
        ("q1", "s", "x2", 1, True, 1, 20_000),  # one long co-click: enough evidence
        ("q2", "s", "y1", 0, True, 0, 20_000),
        ("q2", "s", "y2", 1, True, 1, 2_000),  # one short co-click: not enough
    ]
    log = make_log(rows)
    vids = assign_virtual_ids(build_coclick_graph(log, MiningSettings()), MiningSettings())
    assert _clusters(vids) == {
        frozenset({"x1", "x2"}),
        frozenset({"y1"}),
        frozenset({"y2"}),
    }


def test_every_clicked_item_gets_an_id_singletons_included(make_clicks: Callable) -> None:
    log = make_clicks({"q1": ["a"], "q2": ["b", "c"], "q3": ["b", "c"]})
    vids = assign_virtual_ids(build_coclick_graph(log, MiningSettings()), MiningSettings())
    got = dict(
        zip(
            vids["item_id"], zip(vids["virtual_id"], vids["cluster_size"], strict=True), strict=True
        )
    )
    assert got == {"a": ("v:a", 1), "b": ("v:b", 2), "c": ("v:b", 2)}


def test_oversized_clusters_split_at_the_weakest_edges() -> None:
    graph = nx.Graph()
    graph.add_edge("a", "b", weight=0.9)
    graph.add_edge("b", "c", weight=0.8)
    graph.add_edge("c", "d", weight=0.1)  # the weak link
    graph.add_edge("d", "e", weight=0.9)
    parts = split_oversized(graph, set(graph.nodes), max_size=3)
    assert {frozenset(p) for p in parts} == {frozenset("abc"), frozenset("de")}
    flat = nx.Graph([("a", "b"), ("b", "c")])  # no weights: equally light, falls apart
    assert len(split_oversized(flat, {"a", "b", "c"}, max_size=2)) == 3


def test_size_cap_applies_to_components(make_clicks: Callable) -> None:
    groups = {f"q{k}": ["a", "b"] for k in range(5)}
    groups |= {f"r{k}": ["b", "c"] for k in range(5)}
    groups |= {f"s{k}": ["c", "d"] for k in range(2)}  # weakest link of the chain
    log = make_clicks(groups)
    s = MiningSettings(max_cluster_size=3, min_relative_weight=0.0)
    vids = assign_virtual_ids(build_coclick_graph(log, s), s)
    assert _clusters(vids) == {frozenset("abc"), frozenset("d")}


def test_edge_table_input_and_pruning(make_clicks: Callable) -> None:
    log = make_clicks(_two_products(1))
    edges = coclick_edges(log, MiningSettings())
    vids = assign_virtual_ids(edges, MiningSettings())
    assert len(_clusters(vids)) == 2
    kept = prune(build_coclick_graph(log, MiningSettings()), MiningSettings())
    assert not kept.has_edge("a1", "b1") and kept.has_edge("a1", "a2")


def test_queries_take_the_virtual_id_of_their_first_click(make_log: Callable) -> None:
    log = make_log(
        [
            ("q1", "s", "x", 0, False, None),
            ("q1", "s", "b2", 1, True, 0),  # first click
            ("q1", "s", "a1", 2, True, 1),
            ("q2", "s", "a1", 0, False, None),  # no click: no virtual ID
        ]
    )
    vids = pd.DataFrame(
        {"item_id": ["a1", "b2"], "virtual_id": ["v:a1", "v:b1"], "cluster_size": [3, 3]}
    )
    got = query_virtual_ids(log, vids)
    assert got.to_dict("records") == [
        {"query_id": "q1", "item_id": "b2", "virtual_id": "v:b1", "cluster_size": 3}
    ]

"""Co-click graph: which items are linked, with what counts and weights, in which scope."""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd
import pytest

from vsearch.mining.graph import (
    build_coclick_graph,
    coclick_edges,
    edges_frame,
    graph_from_edges,
    item_click_counts,
)
from vsearch.settings import MiningSettings

pytestmark = pytest.mark.unit


def _edge(edges: pd.DataFrame, a: str, b: str) -> pd.Series:
    hit = edges[(edges["item_a"] == a) & (edges["item_b"] == b)]
    assert len(hit) == 1, f"expected edge {a}-{b}"
    return hit.iloc[0]


def test_counts_and_normalised_weights(make_clicks: Callable) -> None:
    log = make_clicks({"q1": ["a1", "a2"], "q2": ["a2", "a1"], "q3": ["a2", "a3"], "q4": ["a3"]})
    counts = item_click_counts(log, MiningSettings())
    assert counts.to_dict() == {"a1": 2, "a2": 3, "a3": 2}
    cos = coclick_edges(log, MiningSettings(edge_weight="cosine"))
    assert len(cos) == 2
    assert _edge(cos, "a1", "a2").coclicks == 2
    assert _edge(cos, "a1", "a2").weight == pytest.approx(2 / math.sqrt(2 * 3))
    assert _edge(cos, "a2", "a3").weight == pytest.approx(1 / math.sqrt(3 * 2))
    jac = coclick_edges(log, MiningSettings(edge_weight="jaccard"))
    assert _edge(jac, "a1", "a2").weight == pytest.approx(2 / (2 + 3 - 2))
    cnt = coclick_edges(log, MiningSettings(edge_weight="count"))
    assert _edge(cnt, "a2", "a3").weight == 1.0


def test_only_clicked_items_of_the_same_query_are_linked(make_log: Callable) -> None:
    log = make_log(
        [
            ("q1", "s", "a", 0, True, 0),
            ("q1", "s", "b", 1, False, None),  # shown, not clicked: no edge
            ("q1", "s", "c", 2, True, 1),
            ("q2", "s", "d", 0, True, 0),  # same session, other query
        ]
    )
    edges = coclick_edges(log, MiningSettings())
    assert list(zip(edges["item_a"], edges["item_b"], strict=True)) == [("a", "c")]
    session = coclick_edges(log, MiningSettings(coclick_scope="session"))
    assert len(session) == 3  # a-c, a-d, c-d


def test_click_everything_queries_add_nodes_but_no_edges(make_clicks: Callable) -> None:
    log = make_clicks({"q1": [f"i{k}" for k in range(9)], "q2": ["x", "y"]})
    graph = build_coclick_graph(log, MiningSettings(max_clicks_per_query=8))
    assert graph.number_of_nodes() == 11
    assert list(graph.edges()) == [("x", "y")]


def test_long_coclicks_need_long_dwell_on_both_items(make_log: Callable) -> None:
    log = make_log(
        [
            ("q1", "s", "a", 0, True, 0, 20_000),
            ("q1", "s", "b", 1, True, 1, 15_000),
            ("q2", "s", "a", 0, True, 0, 20_000),
            ("q2", "s", "b", 1, True, 1, 500),  # a bounce: not long
            ("q3", "s", "a", 0, True, 0, None),  # unknown dwell: never long
            ("q3", "s", "b", 1, True, 1, 30_000),
        ]
    )
    edge = _edge(coclick_edges(log, MiningSettings(long_click_ms=10_000)), "a", "b")
    assert (edge.coclicks, edge.long_coclicks) == (3, 1)
    off = _edge(coclick_edges(log, MiningSettings(long_click_ms=0)), "a", "b")
    assert off.long_coclicks == 0


def test_edge_table_round_trip(make_clicks: Callable) -> None:
    log = make_clicks({"q1": ["b", "a"], "q2": ["a", "b"], "q3": ["c"]})
    graph = build_coclick_graph(log, MiningSettings())
    table = edges_frame(graph)
    assert list(zip(table["item_a"], table["item_b"], table["coclicks"], strict=True)) == [
        ("a", "b", 2)
    ]
    again = graph_from_edges(table, items=pd.Series(["c"]))
    assert set(again.nodes) == {"a", "b", "c"}
    assert again.edges["a", "b"]["coclicks"] == 2
    with pytest.raises(ValueError, match="item_b"):
        graph_from_edges(pd.DataFrame({"item_a": ["a"]}))


def test_no_coclicks_gives_no_edges(make_clicks: Callable) -> None:
    log = make_clicks({"q1": ["a"], "q2": ["b"]})
    assert coclick_edges(log, MiningSettings()).empty
    assert build_coclick_graph(log, MiningSettings()).number_of_nodes() == 2

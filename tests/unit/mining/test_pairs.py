"""Pairs: positives from clicks, skip-above negatives, weights, false-negative filter, triplets."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pytest

from vsearch.errors import BadInput
from vsearch.mining.pairs import drop_false_negatives, mine_pairs, triplets
from vsearch.settings import MiningSettings

pytestmark = pytest.mark.unit

# relative examination per position 0..4, given explicitly so weights are hand-computable
PROPENSITY = pd.Series([1.0, 0.5, 0.25, 0.2, 0.1])
SETTINGS = MiningSettings(first_click_weight=1.0, switch_click_weight=0.5, negative_weight=1.0)


@pytest.fixture
def log(make_log: Callable) -> pd.DataFrame:
    return make_log(
        [
            # q1: b first click at 1, d switch click at 3; a and c skipped above; e below
            ("q1", "s1", "a", 0, False, None),
            ("q1", "s1", "b", 1, True, 0),
            ("q1", "s1", "c", 2, False, None),
            ("q1", "s1", "d", 3, True, 1),
            ("q1", "s1", "e", 4, False, None),
            # q2: no clicks -> nothing
            ("q2", "s1", "a", 0, False, None),
            ("q2", "s1", "b", 1, False, None),
            # q3: a click at the top -> one positive, nothing above it
            ("q3", "s2", "x", 0, True, 0),
            ("q3", "s2", "y", 1, False, None),
        ]
    )


def _row(pairs: pd.DataFrame, query: str, item: str) -> pd.Series:
    hit = pairs[(pairs["query_id"] == query) & (pairs["item_id"] == item)]
    assert len(hit) == 1, f"expected one pair ({query}, {item}), got {len(hit)}"
    return hit.iloc[0]


def test_positives_negatives_and_kinds(log: pd.DataFrame) -> None:
    pairs = mine_pairs(log, SETTINGS, PROPENSITY)
    got = {(r.query_id, r.item_id): (r.label, r.kind) for r in pairs.itertuples()}
    assert got == {
        ("q1", "b"): (1, "first"),
        ("q1", "d"): (1, "switch"),
        ("q1", "a"): (0, "skip_above"),
        ("q1", "c"): (0, "skip_above"),
        ("q3", "x"): (1, "first"),
    }
    assert _row(pairs, "q1", "b").click_rank == 0
    assert _row(pairs, "q1", "d").click_rank == 1
    assert pd.isna(_row(pairs, "q1", "a").click_rank)


def test_weights_combine_click_kind_and_propensity(log: pd.DataFrame) -> None:
    pairs = mine_pairs(log, SETTINGS, PROPENSITY)
    assert _row(pairs, "q1", "b").weight == pytest.approx(1.0 / 0.5)  # first click at 1
    assert _row(pairs, "q1", "d").weight == pytest.approx(0.5 / 0.2)  # switch click at 3
    assert _row(pairs, "q1", "a").weight == pytest.approx(1.0 * 1.0)  # skipped at 0: surely seen
    assert _row(pairs, "q1", "c").weight == pytest.approx(1.0 * 0.25)  # skipped at 2
    assert _row(pairs, "q3", "x").weight == pytest.approx(1.0)


def test_click_weights_are_settings(log: pd.DataFrame) -> None:
    s = MiningSettings(first_click_weight=2.0, switch_click_weight=0.0, negative_weight=3.0)
    pairs = mine_pairs(log, s, PROPENSITY)
    assert _row(pairs, "q1", "b").weight == pytest.approx(4.0)
    assert _row(pairs, "q1", "d").weight == 0.0
    assert _row(pairs, "q1", "c").weight == pytest.approx(0.75)


def test_propensity_is_estimated_when_not_given(log: pd.DataFrame) -> None:
    pairs = mine_pairs(log, SETTINGS)
    assert (pairs["propensity"] <= 1.0).all() and (pairs["propensity"] >= 0.2).all()
    assert _row(pairs, "q3", "x").propensity == 1.0


def test_missing_click_order_and_duplicates(make_log: Callable) -> None:
    log = make_log(
        [
            ("q", "s", "a", 0, True, None),  # clicked but order unknown: ranks after known ones
            ("q", "s", "b", 1, True, 0),
            ("q", "s", "c", 2, False, None),
            ("q", "s", "c", 3, True, 1),  # shown twice, clicked once: one positive, no negative
        ]
    )
    pairs = mine_pairs(log, SETTINGS, PROPENSITY)
    got = {r.item_id: (r.label, r.kind) for r in pairs.itertuples()}
    assert got == {"b": (1, "first"), "c": (1, "switch"), "a": (1, "switch")}


def test_no_clicks_gives_an_empty_table(make_log: Callable) -> None:
    pairs = mine_pairs(make_log([("q", "s", "a", 0, False, None)]), SETTINGS, PROPENSITY)
    assert pairs.empty and "weight" in pairs.columns


def test_bad_input_names_the_problem(log: pd.DataFrame) -> None:
    with pytest.raises(BadInput, match="click_order"):
        mine_pairs(log.drop(columns="click_order"), SETTINGS, PROPENSITY)
    bad = log.copy()
    bad.loc[0, "position"] = -1
    with pytest.raises(BadInput, match="position"):
        mine_pairs(bad, SETTINGS, PROPENSITY)


def test_false_negatives_sharing_a_virtual_id_are_dropped(log: pd.DataFrame) -> None:
    pairs = mine_pairs(log, SETTINGS, PROPENSITY)
    # c is another seller's listing of b's product: not a negative for q1
    vids = pd.DataFrame({"item_id": ["b", "c", "a"], "virtual_id": ["v:b", "v:b", "v:a"]})
    kept = drop_false_negatives(pairs, vids)
    assert set(zip(kept["query_id"], kept["item_id"], strict=True)) == {
        ("q1", "b"),
        ("q1", "d"),
        ("q1", "a"),
        ("q3", "x"),
    }


def test_triplets_pair_every_positive_with_every_negative(log: pd.DataFrame) -> None:
    trip = triplets(mine_pairs(log, SETTINGS, PROPENSITY))
    got = {(r.positive_id, r.negative_id): r.weight for r in trip.itertuples()}
    assert got == pytest.approx(
        {("b", "a"): 2.0, ("b", "c"): 0.5, ("d", "a"): 2.5, ("d", "c"): 0.625}
    )
    assert set(trip["query_id"]) == {"q1"}

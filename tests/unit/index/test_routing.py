"""Routing: confident queries search one partition, unsure ones widen to runner-ups."""

from __future__ import annotations

import numpy as np
import pytest

from vsearch.index.routing import route

pytestmark = pytest.mark.unit

NAMES = ["bags", "shoes", "hats", "toys"]


def test_confident_query_searches_one_category() -> None:
    assert route(np.array([[0.05, 0.9, 0.03, 0.02]]), NAMES, 0.6, 2) == [["shoes"]]


def test_unsure_query_adds_runner_ups_until_mass_reached() -> None:
    probs = np.array([[0.4, 0.35, 0.2, 0.05], [0.5, 0.1, 0.3, 0.1]])
    assert route(probs, NAMES, 0.7, 2) == [["bags", "shoes"], ["bags", "hats"]]
    assert route(probs, NAMES, 0.95, 2) == [["bags", "shoes", "hats"], ["bags", "hats", "shoes"]]


def test_max_extra_caps_the_widening() -> None:
    probs = np.array([[0.3, 0.3, 0.2, 0.2]])
    assert route(probs, NAMES, 0.99, 1) == [["bags", "shoes"]]
    assert route(probs, NAMES, 0.99, 0) == [["bags"]]


def test_shape_is_checked() -> None:
    with pytest.raises(ValueError, match="one column per name"):
        route(np.ones((2, 3)) / 3, NAMES, 0.5, 1)

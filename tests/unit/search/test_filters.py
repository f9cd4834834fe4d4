"""Search filters: parsing of raw values, refusals naming the problem, which rows pass."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vsearch.errors import BadInput
from vsearch.search.filters import BadFilter, SearchFilter

pytestmark = pytest.mark.unit


def _catalog(stock: list | None = None) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "item_id": ["a", "b", "c", "d", "e"],
            "seller_id": ["s1", "s2", "s1", "s3", "s2"],
            "price": [5.0, 10.0, 20.0, np.nan, 40.0],
        }
    )
    if stock is not None:
        df["stock"] = pd.array(stock, dtype="Int64")
    return df


def test_parse_accepts_form_text_json_values_and_cli_types() -> None:
    f = SearchFilter.parse(" 5 ", "20.5", ["s1", " s2 ", "s1", ""], "on")
    assert f == SearchFilter(5.0, 20.5, ("s1", "s2"), True)
    assert SearchFilter.parse(5, None, "s1", False) == SearchFilter(5.0, None, ("s1",), False)
    assert SearchFilter.parse(None, "", [], "false") is None  # nothing restricts
    assert SearchFilter.parse(in_stock="true").describe() == {"in_stock": True}
    assert f.describe() == {
        "price_min": 5.0,
        "price_max": 20.5,
        "seller": ["s1", "s2"],
        "in_stock": True,
    }


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"price_min": "30", "price_max": "10"}, "price_min 30.0 is above price_max 10.0"),
        ({"price_min": "cheap"}, "price_min must be a number"),
        ({"price_max": True}, "price_max must be a number"),
        ({"price_max": [1]}, "price_max must be a number"),
        ({"price_min": "-1"}, "price_min must be a finite number >= 0"),
        ({"price_max": "nan"}, "price_max must be a finite number >= 0"),
        ({"seller": 7}, "seller must be an id or a list"),
        ({"seller": ["s1", 2]}, "seller must be text"),
        ({"in_stock": "maybe"}, "in_stock must be true or false"),
        ({"in_stock": 1}, "in_stock must be true or false"),
    ],
)
def test_bad_filters_are_refused_naming_the_field(kwargs: dict, needle: str) -> None:
    with pytest.raises(BadFilter, match=needle) as info:
        SearchFilter.parse(**kwargs)
    assert isinstance(info.value, BadInput)  # exit 2 / HTTP 4xx


def test_unknown_filter_fields_are_refused() -> None:
    with pytest.raises(BadFilter, match=r"unknown filter field\(s\) \['colour'\]"):
        SearchFilter.from_mapping({"colour": "red", "price_max": 3})
    assert SearchFilter.from_mapping({"price_max": 3}) == SearchFilter(price_max=3.0)


def test_mask_price_range_sellers_and_unknown_price() -> None:
    df = _catalog()
    assert SearchFilter(price_min=10.0).mask(df).tolist() == [False, True, True, False, True]
    assert SearchFilter(price_max=10.0).mask(df).tolist() == [True, True, False, False, False]
    both = SearchFilter(price_min=5.0, price_max=20.0, sellers=("s1",))
    assert both.mask(df).tolist() == [True, False, True, False, False]
    assert SearchFilter(sellers=("s2", "nobody")).mask(df).tolist() == [
        False,
        True,
        False,
        False,
        True,
    ]


def test_in_stock_keeps_positive_and_unknown_stock() -> None:
    f = SearchFilter(in_stock=True)
    # No stock column: stock unknown everywhere, every row passes.
    assert f.mask(_catalog()).all()
    # Stock 0 (and a negative count) is out; null is unknown and passes.
    df = _catalog([3, 0, None, -1, 1])
    assert f.mask(df).tolist() == [True, False, True, False, True]
    assert SearchFilter(in_stock=False).mask(df).all()

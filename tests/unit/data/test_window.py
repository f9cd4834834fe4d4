"""The window of drops: which drops, and their merge into one consistent drop-format view."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from vsearch.contracts import CATALOG, IMPRESSIONS, QUERIES, REMOVED
from vsearch.data.window import WindowDrop, merge_drops, select_window, view_id
from vsearch.settings import WindowSettings

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _rec(drop_id: str, kind: str, day: int) -> dict:
    return {"drop_id": drop_id, "kind": kind, "created_at": (T0 + timedelta(days=day)).isoformat()}


LEDGER = [
    _rec("s1", "snapshot", 0),
    _rec("d1", "delta", 1),
    _rec("s2", "snapshot", 2),
    _rec("d2", "delta", 3),
    _rec("d3", "delta", 4),
    _rec("d4", "delta", 10),
]


def _ids(drops: list[WindowDrop]) -> list[tuple[str, bool]]:
    return [(d.drop_id, d.clicks) for d in drops]


def test_no_limit_takes_every_drop() -> None:
    got = select_window(LEDGER, WindowSettings())
    assert _ids(got) == [(r["drop_id"], True) for r in LEDGER]


def test_last_n_drops_keep_the_catalog_base() -> None:
    got = select_window(LEDGER, WindowSettings(drops=2))
    # clicks of d3, d4 only; the catalog still folds from s2 on (d2's listings stay listed)
    assert _ids(got) == [("s2", False), ("d2", False), ("d3", True), ("d4", True)]


def test_days_are_counted_from_the_newest_drop() -> None:
    got = select_window(LEDGER, WindowSettings(days=5))  # newest: day 10, so days 5..10
    assert _ids(got) == [("s2", False), ("d2", False), ("d3", False), ("d4", True)]
    wide = select_window(LEDGER, WindowSettings(days=8))  # days 2..10: from s2 on
    assert _ids(wide) == [("s2", True), ("d2", True), ("d3", True), ("d4", True)]
    both = select_window(LEDGER, WindowSettings(days=8, drops=1))
    assert _ids(both) == [("s2", False), ("d2", False), ("d3", False), ("d4", True)]


def test_window_reaching_back_past_a_snapshot_starts_at_the_one_before() -> None:
    got = select_window(LEDGER, WindowSettings(drops=5))
    assert [d for d, _ in _ids(got)] == ["s1", "d1", "s2", "d2", "d3", "d4"]
    assert _ids(got)[0] == ("s1", False)


def test_empty_ledger_is_an_empty_window() -> None:
    assert select_window([], WindowSettings()) == []


def test_view_id_changes_with_a_drop_hash() -> None:
    a = [WindowDrop("s1", "snapshot", "h1", True)]
    b = [WindowDrop("s1", "snapshot", "h2", True)]
    assert view_id(a) != view_id(b) and view_id(a) == view_id(list(a))


def _catalog(ids: list[str], price: float, folder: str = "images") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": ids,
            "category": "c",
            "seller_id": "s",
            "title": [f"t{i}" for i in ids],
            "price": price,
            "image": [f"{folder}/{i}.jpg" for i in ids],
            "listed_at": pd.Timestamp(T0),
            "quality": 0.5,
            "sales": 1,
        }
    )


def _logs(prefix: str, items: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    q = pd.DataFrame(
        {
            "query_id": [f"{prefix}q"],
            "image": [f"photos/{prefix}.jpg"],
            "user_id": "u",
            "session_id": "s",
            "ts": pd.Timestamp(T0),
            "predicted_category": "c",
        }
    )
    imp = pd.DataFrame(
        {
            "event_id": [f"{prefix}e{k}" for k in range(len(items))],
            "query_id": f"{prefix}q",
            "session_id": "s",
            "item_id": items,
            "position": range(len(items)),
            "clicked": True,
            "click_order": pd.array(range(len(items)), dtype="Int64"),
            "ts": pd.Timestamp(T0),
        }
    )
    return q, imp


def test_merge_latest_row_wins_removed_gone_logs_joined() -> None:
    snap_q, snap_imp = _logs("a", ["i1", "i2", "i3"])  # all clicked, orders 0, 1, 2
    delta_q, delta_imp = _logs("b", ["i1", "i4"])
    parts = [
        (
            WindowDrop("snap", "snapshot", "h1", True),
            {
                CATALOG.name: _catalog(["i1", "i2", "i3"], 10.0),
                QUERIES.name: snap_q,
                IMPRESSIONS.name: snap_imp,
            },
        ),
        (
            WindowDrop("delta", "delta", "h2", True),
            {
                CATALOG.name: _catalog(["i1", "i4"], 7.5),  # i1 changed, i4 new
                QUERIES.name: delta_q,
                IMPRESSIONS.name: delta_imp,
                REMOVED.name: pd.DataFrame({"item_id": ["i2"]}),
            },
        ),
    ]
    view = merge_drops(parts)
    cat = view[CATALOG.name].set_index("item_id")
    assert sorted(cat.index) == ["i1", "i3", "i4"]  # i2 removed
    assert cat.loc["i1", "price"] == 7.5 and cat.loc["i1", "image"] == "delta/images/i1.jpg"
    assert cat.loc["i3", "price"] == 10.0 and cat.loc["i3", "image"] == "snap/images/i3.jpg"
    assert list(view[QUERIES.name]["query_id"]) == ["aq", "bq"]
    assert list(view[QUERIES.name]["image"]) == ["snap/photos/a.jpg", "delta/photos/b.jpg"]
    imp = view[IMPRESSIONS.name]
    assert "i2" not in set(imp["item_id"])  # an impression of a removed listing goes
    a = imp[imp["query_id"] == "aq"].sort_values("position")
    assert list(a["item_id"]) == ["i1", "i3"] and list(a["click_order"]) == [0, 1]  # renumbered
    assert len(imp[imp["query_id"] == "bq"]) == 2


def test_click_logs_outside_the_window_are_left_out() -> None:
    snap_q, snap_imp = _logs("a", ["i1"])
    delta_q, delta_imp = _logs("b", ["i1"])
    parts = [
        (
            WindowDrop("snap", "snapshot", None, False),
            {CATALOG.name: _catalog(["i1"], 1.0), QUERIES.name: snap_q, IMPRESSIONS.name: snap_imp},
        ),
        (
            WindowDrop("delta", "delta", None, True),
            {CATALOG.name: _catalog([], 1.0), QUERIES.name: delta_q, IMPRESSIONS.name: delta_imp},
        ),
    ]
    view = merge_drops(parts)
    assert list(view[QUERIES.name]["query_id"]) == ["bq"]
    assert list(view[CATALOG.name]["item_id"]) == ["i1"]  # the catalog still folds from snap

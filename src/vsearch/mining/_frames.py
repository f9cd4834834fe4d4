"""Input checks and column names shared by the mining modules.

Why: every mining step reads the same few impression columns; checking them once, with a message
that names what is missing, turns a ``KeyError`` deep inside a groupby into a clear bad-input
error (exit 2) at the CLI.
"""

from __future__ import annotations

import pandas as pd

from vsearch.errors import BadInput

#: The impression columns mining needs (a subset of ``contracts.IMPRESSIONS``).
IMPRESSION_COLUMNS = ("query_id", "session_id", "item_id", "position", "clicked", "click_order")
#: Optional: time spent on the clicked listing; null (unknown) when absent.
DWELL = "dwell_ms"


def check_impressions(impressions: pd.DataFrame) -> pd.DataFrame:
    """Return the mining columns of ``impressions``, one row per (query, item), clean types.

    ``dwell_ms`` is optional in the contract: when absent it is added as all-null (unknown).

    A (query, item) pair shown twice keeps its clicked row if it has one (else its lowest
    position), so one listing never yields both a positive and a negative for the same query.

    Raises:
        BadInput: a required column is missing or a position is negative.
    """
    missing = [c for c in IMPRESSION_COLUMNS if c not in impressions.columns]
    if missing:
        raise BadInput(
            f"impressions: missing column(s) {missing}; mining needs {list(IMPRESSION_COLUMNS)} "
            "(see vsearch.contracts.IMPRESSIONS)"
        )
    df = impressions.loc[:, list(IMPRESSION_COLUMNS)].copy()
    dwell = impressions[DWELL] if DWELL in impressions.columns else None
    df[DWELL] = pd.array([pd.NA] * len(df), dtype="Int64") if dwell is None else dwell
    df[DWELL] = df[DWELL].astype("Int64")
    if df["position"].isna().any() or (df["position"] < 0).any():
        raise BadInput(
            "impressions.position: must be an integer >= 0 on every row (validate first)"
        )
    df["position"] = df["position"].astype("int64")
    df["clicked"] = df["clicked"].fillna(False).astype(bool)
    df["click_order"] = df["click_order"].astype("Int64").where(df["clicked"])
    for col in ("query_id", "session_id", "item_id"):
        df[col] = df[col].astype(str)
    df = df.sort_values(
        ["query_id", "item_id", "clicked", "position"], ascending=[True, True, False, True]
    )
    best = df.drop_duplicates(["query_id", "item_id"], keep="first")
    return best.sort_values(["query_id", "position"], kind="stable").reset_index(drop=True)


def ranked_clicks(df: pd.DataFrame) -> pd.DataFrame:
    """The clicked rows of a checked frame with ``click_rank`` (0 = first click of the query).

    The first click is the lowest ``click_order``; rows with a missing order come last and ties
    are broken by position, so a log with partial click orders still has a first click.
    """
    clicks = df[df["clicked"]].copy()
    order = clicks["click_order"].astype("float").fillna(float("inf"))
    clicks = clicks.assign(_order=order).sort_values(
        ["query_id", "_order", "position"], kind="stable"
    )
    clicks["click_rank"] = clicks.groupby("query_id").cumcount().astype("Int64")
    return clicks.drop(columns="_order")

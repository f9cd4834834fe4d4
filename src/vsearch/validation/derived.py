"""Derived per-row columns that let plain GX expectations assert cross-row and cross-table rules.

Why: GX expectations look at one table and mostly one row at a time. Foreign keys over large id
sets (a million-value ``value_set`` would be stored in the suite and rendered into Data Docs),
per-query click sequences and image decoding are computed here in pandas, as one column per
rule, and :mod:`vsearch.validation.suites` asserts each column with a simple expectation. So
every rule is still a named GX expectation in the report and in Data Docs, with example rows.

Flags are null-safe: a row whose inputs are null passes the flag, because the null itself is
already reported by a not-null expectation (one problem, one failure).
"""

from __future__ import annotations

import pandas as pd

from vsearch.contracts import CATALOG, IMPRESSIONS, QUERIES
from vsearch.validation.images import ImageCheck

IMAGE_PATH_ERROR = "image_path_error"
IMAGE_FILE_ERROR = "image_file_error"
IMAGE_SIZE_ERROR = "image_size_error"
ITEM_IN_CATALOG = "item_id_in_catalog"
QUERY_IN_QUERIES = "query_id_in_queries"
ITEM_LISTED_AT = "item_listed_at"
QUERY_TS = "query_ts"
CLICK_ORDER_ONLY_IF_CLICKED = "click_order_only_if_clicked"
CLICK_ORDER_STARTS_AT_0 = "click_order_starts_at_0"
CLICK_ORDER_CONTIGUOUS = "click_order_contiguous"

DERIVED_COLUMNS = (
    IMAGE_PATH_ERROR,
    IMAGE_FILE_ERROR,
    IMAGE_SIZE_ERROR,
    ITEM_IN_CATALOG,
    QUERY_IN_QUERIES,
    ITEM_LISTED_AT,
    QUERY_TS,
    CLICK_ORDER_ONLY_IF_CLICKED,
    CLICK_ORDER_STARTS_AT_0,
    CLICK_ORDER_CONTIGUOUS,
)


def with_image_errors(frame: pd.DataFrame, checks: dict[str, ImageCheck]) -> pd.DataFrame:
    """Add ``image_path_error`` / ``image_file_error`` / ``image_size_error`` (text or null)
    from the image checks."""
    out = frame.copy()
    path_err = {p: c.path_error for p, c in checks.items()}
    out[IMAGE_PATH_ERROR] = pd.Series(out["image"].map(path_err), dtype=object)
    file_err = {p: c.file_error for p, c in checks.items()}
    size_err = {p: c.size_error for p, c in checks.items()}
    out[IMAGE_FILE_ERROR] = pd.Series(out["image"].map(file_err), dtype=object)
    out[IMAGE_SIZE_ERROR] = pd.Series(out["image"].map(size_err), dtype=object)
    return out


def _lookup(keys: pd.Series, table: pd.DataFrame, key: str, value: str) -> pd.Series:
    """``table[value]`` for each of ``keys`` (null where unknown; first row wins on duplicates)."""
    right = table[[key, value]].drop_duplicates(key)
    merged = keys.rename(key).to_frame().merge(right, how="left", on=key)  # keeps dtype if empty
    return pd.Series(merged[value].to_numpy(), index=keys.index, dtype=right[value].dtype)


def click_order_flags(imp: pd.DataFrame) -> pd.DataFrame:
    """The three click_order rules as boolean columns, one value per impression row.

    ``only_if_clicked``: click_order set exactly on clicked rows. Per query, over its clicked rows
    with a click_order: ``starts_at_0`` (the smallest is 0) and ``contiguous`` (the orders are
    ``m..m+n-1`` with no repeats). Every clicked row of an offending query is flagged, so the
    report's example rows show the whole broken sequence.
    """
    clicked = imp["clicked"].eq(True)  # null counts as not clicked (reported by not-null)
    order = imp["click_order"]
    has_order = order.notna()
    out = pd.DataFrame(index=imp.index)
    out[CLICK_ORDER_ONLY_IF_CLICKED] = ~(clicked ^ has_order) | imp["clicked"].isna()
    rows = clicked & has_order
    seq = pd.DataFrame({"query_id": imp.loc[rows, "query_id"], "order": order[rows]})
    grouped = seq.groupby("query_id", dropna=False)["order"]
    summary = pd.DataFrame(
        {
            "lo": grouped.min(),
            "hi": grouped.max(),
            "n": grouped.size(),
            "distinct": grouped.nunique(),
        }
    )
    starts_ok = summary["lo"] == 0
    contiguous_ok = (summary["distinct"] == summary["n"]) & (
        summary["hi"] - summary["lo"] + 1 == summary["n"]
    )
    out[CLICK_ORDER_STARTS_AT_0] = True
    out[CLICK_ORDER_CONTIGUOUS] = True
    if len(seq):
        qids = seq["query_id"]
        out.loc[rows, CLICK_ORDER_STARTS_AT_0] = qids.map(starts_ok).fillna(True).to_numpy(bool)
        out.loc[rows, CLICK_ORDER_CONTIGUOUS] = qids.map(contiguous_ok).fillna(True).to_numpy(bool)
    return out.astype(bool)


def impression_relations(
    imp: pd.DataFrame, catalog: pd.DataFrame, queries: pd.DataFrame
) -> pd.DataFrame:
    """Foreign-key flags and the joined timestamps the ordering checks compare against."""
    out = pd.DataFrame(index=imp.index)
    out[ITEM_IN_CATALOG] = imp["item_id"].isna() | imp["item_id"].isin(catalog["item_id"])
    out[QUERY_IN_QUERIES] = imp["query_id"].isna() | imp["query_id"].isin(queries["query_id"])
    out[ITEM_LISTED_AT] = _lookup(imp["item_id"], catalog, "item_id", "listed_at")
    out[QUERY_TS] = _lookup(imp["query_id"], queries, "query_id", "ts")
    return out


def content_frames(
    typed: dict[str, pd.DataFrame],
    images: dict[str, ImageCheck],
    known_catalog: pd.DataFrame | None = None,
) -> dict[str, pd.DataFrame]:
    """The frames the content suites run on: contract-typed columns plus derived columns.

    Args:
        typed: contract-cast ``catalog``, ``queries`` and ``impressions``.
        images: result of :func:`vsearch.validation.images.check_images` for all image paths.
        known_catalog: listings the project already has (a delta's impressions may show them);
            the drop's own rows win where both hold an item.
    """
    catalog, queries, imp = typed[CATALOG.name], typed[QUERIES.name], typed[IMPRESSIONS.name]
    listed = catalog
    if known_catalog is not None and len(known_catalog):
        listed = pd.concat(
            [catalog[["item_id", "listed_at"]], known_catalog[["item_id", "listed_at"]]],
            ignore_index=True,
        )
    return {
        CATALOG.name: with_image_errors(catalog, images),
        QUERIES.name: with_image_errors(queries, images),
        IMPRESSIONS.name: pd.concat(
            [imp, impression_relations(imp, listed, queries), click_order_flags(imp)], axis=1
        ),
    }

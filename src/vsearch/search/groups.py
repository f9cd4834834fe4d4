"""Which listings are the same product: the mined virtual IDs, as a catalog column.

Why virtual IDs and not embedding similarity: on the demo world, listings of *different*
look-alike products are as close in embedding space as listings of one product (pairs at
cosine >= 0.9 are the same product only 15% of the time), so grouping by similarity hides
other products under "more sellers". Co-clicks (docs/learning.md#mining) say which listings
shoppers treat as one product; the search pipeline groups listings that share a virtual ID
and, beyond that, only near-exact duplicates (``search.group_similarity``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from vsearch.index.release_data import PRODUCT_GROUP, groups_from_mining
from vsearch.mined import VIRTUAL_IDS_FILE, has_virtual_ids

log = logging.getLogger(__name__)

__all__ = ["PRODUCT_GROUP", "load_product_groups", "with_product_groups"]


def load_product_groups(mining_dir: Path) -> pd.DataFrame:
    """``item_id → product_group`` for listings in a virtual ID of two or more listings (the
    groups an index release carries: :func:`vsearch.index.release_data.groups_from_mining`).

    Raises:
        FileNotFoundError: the folder has no virtual IDs (run ``vsearch mine``).
    """
    return groups_from_mining(Path(mining_dir))


def with_product_groups(catalog: pd.DataFrame, mining_dir: Path | None) -> pd.DataFrame:
    """The catalog with a :data:`PRODUCT_GROUP` column (unchanged without mining outputs)."""
    if mining_dir is None or not has_virtual_ids(mining_dir):
        if mining_dir is not None:
            log.warning(
                "%s: no %s; results group near-duplicates only", mining_dir, VIRTUAL_IDS_FILE
            )
        return catalog
    groups = load_product_groups(Path(mining_dir))
    base = catalog.drop(columns=[PRODUCT_GROUP], errors="ignore")
    out = base.merge(groups, on="item_id", how="left")
    log.info(
        "product groups: %d listings in %d virtual IDs",
        groups.shape[0],
        groups[PRODUCT_GROUP].nunique(),
    )
    return out

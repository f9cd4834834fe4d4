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

from vsearch.mined import VIRTUAL_IDS_FILE, has_virtual_ids, read_virtual_ids

log = logging.getLogger(__name__)

PRODUCT_GROUP = "product_group"  # optional catalog column read by the search pipeline


def load_product_groups(mining_dir: Path) -> pd.DataFrame:
    """``item_id → product_group`` for listings in a virtual ID of two or more listings.

    Raises:
        FileNotFoundError: the folder has no virtual IDs (run ``vsearch mine``).
    """
    vids = read_virtual_ids(mining_dir, columns=["item_id", "virtual_id", "cluster_size"])
    multi = vids[vids["cluster_size"] >= 2]
    return pd.DataFrame(
        {"item_id": multi["item_id"].astype(str), PRODUCT_GROUP: multi["virtual_id"].astype(str)}
    )


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

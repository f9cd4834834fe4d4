"""The held-out split: which logged queries training never sees, so evaluation can trust them.

Why a hash of the query id: the same query is always on the same side, whatever the drop's row
order or size, so mining, training, evaluation, the release's load run and the service's sample
photos all recompute the same split from settings alone, with no file handed between them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from vsearch.settings import SplitSettings


def holdout_mask(
    query_ids: pd.Series | list[str], share: float, *, salt: str, buckets: int
) -> np.ndarray:
    """True for queries held out of training (about ``share`` of them), by a hash of the id."""
    if not 0 <= share < 1:
        raise ValueError(f"holdout share must be in [0, 1), got {share}")
    ids = [str(q) for q in query_ids]
    hashed = np.array(
        [int.from_bytes(hashlib.sha1(f"{salt}:{q}".encode()).digest()[:4], "big") for q in ids],
        dtype=np.int64,
    )
    return (hashed % buckets) < round(share * buckets)


def is_held_out(query_ids: pd.Series | list[str], split: SplitSettings) -> np.ndarray:
    """:func:`holdout_mask` with the project's split settings."""
    return holdout_mask(query_ids, split.holdout_share, salt=split.salt, buckets=split.hash_buckets)


def heldout_queries(drop: Path, split: SplitSettings, n: int | None = None) -> pd.DataFrame:
    """The drop's held-out query rows, ordered by query id, at most ``n`` of them.

    Raises:
        BadInput / ContractError: the drop has no readable queries table.
    """
    from vsearch.contracts import QUERIES, read_table

    queries = read_table(drop, QUERIES)
    held = queries[is_held_out(queries["query_id"], split)].sort_values("query_id")
    return held if n is None else held.head(n)

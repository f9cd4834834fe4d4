"""The held-out split: which logged queries training never sees, so evaluation can trust them.

Why by time (``split.method: time``, the default): a shop's data has no ground truth, so the
evaluation replays the **newest** ``split.eval_share`` of logged queries (by ``ts``, ties broken
by ``query_id``) with their clicks, as the future the model must serve; mining and training see
only the older queries. Every user of the split (mining, training, evaluation, the promotion's
load run, the service's sample photos) recomputes it from the queries table and the settings
alone, here, with no file handed between them.

``split.method: hash`` keeps the older split by a hash of the query id (the same query always
on the same side, whatever the table's order or size); it needs no timestamps.

Inside the training side, :func:`validation_mask` sets aside ``train.val_share`` of the
click-labelled queries that training never takes a gradient on (the run's own recall check),
by a hash of the query id and the project seed. Why a hash and not a random draw: the
evaluation recomputes the same queries from the ids alone and calibrates the category fusion
on them, which must be queries the classifier was not trained on.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from vsearch.settings import SplitSettings

TIME = "time"
HASH = "hash"
VALIDATION_SALT = "validation"  # the validation hash's salt (with the seed): not the held-out one
VALIDATION_BUCKETS = 10_000  # resolution of that hash (share steps of 0.0001)


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


def validation_mask(query_ids: pd.Series | list[str], share: float, seed: int) -> np.ndarray:
    """True for training-side queries kept out of the gradient (about ``share`` of them).

    The same id and seed always give the same answer, whatever the table's order or size, so
    training (:func:`vsearch.training.data.build_train_data`) and the evaluation's fusion
    calibration agree on which queries were never trained on.
    """
    return holdout_mask(
        query_ids, share, salt=f"{VALIDATION_SALT}:{seed}", buckets=VALIDATION_BUCKETS
    )


def newest_mask(queries: pd.DataFrame, share: float) -> np.ndarray:
    """True for the newest ``round(share * n)`` rows by ``ts``, ties broken by ``query_id``.

    Raises:
        ValueError: ``share`` outside ``[0, 1)`` or the frame lacks ``query_id`` / ``ts``.
    """
    if not 0 <= share < 1:
        raise ValueError(f"split.eval_share must be in [0, 1), got {share}")
    missing = {"query_id", "ts"} - set(queries.columns)
    if missing:
        raise ValueError(f"the time split needs the queries' {sorted(missing)} columns")
    n = len(queries)
    held = round(share * n)
    mask = np.zeros(n, dtype=bool)
    if held:
        ts = pd.to_datetime(queries["ts"], utc=True).to_numpy()
        ids = queries["query_id"].astype(str).to_numpy()
        order = np.lexsort((ids, ts))  # the last key sorts first: by ts, then by query_id
        mask[order[n - held :]] = True
    return mask


def is_held_out(queries: pd.DataFrame, split: SplitSettings) -> np.ndarray:
    """``bool[len(queries)]``: the rows of a queries table held out of mining and training."""
    if split.method == HASH:
        return holdout_mask(
            queries["query_id"], split.eval_share, salt=split.salt, buckets=split.hash_buckets
        )
    return newest_mask(queries, split.eval_share)


def held_out_ids(queries: pd.DataFrame, split: SplitSettings) -> set[str]:
    """The held-out query ids of a queries table (to filter impressions, clicks, pairs)."""
    return set(queries["query_id"].astype(str)[is_held_out(queries, split)])


def heldout_queries(drop: Path, split: SplitSettings, n: int | None = None) -> pd.DataFrame:
    """The drop's held-out query rows, ordered by query id, at most ``n`` of them.

    Raises:
        BadInput / ContractError: the drop has no readable queries table.
    """
    from vsearch.contracts import QUERIES, read_table

    queries = read_table(drop, QUERIES)
    held = queries[is_held_out(queries, split)].sort_values("query_id")
    return held if n is None else held.head(n)

"""Which category partitions a query searches, from the fused category probabilities.

Why: searching only the predicted category makes a search ~12x cheaper, but a wrong prediction
then returns nothing relevant. The paper's answer is to widen the search when the classifier is
unsure: here, runner-up categories are added (most probable first) until the searched
categories hold ``uncertain_confidence`` of the probability mass, at most ``max_extra`` of them.
A confident query (top probability above the threshold) pays for one partition only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def route(
    probs: np.ndarray,
    names: Sequence[str],
    uncertain_confidence: float,
    max_extra: int,
) -> list[list[str]]:
    """Categories to search per query.

    Args:
        probs: ``float[nq, n_categories]`` fused category probabilities (rows sum to ~1).
        names: category name of each column.
        uncertain_confidence: probability mass the searched categories must reach.
        max_extra: most runner-up categories added to the top one.

    Returns:
        For each query, the category names to search, most probable first.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != len(names):
        raise ValueError(
            f"probs must be float[nq, {len(names)}] (one column per name), got {probs.shape}"
        )
    if not 0 <= uncertain_confidence <= 1 or max_extra < 0:
        raise ValueError("uncertain_confidence must be in [0, 1] and max_extra >= 0")
    width = min(1 + max_extra, probs.shape[1])
    order = np.argsort(-probs, axis=1, kind="stable")[:, :width]
    mass = np.cumsum(np.take_along_axis(probs, order, axis=1), axis=1)
    # Column j is searched when the mass of the columns before it is still below the threshold.
    before = np.concatenate([np.zeros((len(probs), 1)), mass[:, :-1]], axis=1)
    use = before < uncertain_confidence
    use[:, 0] = True
    names_arr = np.asarray(names, dtype=object)
    return [names_arr[order[i, use[i]]].tolist() for i in range(len(probs))]

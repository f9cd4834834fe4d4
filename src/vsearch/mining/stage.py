"""The mining stage: read a validated drop, mine it, write the tables and a report.

Why files only here: :func:`~vsearch.mining.pipeline.mine` is pure (frames in, frames out) so
tests and flows call it directly; this module is the edge that knows about folders, and
:mod:`vsearch.mined` owns the output folder's names and writer. Output paths come from the
caller (``dvc.yaml`` is their only home for the pipeline).

Ground truth (``truth``, demo world only) is read after mining and used for the report's
quality section alone.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from vsearch.contracts import (
    IMPRESSIONS,
    ITEM_TRUTH,
    QUERIES,
    QUERY_TRUTH,
    ContractError,
    read_table,
)
from vsearch.errors import BadInput
from vsearch.mined import write_outputs
from vsearch.mining.pipeline import mine
from vsearch.settings import MiningSettings, SplitSettings
from vsearch.split import held_out_ids

log = logging.getLogger(__name__)


def read_truth(truth: Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The demo world's item truth and (when readable) query truth, for the report only.

    Raises:
        BadInput: ``truth`` is not a folder.
        ContractError: the item truth table is missing or does not fit its contract.
    """
    if not truth.is_dir():
        raise BadInput(f"--truth {truth}: not a folder (the demo world's ground-truth folder)")
    item_truth = read_table(truth, ITEM_TRUTH)
    try:
        query_truth = read_table(truth, QUERY_TRUTH)
    except ContractError:
        log.warning("%s: no readable query_truth table; pair quality is left out", truth)
        query_truth = None
    return item_truth, query_truth


def mine_drop(
    drop: Path,
    out: Path,
    settings: MiningSettings,
    *,
    seed: int = 0,
    truth: Path | None = None,
    split: SplitSettings | None = None,
) -> dict[str, Any]:
    """Mine ``drop``'s impressions into ``out``; the report, plus where the files went.

    ``split``: the evaluation's held-out queries (:mod:`vsearch.split`) are left out of
    mining too, so their clicks shape no virtual ID the model
    trains on: evaluation stays about queries the system never learned from.

    Raises:
        BadInput: the drop (or truth folder) is missing or its impressions do not fit the
            contract.
    """
    if not drop.is_dir():
        raise BadInput(f"--drop {drop}: not a folder (a validated drop or data/raw/<drop_id>)")
    try:
        impressions = read_table(drop, IMPRESSIONS)
        queries = read_table(drop, QUERIES) if split is not None else None
        item_truth, query_truth = read_truth(truth) if truth is not None else (None, None)
    except ContractError as exc:
        raise BadInput(f"{exc}; validate the drop first (vsearch validate)") from None
    if split is not None and queries is not None and split.eval_share > 0:
        held = impressions["query_id"].astype(str).isin(held_out_ids(queries, split)).to_numpy()
        log.info("leaving out %d impressions of held-out queries", int(held.sum()))
        impressions = impressions[~held]
    result = mine(impressions, settings, seed=seed, item_truth=item_truth, query_truth=query_truth)
    files = write_outputs(
        out,
        pairs=result.pairs,
        virtual_ids=result.virtual_ids,
        query_virtual_ids=result.query_virtual_ids,
        edges=result.edges,
        report=result.report,
    )
    counts = result.report["counts"]
    log.info(
        "mined %d positives, %d negatives, %d virtual IDs with 2+ items (%d items) into %s",
        counts["positives"],
        counts["negatives"],
        counts["virtual_ids_multi_item"],
        counts["items_in_multi_item_virtual_ids"],
        out,
    )
    return {**result.report, "files": files}

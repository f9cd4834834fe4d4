"""``vsearch mine``: read a validated drop, mine it, write the tables and a report.

Why files only here: :func:`~vsearch.mining.pipeline.mine` is pure (frames in, frames out) so
tests and flows call it directly; this module is the edge that knows about folders. Output
paths come from the command line (``dvc.yaml`` is their only home, DESIGN.md section 9).

Ground truth (``--truth``, demo world only) is read after mining and used for the report's
quality section alone.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd
import typer

from vsearch.cli_support import emit, get_settings, run_guarded
from vsearch.contracts import IMPRESSIONS, ITEM_TRUTH, QUERY_TRUTH, ContractError, read_table
from vsearch.errors import BadInput
from vsearch.mining.pipeline import MiningResult, mine
from vsearch.settings import MiningSettings, SplitSettings
from vsearch.split import is_held_out

log = logging.getLogger(__name__)

PAIRS_FILE = "pairs.parquet"
VIRTUAL_IDS_FILE = "virtual_ids.parquet"
QUERY_VIRTUAL_IDS_FILE = "query_virtual_ids.parquet"
EDGES_FILE = "coclick_edges.parquet"
REPORT_FILE = "mining_report.json"


def _read_truth(truth: Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    if not truth.is_dir():
        raise BadInput(f"--truth {truth}: not a folder (the demo world's ground-truth folder)")
    item_truth = read_table(truth, ITEM_TRUTH)
    try:
        query_truth = read_table(truth, QUERY_TRUTH)
    except ContractError:
        log.warning("%s: no readable query_truth table; pair quality is left out", truth)
        query_truth = None
    return item_truth, query_truth


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    """Write next to the target and rename, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def write_result(result: MiningResult, out: Path) -> dict[str, str]:
    """Write the mined tables and the report into ``out``; returns name -> path."""
    out.mkdir(parents=True, exist_ok=True)
    files = {
        PAIRS_FILE: result.pairs,
        VIRTUAL_IDS_FILE: result.virtual_ids,
        QUERY_VIRTUAL_IDS_FILE: result.query_virtual_ids,
        EDGES_FILE: result.edges,
    }
    written = {}
    for name, frame in files.items():
        _write_parquet(frame, out / name)
        written[name] = str(out / name)
    report_path = out / REPORT_FILE
    tmp = report_path.with_name(f".{REPORT_FILE}.tmp")
    tmp.write_text(json.dumps(result.report, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, report_path)
    written[REPORT_FILE] = str(report_path)
    return written


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
        item_truth, query_truth = _read_truth(truth) if truth is not None else (None, None)
    except ContractError as exc:
        raise BadInput(f"{exc}; validate the drop first (vsearch validate)") from None
    if split is not None and split.holdout_share > 0:
        held = is_held_out(impressions["query_id"], split)
        log.info("leaving out %d impressions of held-out queries", int(held.sum()))
        impressions = impressions[~held]
    result = mine(impressions, settings, seed=seed, item_truth=item_truth, query_truth=query_truth)
    files = write_result(result, out)
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


def mine_command(
    drop: Path = typer.Option(..., "--drop", help="validated drop folder (impressions table)"),
    out: Path = typer.Option(..., "--out", help="folder for pairs, virtual IDs and the report"),
    truth: Path | None = typer.Option(
        None, "--truth", help="demo ground truth: adds purity/coverage to the report only"
    ),
    json_out: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Mine clicks into weighted pairs and virtual IDs (co-click clusters)."""

    def body() -> None:
        settings = get_settings()
        report = mine_drop(
            drop,
            out,
            settings.mining,
            seed=settings.project.seed,
            truth=truth,
            split=settings.split,
        )
        if not json_out:  # people get the headline; the full report is in the file
            report = {k: report[k] for k in ("counts", "quality", "files") if k in report}
        emit(report, json_out)

    run_guarded(body)

"""``vsearch train``: a thin wrapper over :func:`vsearch.training.loop.train`.

Paths are arguments (``dvc.yaml`` is their only home); settings come from ``--params`` once.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from vsearch.cli_support import emit, get_settings, run_guarded
from vsearch.errors import BadInput


def train_command(
    drop: Path = typer.Option(..., "--drop", help="drop folder (catalog, queries, images)"),
    mining: Path | None = typer.Option(
        None, "--mining", help="mining outputs: virtual_ids, query_virtual_ids, pairs"
    ),
    out: Path = typer.Option(..., "--out", help="run folder: checkpoint, model/, embeddings/"),
    oracle_truth: Path | None = typer.Option(
        None,
        "--oracle-truth",
        help="ORACLE run: train with the demo truth's product ids (upper bound, never shipped)",
    ),
    resume: bool = typer.Option(False, "--resume", help="continue from OUT/checkpoint.pt"),
    time_budget: float | None = typer.Option(
        None,
        "--time-budget",
        help="seconds for loading + training (default train.time_budget_s); export follows",
    ),
    embeddings: bool = typer.Option(
        True, "--embeddings/--no-embeddings", help="write the catalog's EmbeddingSet to OUT"
    ),
    json_out: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Train the detector + embedding + hash network on a drop and its mined clicks."""

    def body() -> None:
        started = time.perf_counter()
        from vsearch.training.data import build_train_data, load_click_labels, oracle_labels
        from vsearch.training.loop import train

        settings = get_settings()
        if not drop.is_dir():
            raise BadInput(f"--drop {drop}: not a folder")
        if oracle_truth is not None:
            labels = oracle_labels(oracle_truth, mining)
        elif mining is None:
            raise BadInput("--mining DIR is required (or --oracle-truth DIR for an oracle run)")
        else:
            labels = load_click_labels(mining)
        t = settings.train
        data = build_train_data(
            drop,
            labels,
            settings.model.input_size,
            holdout_share=t.holdout_share,
            val_share=t.val_share,
            matte_threshold=t.augment.matte_threshold,
            seed=settings.project.seed,
            workers=t.decode_workers,
        )
        # The budget covers the whole command: loading the photos already spent part of it.
        budget = t.time_budget_s if time_budget is None else time_budget
        if budget is not None:
            budget = max(0.0, budget - (time.perf_counter() - started))
        result = train(
            settings,
            data,
            out,
            oracle=oracle_truth is not None,
            resume=resume,
            time_budget_s=budget,
            write_embeddings=embeddings,
        )
        payload = result.to_dict()
        payload.pop("epochs")
        emit(payload, json_out)

    run_guarded(body)

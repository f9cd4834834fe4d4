"""``vsearch train``: the Typer command over :func:`vsearch.training.stage.run_training`.

Paths are arguments (``dvc.yaml`` is their only home); settings come from ``--params`` once.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from vsearch.cli_support import emit, get_settings, run_guarded


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
    category_only: bool = typer.Option(
        False,
        "--category-only",
        help="BASELINE run: categories as the only identity (what clicks add over them)",
    ),
    baseline: bool = typer.Option(
        False,
        "--baseline",
        help="a comparison run (oracle, category-only): budget train.baseline_time_budget_s",
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
    mlflow: bool | None = typer.Option(
        None,
        "--mlflow/--no-mlflow",
        help="log the run to MLflow and register a click-trained model as challenger "
        "(default: registry.track)",
    ),
    warm_from: Path | None = typer.Option(
        None,
        "--warm-from",
        help="model folder to fine-tune (default: the registry champion when tracked and "
        "train.warm_start; the report's metrics.warm_start says what the run started from)",
    ),
    json_out: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Train the detector + embedding + hash network on a drop and its mined clicks."""

    def body() -> None:
        started = time.perf_counter()  # the budget counts the imports below too
        from vsearch.training.stage import run_training

        report = run_training(
            get_settings(),
            drop,
            mining,
            out,
            oracle_truth=oracle_truth,
            category_only=category_only,
            baseline=baseline,
            resume=resume,
            time_budget_s=time_budget,
            write_embeddings=embeddings,
            track=mlflow,
            started=started,
            warm_from=warm_from,
        )
        emit(report, json_out)

    run_guarded(body)

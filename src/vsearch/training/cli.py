"""``vsearch train``: a thin wrapper over :func:`vsearch.training.loop.train`.

Paths are arguments (``dvc.yaml`` is their only home); settings come from ``--params`` once.
"""

from __future__ import annotations

import contextlib
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
    json_out: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Train the detector + embedding + hash network on a drop and its mined clicks."""

    def body() -> None:
        started = time.perf_counter()
        from vsearch.training.data import (
            build_train_data,
            category_labels,
            load_click_labels,
            oracle_labels,
        )
        from vsearch.training.loop import train

        settings = get_settings()
        if not drop.is_dir():
            raise BadInput(f"--drop {drop}: not a folder")
        if oracle_truth is not None and category_only:
            raise BadInput("--oracle-truth and --category-only are two different runs; pick one")
        if oracle_truth is not None:
            labels = oracle_labels(oracle_truth, mining)
        elif mining is None:
            raise BadInput("--mining DIR is required (or --oracle-truth DIR for an oracle run)")
        elif category_only:
            labels = category_labels(drop, mining)
        else:
            labels = load_click_labels(mining)
        t = settings.train
        data = build_train_data(
            drop,
            labels,
            settings.model.input_size,
            split=settings.split,
            val_share=t.val_share,
            matte_threshold=t.augment.matte_threshold,
            seed=settings.project.seed,
            workers=t.decode_workers,
        )
        # The budget covers the whole command: loading the photos already spent part of it.
        default = t.time_budget_s
        if baseline and t.baseline_time_budget_s is not None:
            default = t.baseline_time_budget_s
        budget = default if time_budget is None else time_budget
        if budget is not None:
            budget = max(0.0, budget - (time.perf_counter() - started))
        track = settings.registry.track if mlflow is None else mlflow
        with contextlib.ExitStack() as stack:
            tracker = None
            if track:
                from vsearch.tracking.tracker import TrainingTracker

                inputs = {"drop": drop} | ({"mining": mining} if mining else {})
                if oracle_truth is not None:
                    inputs["truth"] = oracle_truth
                tracker = stack.enter_context(
                    TrainingTracker(
                        settings, label_source=labels.source, inputs=inputs, run_folder=out
                    )
                )
            result = train(
                settings,
                data,
                out,
                oracle=oracle_truth is not None,
                resume=resume,
                time_budget_s=budget,
                write_embeddings=embeddings,
                on_epoch=tracker.log_epoch if tracker else None,
            )
            payload = result.to_dict()
            payload.pop("epochs")
            if tracker is not None:
                payload["mlflow"] = tracker.log_model(result.model_dir, result.metrics).to_dict()
        emit(payload, json_out)

    run_guarded(body)

"""``vsearch promote`` and ``vsearch register``: thin wrappers over the registry module.

Imports of MLflow happen inside the command bodies so ``vsearch --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import typer

from vsearch.cli_support import emit, get_settings, run_guarded


def promote_command(
    version: str | None = typer.Option(
        None, "--version", help="version number; default the challenger, else the latest"
    ),
    json_out: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Set the champion alias by hand: only for the first model (then the promotion gate does)."""

    def body() -> None:
        from vsearch.registry.registry import ModelRegistry

        info = ModelRegistry.from_settings(get_settings()).promote(version)
        emit(info.to_dict(), json_out)

    run_guarded(body)


def register_command(
    run_folder: Path = typer.Argument(..., help="training run folder (history.json, model/)"),
    drop: Path | None = typer.Option(None, "--drop", help="the drop it was trained on"),
    mining: Path | None = typer.Option(None, "--mining", help="the mining outputs it used"),
    label_source: str | None = typer.Option(
        None, "--label-source", help="clicks | oracle | category (default: from history.json)"
    ),
    json_out: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Track a finished training run in MLflow and register its model as the challenger.

    For runs trained without a reachable tracking server; oracle and category-only runs are
    logged but not registered.
    """

    def body() -> None:
        from vsearch.registry.register import register_run

        inputs = {k: p for k, p in (("drop", drop), ("mining", mining)) if p is not None}
        tracked = register_run(get_settings(), run_folder, inputs=inputs, label_source=label_source)
        emit(tracked.to_dict(), json_out)

    run_guarded(body)

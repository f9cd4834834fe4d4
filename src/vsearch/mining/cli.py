"""``vsearch mine``: the Typer command over :func:`vsearch.mining.stage.mine_drop`.

Paths are arguments (``dvc.yaml`` is their only home); settings come from ``--params`` once.
"""

from __future__ import annotations

from pathlib import Path

import typer

from vsearch.cli_support import emit, get_settings, run_guarded


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
        from vsearch.mining.stage import mine_drop

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

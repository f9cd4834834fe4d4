"""``vsearch evaluate`` and ``vsearch evaluate-baselines``: thin wrappers over
:func:`vsearch.evaluation.stage.run_evaluation` and :func:`~vsearch.evaluation.stage.run_baselines`.

Paths are arguments (``dvc.yaml`` is their only home); settings come from ``--params`` once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from vsearch.cli_support import emit, get_settings, run_guarded
from vsearch.errors import BadInput


def parse_baselines(specs: list[str]) -> dict[str, Path]:
    """``["oracle=runs/oracle/model", ...]`` → ``{"oracle": Path(...)}``.

    Raises:
        BadInput: a spec without ``=``, an empty name or folder, or a name given twice.
    """
    out: dict[str, Path] = {}
    for spec in specs:
        name, sep, folder = spec.partition("=")
        name, folder = name.strip(), folder.strip()
        if not sep or not name or not folder:
            raise BadInput(
                f"--baseline {spec!r}: expected NAME=DIR (e.g. oracle=runs/oracle/model)"
            )
        if name in out:
            raise BadInput(f"--baseline {name} given twice")
        out[name] = Path(folder)
    return out


def evaluate_command(
    drop: Path = typer.Option(..., "--drop", help="drop folder (catalog, queries, images)"),
    truth: Path | None = typer.Option(
        None,
        "--truth",
        help="the drop's ground-truth folder (demo worlds); without truth tables in it, or "
        "without the option: click metrics only, the oracle baseline skipped",
    ),
    model: Path = typer.Option(..., "--model", help="model folder (or a training run folder)"),
    figures: Path | None = typer.Option(
        None,
        "--baseline-figures",
        help="the latest baseline figures (reports/baselines/metrics.json, `vsearch baselines`) "
        "shown beside the model with their date and data; missing: the report says so",
    ),
    out: Path = typer.Option(Path("reports"), "--out", help="writes metrics.json and plots/ here"),
    workdir: Path | None = typer.Option(
        None, "--workdir", help="scratch folder for the index build (default: tmp)"
    ),
    mining: Path | None = typer.Option(
        None,
        "--mining",
        help="mining outputs: virtual IDs group results by product; purity/coverage reported",
    ),
    mlflow: bool | None = typer.Option(
        None,
        "--mlflow/--no-mlflow",
        help="log the metrics and plots to the model's MLflow run (default: registry.track, "
        "when the model's run folder has mlflow_run.json)",
    ),
    json_out: bool = typer.Option(False, "--json", help="print the whole report as JSON"),
) -> None:
    """Evaluate the model on held-out queries through the search pipeline, beside the latest
    baseline figures.

    Click metrics always (held-out queries with a click); truth metrics too when the truth
    folder has ground truth. The baselines are measured apart (`vsearch evaluate-baselines`).
    """

    def body() -> None:
        from vsearch.evaluation.report import report_markdown
        from vsearch.evaluation.stage import run_evaluation

        report = run_evaluation(
            get_settings(),
            drop,
            truth,
            model,
            out,
            figures=figures,
            workdir=workdir,
            mining=mining,
        )
        settings = get_settings()
        if settings.registry.track if mlflow is None else mlflow:
            report["mlflow"] = _log_to_run(settings, model, out)
        if json_out:
            emit(report, as_json=True)
        else:
            typer.echo(report_markdown(report))

    run_guarded(body)


def evaluate_baselines_command(
    drop: Path = typer.Option(..., "--drop", help="drop folder (catalog, queries, images)"),
    truth: Path | None = typer.Option(
        None,
        "--truth",
        help="the drop's ground-truth folder; without truth: click metrics only, the oracle "
        "skipped with a note",
    ),
    architecture: Path = typer.Option(
        ...,
        "--architecture",
        help="model folder whose config and categories the built-in baselines copy "
        "(colour_histogram, untrained): the category-only run's",
    ),
    baseline: list[str] = typer.Option(
        [],
        "--baseline",
        help="NAME=DIR of a model trained elsewhere (category_only, oracle); repeatable",
    ),
    out: Path = typer.Option(
        Path("reports/baselines"), "--out", help="writes the figures file metrics.json here"
    ),
    workdir: Path | None = typer.Option(
        None, "--workdir", help="scratch folder for the per-system index builds (default: tmp)"
    ),
    mining: Path | None = typer.Option(
        None, "--mining", help="mining outputs: virtual IDs group results by product"
    ),
    json_out: bool = typer.Option(False, "--json", help="print the figures as JSON"),
) -> None:
    """Measure the comparison baselines (colour histogram, untrained, category-only, oracle) on
    the model's eval set: the figures every later model evaluation shows, dated."""

    def body() -> None:
        from vsearch.evaluation.figures import figures_markdown
        from vsearch.evaluation.stage import run_baselines

        figures = run_baselines(
            get_settings(),
            drop,
            truth,
            architecture,
            out,
            baselines=parse_baselines(baseline),
            workdir=workdir,
            mining=mining,
        )
        if json_out:
            emit(figures, as_json=True)
        else:
            typer.echo(figures_markdown(figures))

    run_guarded(body)


def _log_to_run(settings: Any, model: Path, out: Path) -> dict[str, Any] | None:
    """Log the report to the MLflow run that trained ``model`` (``None``: untracked model)."""
    from vsearch.evaluation.stage import log_to_training_run, training_run_folder

    run_folder = training_run_folder(model)
    logged = log_to_training_run(settings, run_folder, out)
    if logged is None:
        typer.echo(f"note: {run_folder} has no MLflow run record; metrics not logged", err=True)
    return logged

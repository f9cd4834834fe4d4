"""Prefect flow ``baselines``: the comparison baselines, off the nightly path.

What the model is compared with (docs/learning.md#baselines): the oracle (trained on true
product ids: the upper bound; skipped with a note without truth), the category-only model
(what clicks add), the colour histogram and the untrained net. Two of them are whole trainings,
so they run here, weekly (``flows/deploy.py``, ``schedule.baselines_cron``) or on demand
(``vsearch baselines``), never in the nightly: ``mine`` (cached when unchanged) →
``train_oracle`` → ``train_category`` → ``baselines`` (the figures file,
``reports/baselines/metrics.json``), all ``dvc.yaml`` stages through ``dvc repro``, so unchanged
inputs skip them.

Then, when the report on disk shows other figures than the ones just measured and the trained
model is up to date, ``evaluate`` runs again (``dvc repro --force``: the figures are read, not a
DVC dependency) so ``reports/metrics.json`` shows them too. The flow holds the project lock the
nightly holds: DVC and its repo lock allow one of them at a time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Cancelled

from flows.training import (
    FLOW_RUN_ENV,
    METRICS_FILE,
    latest_report,
    publish_metrics,
    run_stage,
    run_stages,
)
from vsearch.data import dvc
from vsearch.evaluation.figures import FIGURES_FILE, figures_markdown, read_figures
from vsearch.evaluation.report import FIGURES_KEY
from vsearch.local.deployment import nightly_lock
from vsearch.local.env import client_env
from vsearch.local.timing import row, timed
from vsearch.settings import load_settings

ARTIFACT_KEY = "baseline-figures"
STAGES = ("mine", "train_oracle", "train_category", "baselines")
EVALUATE = "evaluate"
TRAIN = "train"
FIGURES_DIR = "baselines"  # under project.reports_dir: the baselines stage's --out


@task(name="publish-figures", cache_policy=NO_CACHE)
def publish_figures(figures: dict[str, Any]) -> str:
    """The figures as a Prefect markdown artifact."""
    md = figures_markdown(figures)
    create_markdown_artifact(key=ARTIFACT_KEY, markdown=md, description="baseline figures")
    return md


def _report_shows(metrics_path: Path) -> str | None:
    """``measured_at`` of the figures the evaluation report on disk shows (``None``: none)."""
    if not metrics_path.is_file():
        return None
    return (json.loads(metrics_path.read_text()).get(FIGURES_KEY) or {}).get("measured_at")


@flow(name="baselines")
def baselines_flow(repo_root: str = ".") -> dict[str, Any] | Cancelled:
    """Measure the comparison baselines on the current window (``data/current.yaml``).

    Returns:
        ``{"stages": {stage: ran}, "timings": [rows], "figures_path", "figures",
        "flow_run_id", "evaluated": bool}``; a :class:`Cancelled` state when a nightly (or
        another baselines run) holds the project lock.
    """
    log = get_run_logger()
    root = Path(repo_root).resolve()
    lock = nightly_lock(root)
    if lock is None:
        msg = "a nightly or baselines run holds the project lock; this one did nothing"
        log.warning(msg)
        return Cancelled(message=msg)
    with lock:
        settings = load_settings(root / "params.yaml")
        env = {**client_env(settings.services), FLOW_RUN_ENV: str(flow_run.id)}
        ran, timings = run_stages(list(STAGES), root, env)
        reports = root / settings.project.reports_dir
        figures_path = reports / FIGURES_DIR / FIGURES_FILE
        figures = read_figures(figures_path)
        metrics_path = reports / METRICS_FILE
        model_current = not dvc.status([TRAIN], root)
        evaluated = False
        if figures is not None and _report_shows(metrics_path) != figures.get("measured_at"):
            if model_current and metrics_path.is_file():
                with timed(timings, EVALUATE) as entry:
                    evaluated = entry["ran"] = run_stage(EVALUATE, root, env, force=True)
                ran[EVALUATE] = evaluated
            else:
                log.info("the trained model is not up to date: the next nightly shows the figures")
                timings.append(row(EVALUATE, False, 0.0))
        if figures is not None:
            publish_figures(figures)
        metrics = latest_report(root, metrics_path, settings.evaluation)
        if metrics and evaluated:
            publish_metrics(metrics, ran)
    return {
        "stages": ran,
        "timings": timings,
        "figures_path": str(figures_path),
        "figures": figures,
        "evaluated": evaluated,
        "flow_run_id": str(flow_run.id),
    }

"""Prefect flow ``training``: mine → train → evaluate (the nightly path).

Thin wiring only: each task is one stage of ``dvc.yaml`` run through ``dvc repro
--single-item``, so the flow and a person typing ``dvc repro`` share one definition of every
stage (command, deps, params, outs) and one caching rule: a stage whose inputs did not change is
skipped by DVC and its outputs restored from the cache. The stages read the drop named by
``data/current.yaml`` (written by the ingest flow) and ``params.yaml`` at the repo root.

What the flow adds: run history and logs in the Prefect UI, the flow run id passed to the
training command (``VSEARCH_FLOW_RUN_ID``, recorded as a tag on the MLflow run), and a metrics
table as a Prefect artifact. Stages run one at a time: DVC holds a repo lock. No retries: a
failed training or evaluation is deterministic and retrying would only hide it.

The comparison baselines (oracle, category-only, colour histogram, untrained) are not on this
path: the ``baselines`` flow (``flows/baselines.py``, weekly) measures them, and ``evaluate``
shows their latest figures with the date and data they were measured on. The artifact re-reads
that figures file when it is made, so it shows the latest figures even when ``evaluate`` was
skipped. Each stage's wall time is returned (``timings``: stage, ran, seconds).

Drops without ground truth (every real shop's) run the same stages: ``evaluate`` reports click
metrics only.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from vsearch.data import dvc
from vsearch.evaluation.figures import attach_figures, read_figures
from vsearch.evaluation.report import FIGURES_KEY, report_markdown
from vsearch.local.env import client_env
from vsearch.local.timing import row
from vsearch.settings import EvaluationSettings, load_settings

ARTIFACT_KEY = "training-metrics"
STAGES = ("mine", "train", "evaluate")
METRICS_FILE = "metrics.json"
FLOW_RUN_ENV = "VSEARCH_FLOW_RUN_ID"


@task(name="dvc-stage", task_run_name="{stage}", cache_policy=NO_CACHE)
def run_stage(stage: str, repo_root: Path, env: dict[str, str], force: bool = False) -> bool:
    """``dvc repro --single-item STAGE``; the stage's output streams into the task log."""
    log = get_run_logger()
    ran = dvc.repro(stage, repo_root, env=env, on_line=log.info, force=force)
    log.info("stage %s %s", stage, "ran" if ran else "unchanged: skipped (outputs from cache)")
    return ran


@task(name="publish-metrics", cache_policy=NO_CACHE)
def publish_metrics(metrics: dict[str, Any], ran: dict[str, bool], key: str = ARTIFACT_KEY) -> str:
    """The evaluation table (model vs latest baseline figures vs targets) as a Prefect artifact."""
    skipped = [name for name, did in ran.items() if not did]
    md = report_markdown(metrics)
    if skipped:
        md += "\n\nUnchanged, skipped by DVC (outputs from its cache): " + ", ".join(skipped)
    create_markdown_artifact(key=key, markdown=md, description="evaluation metrics")
    return md


def latest_report(root: Path, metrics_path: Path, evaluation: EvaluationSettings) -> dict[str, Any]:
    """The evaluation report with the latest baseline figures attached ({} without a report).

    Why re-attach: ``evaluate`` may have been skipped (unchanged) after the baselines were
    measured again; the figures file it names is read now.
    """
    if not metrics_path.is_file():
        return {}
    metrics = json.loads(metrics_path.read_text())
    source = (metrics.get(FIGURES_KEY) or {}).get("source")
    if source is None or "model" not in metrics:
        return metrics
    path = Path(source) if Path(source).is_absolute() else root / source
    return attach_figures(metrics, read_figures(path), evaluation, source)


def run_stages(
    stages: list[str], root: Path, env: dict[str, str], force: tuple[str, ...] = ()
) -> tuple[dict[str, bool], list[dict[str, Any]]]:
    """Run ``stages`` in order; what ran and each one's wall time (seconds)."""
    ran: dict[str, bool] = {}
    timings: list[dict[str, Any]] = []
    for stage in stages:
        started = time.perf_counter()
        ran[stage] = run_stage(stage, root, env, force=stage in force)
        timings.append(row(stage, ran[stage], time.perf_counter() - started))
    return ran, timings


@flow(name="training")
def training_flow(repo_root: str = ".", stages: list[str] | None = None) -> dict[str, Any]:
    """Run the learning stages of ``dvc.yaml`` on the selected drop.

    Args:
        repo_root: the project (git + DVC) root holding ``dvc.yaml`` and ``params.yaml``.
        stages: a subset of :data:`STAGES` (default: all, in order).

    Returns:
        ``{"stages": {stage: ran}, "timings": [rows], "metrics_path", "flow_run_id",
        "report_md"}``.
    """
    root = Path(repo_root).resolve()
    settings = load_settings(root / "params.yaml")
    env = {**client_env(settings.services), FLOW_RUN_ENV: str(flow_run.id)}
    chosen = [s for s in STAGES if stages is None or s in stages]
    ran, timings = run_stages(chosen, root, env)
    metrics_path = root / settings.project.reports_dir / METRICS_FILE
    metrics = latest_report(root, metrics_path, settings.evaluation)
    md = publish_metrics(metrics, ran) if metrics else None
    return {
        "stages": ran,
        "timings": timings,
        "metrics_path": str(metrics_path),
        "flow_run_id": str(flow_run.id),
        "report_md": md,
    }

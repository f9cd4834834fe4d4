"""Prefect flow ``training``: mine → train (+ oracle and category-only baselines) → evaluate.

Thin wiring only: each task is one stage of ``dvc.yaml`` run through ``dvc repro
--single-item``, so the flow and a person typing ``dvc repro`` share one definition of every
stage (command, deps, params, outs) and one caching rule: a stage whose inputs did not change is
skipped by DVC and its outputs restored from the cache. The stages read the drop named by
``data/current.yaml`` (written by the ingest flow) and ``params.yaml`` at the repo root.

What the flow adds: run history and logs in the Prefect UI, the flow run id passed to the
training command (``VSEARCH_FLOW_RUN_ID``, recorded as a tag on the MLflow run), and a metrics
table as a Prefect artifact. Stages run one at a time: DVC holds a repo lock. No retries: a
failed training or evaluation is deterministic and retrying would only hide it.

Drops without ground truth (every real shop's) run the same stages: their truth folder holds
only ``no_truth.json``, so ``train_oracle`` records why it was skipped (``runs/oracle/
skipped.json``) and ``evaluate`` reports click metrics only, the oracle baseline skipped with
that note.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from vsearch.data import dvc
from vsearch.evaluation.report import report_markdown
from vsearch.local.env import client_env
from vsearch.settings import load_settings

ARTIFACT_KEY = "training-metrics"
STAGES = ("mine", "train", "train_oracle", "train_category", "evaluate")
METRICS_FILE = "metrics.json"
FLOW_RUN_ENV = "VSEARCH_FLOW_RUN_ID"


@task(name="dvc-stage", task_run_name="{stage}", cache_policy=NO_CACHE)
def run_stage(stage: str, repo_root: Path, env: dict[str, str]) -> bool:
    """``dvc repro --single-item STAGE``; the stage's output streams into the task log."""
    log = get_run_logger()
    ran = dvc.repro(stage, repo_root, env=env, on_line=log.info)
    log.info("stage %s %s", stage, "ran" if ran else "unchanged: skipped (outputs from cache)")
    return ran


@task(name="publish-metrics", cache_policy=NO_CACHE)
def publish_metrics(metrics: dict[str, Any], ran: dict[str, bool]) -> str:
    """The evaluation table (model vs baselines vs targets) as a Prefect markdown artifact."""
    skipped = [name for name, did in ran.items() if not did]
    md = report_markdown(metrics)
    if skipped:
        md += "\n\nUnchanged, skipped by DVC (outputs from its cache): " + ", ".join(skipped)
    create_markdown_artifact(key=ARTIFACT_KEY, markdown=md, description="evaluation metrics")
    return md


@flow(name="training")
def training_flow(repo_root: str = ".", stages: list[str] | None = None) -> dict[str, Any]:
    """Run the learning stages of ``dvc.yaml`` on the selected drop.

    Args:
        repo_root: the project (git + DVC) root holding ``dvc.yaml`` and ``params.yaml``.
        stages: a subset of :data:`STAGES` (default: all, in order).
    """
    root = Path(repo_root).resolve()
    settings = load_settings(root / "params.yaml")
    env = {**client_env(settings.services), FLOW_RUN_ENV: str(flow_run.id)}
    chosen = [s for s in STAGES if stages is None or s in stages]
    ran = {stage: run_stage(stage, root, env) for stage in chosen}
    metrics_path = root / settings.project.reports_dir / METRICS_FILE
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    if metrics:
        publish_metrics(metrics, ran)
    return {"stages": ran, "metrics_path": str(metrics_path), "flow_run_id": str(flow_run.id)}

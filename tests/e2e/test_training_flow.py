"""The training flow end to end: DVC stages mine → train (+ baselines) → evaluate, run by
Prefect on a real server, tracked in a real MLflow server; unchanged inputs skip every stage."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from vsearch.data.ingest import ingest_drop
from vsearch.settings import ServicesSettings, Settings, load_settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
LEARNING_STAGES = ["mine", "train", "train_oracle", "train_category", "evaluate"]


def _tiny(settings: Settings, services: ServicesSettings) -> Settings:
    """The project's settings at toy sizes (seconds per stage), on the session's servers."""
    s = settings.model_copy(deep=True)
    s.services = services
    s.project.threads = 1
    s.project.device = "cpu"
    s.index.bits = s.model.bits = 32
    s.model.widths = (8, 16, 24, 32)
    s.model.localizer_widths = (4, 8, 8, 16)
    s.model.input_size = s.model.frame_size = 64
    s.model.crop_size = 32
    s.model.embedding_dim = 16
    s.model.box_hidden = 8
    s.train.batch_size = 12
    s.train.epochs = 2
    s.train.steps_per_epoch = 2
    s.train.time_budget_s = None
    s.train.warmup_steps = 1
    s.train.decode_workers = 1
    s.train.augment.background_side = 96
    s.evaluation.examples = 2
    s.evaluation.latency_queries = 2
    s.evaluation.latency_warmup = 1
    s.evaluation.decode_workers = 1
    return s


def _scratch_project(root: Path, settings: Settings) -> None:
    """A data project like a fresh clone: the stage DAG, its code deps and params."""
    shutil.copy(REPO_ROOT / "dvc.yaml", root / "dvc.yaml")
    (root / "data").mkdir(exist_ok=True)  # dvc.yaml reads it: a clone has the committed one
    shutil.copy(REPO_ROOT / "data" / "current.yaml", root / "data" / "current.yaml")
    shutil.copytree(
        REPO_ROOT / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    (root / "params.yaml").write_text(yaml.safe_dump(settings.model_dump(mode="json")))
    subprocess.run(["git", "add", "-A"], cwd=root, check=True, capture_output=True)


def test_training_flow_runs_dvc_stages_and_registers_a_challenger(
    prefect_server: str,
    mlflow_server: str,
    live_services: ServicesSettings,
    tiny_world: tuple[Path, Path],
    scratch_repo: Path,
) -> None:
    import mlflow

    from flows.training import training_flow

    s = _tiny(load_settings(REPO_ROOT / "params.yaml"), live_services)
    _scratch_project(scratch_repo, s)
    drop, truth = tiny_world
    res = ingest_drop(drop, s, scratch_repo, truth=truth)
    current = yaml.safe_load((scratch_repo / "data" / "current.yaml").read_text())
    assert current["drop"] == res.drop_id

    first = training_flow(repo_root=str(scratch_repo))
    assert first["stages"] == dict.fromkeys(LEARNING_STAGES, True)
    metrics = json.loads(Path(first["metrics_path"]).read_text())
    assert {"identical_recall@10", "category_acc_fused", "box_iou_mean"} <= metrics.keys()
    assert "skipped" not in metrics["baselines"]["oracle"]
    assert "skipped" not in metrics["baselines"]["category_only"]
    assert 0 <= metrics["virtual_ids"]["purity"] <= 1

    # MLflow: the click-trained model is the challenger, tagged with data, code and flow run.
    run_info = json.loads((scratch_repo / "runs" / "train" / "mlflow_run.json").read_text())
    client = mlflow.MlflowClient(mlflow_server)
    name = s.registry.model_name or s.model.name
    challenger = client.get_model_version_by_alias(name, "challenger")
    assert challenger.version == str(run_info["version"])
    run = client.get_run(run_info["run_id"])
    assert run.data.tags["vsearch.prefect_flow_run_id"] == first["flow_run_id"]
    assert run.data.tags["vsearch.label_source"] == "clicks"
    assert any(k.startswith("vsearch.dvc.drop") for k in run.data.tags)
    assert "eval/identical_recall_at_10" in run.data.metrics  # evaluation logged to the run
    history = client.get_metric_history(run.info.run_id, "train/total")
    assert [m.step for m in history] == [0, 1]  # per epoch, live

    # Nothing changed: DVC skips every stage, no new model version appears.
    second = training_flow(repo_root=str(scratch_repo))
    assert second["stages"] == dict.fromkeys(LEARNING_STAGES, False)
    again = client.get_model_version_by_alias(name, "challenger")
    assert again.version == challenger.version

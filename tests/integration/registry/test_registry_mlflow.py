"""Tracking, registry and promotion against the session's real MLflow server (SQLite backend).

One tiny untrained network is logged once per module (logging exports it with torch.export,
~10 s); the tests then read that run and version back the way later stages do.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
import torch
import yaml
from typer.testing import CliRunner

from tests import kit
from vsearch.cli import app
from vsearch.data import dvc
from vsearch.errors import BadInput
from vsearch.model.export import fingerprint, load_model, save_model
from vsearch.model.net import VSearchNet
from vsearch.registry.registry import ModelRegistry
from vsearch.settings import Settings
from vsearch.tracking.tracker import (
    TrackedModel,
    TrackingUnavailable,
    TrainingTracker,
    log_evaluation,
    read_run_info,
)
from vsearch.trained import RUN_INFO_FILE

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GIT = ["git", "-c", "user.email=t@example.com", "-c", "user.name=test"]


def tiny_net() -> VSearchNet:
    return kit.tiny_net(seed=3).eval()


@dataclass
class World:
    settings: Settings
    repo: Path
    run: Path
    drop: Path
    mining: Path
    net: VSearchNet
    fingerprint: str
    tracked: TrackedModel
    registry: ModelRegistry

    @property
    def challenger(self) -> str:
        return self.settings.registry.challenger_alias

    @property
    def champion(self) -> str:
        return self.settings.registry.champion_alias


def _repo_with_drop(root: Path) -> tuple[Path, Path]:
    """A git + DVC repo with a committed, DVC-tracked drop and an untracked mining folder."""
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    dvc.run_dvc(["init", "-q"], root)
    drop = root / "data" / "raw" / "d1"
    drop.mkdir(parents=True)
    (drop / "catalog.csv").write_text("item_id,category\ni1,a\n")
    dvc.add(drop, root)
    mining = root / "runs" / "mining"
    mining.mkdir(parents=True)
    (mining / "virtual_ids.csv").write_text("item_id,virtual_id\ni1,0\n")
    subprocess.run([*GIT, "add", "-A"], cwd=root, check=True)
    subprocess.run([*GIT, "commit", "-qm", "drop"], cwd=root, check=True)
    return drop, mining


def _fake_run(run: Path, net: VSearchNet, label_source: str) -> str:
    """A training run folder as vsearch.training.loop writes it (model/ + history.json)."""
    info = save_model(net, run / "model", {"name": "tiny", "seed": 7})
    epochs = [
        {"epoch": e, "total": 3.0 - e, "proxy": 1.0 / (e + 1), "box_iou": 0.2 * e, "steps": 4}
        for e in range(3)
    ]
    metrics = {"steps": 12, "val_identical_recall@10": 0.25, "label_source": label_source}
    (run / "history.json").write_text(json.dumps({"epochs": epochs, "metrics": metrics}))
    return info["fingerprint"]


@pytest.fixture(scope="module")
def world(
    settings: Settings, mlflow_server: str, tmp_path_factory: pytest.TempPathFactory
) -> World:
    base = tmp_path_factory.mktemp("registry")
    s = settings.model_copy(deep=True)
    tag = uuid.uuid4().hex[:8]
    s.registry.model_name = f"test-net-{tag}"  # the session's server is shared: own names
    s.registry.experiment = f"test-registry-{tag}"
    repo = base / "repo"
    drop, mining = _repo_with_drop(repo)
    run = base / "run"
    net = tiny_net()
    fp = _fake_run(run, net, "clicks")
    history = json.loads((run / "history.json").read_text())
    with TrainingTracker(
        s,
        label_source="clicks",
        inputs={"drop": drop, "mining": mining},
        run_folder=run,
        tracking_uri=mlflow_server,
        flow_run_id="flow-run-123",
        repo_root=repo,
    ) as tracker:
        for row in history["epochs"]:
            tracker.log_epoch(row, row["epoch"])
        tracked = tracker.log_model(run / "model", history["metrics"])
    reg = ModelRegistry.from_settings(s, tracking_uri=mlflow_server)
    return World(s, repo, run, drop, mining, net, fp, tracked, reg)


def test_run_records_params_versions_and_epoch_metrics(world: World, mlflow_server: str) -> None:
    client = mlflow.MlflowClient(mlflow_server)
    run = client.get_run(world.tracked.run_id)
    assert run.info.status == "FINISHED"
    exp = client.get_experiment(run.info.experiment_id)
    assert exp.name == world.settings.registry.experiment
    params = run.data.params
    assert params["project.seed"] == str(world.settings.project.seed)
    assert params["model.backbone"] == world.settings.model.backbone
    assert "train.lr" in params and "train.augment.scale" in params
    tags = run.data.tags
    sha = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=world.repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert tags["mlflow.source.git.commit"] == sha
    assert tags["vsearch.git_dirty"] == "false"
    assert tags["vsearch.dvc.drop"] == dvc.content_hash(world.drop)
    assert tags["vsearch.dvc.drop.source"] == "dvc"
    assert tags["vsearch.dvc.mining.source"] == "computed"  # not versioned by DVC here
    assert tags["vsearch.label_source"] == "clicks"
    assert tags["vsearch.prefect_flow_run_id"] == "flow-run-123"
    history = client.get_metric_history(world.tracked.run_id, "train/total")
    assert sorted((m.step, m.value) for m in history) == [(0, 3.0), (1, 2.0), (2, 1.0)]
    assert run.data.metrics["run/val_identical_recall_at_10"] == 0.25
    assert "epoch" not in {k.split("/")[-1] for k in run.data.metrics}
    raw = {a.path for a in client.list_artifacts(world.tracked.run_id, "vsearch_model")}
    assert raw == {"vsearch_model/weights.pt", "vsearch_model/model.json"}


def test_version_is_registered_as_challenger_and_run_folder_knows_it(world: World) -> None:
    t = world.tracked
    assert t.version is not None and t.fingerprint == world.fingerprint
    info = world.registry.get_version(world.challenger)
    assert info.version == t.version and world.challenger in info.aliases
    assert info.run_id == t.run_id and info.fingerprint == world.fingerprint
    assert info.tags["run_id"] == t.run_id and info.tags["label_source"] == "clicks"
    assert read_run_info(world.run) == t.to_dict()
    assert (world.run / RUN_INFO_FILE).is_file()


def test_download_by_alias_loads_with_the_same_fingerprint(world: World, tmp_path: Path) -> None:
    folder = world.registry.download_model(world.challenger, tmp_path / "m")
    net, meta = load_model(folder)
    assert meta["fingerprint"] == world.fingerprint == fingerprint(net.state_dict())
    assert meta["version"] == world.tracked.version and meta["name"] == world.registry.model_name
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(net(x)["embedding"], world.net(x)["embedding"], atol=1e-6)
    again = world.registry.download_model(world.tracked.version or "", tmp_path / "m")
    assert again == folder and load_model(again)[1]["fingerprint"] == world.fingerprint


def test_download_refuses_a_model_whose_fingerprint_tag_differs(
    world: World, tmp_path: Path
) -> None:
    reg, version = world.registry, world.tracked.version or ""
    reg.client.set_model_version_tag(reg.model_name, version, "fingerprint", "0" * 64)
    try:
        with pytest.raises(BadInput, match="fingerprint"):
            reg.download_model(version, tmp_path / "m")
        assert not (tmp_path / "m").exists()  # nothing half-written is left behind
    finally:
        reg.client.set_model_version_tag(reg.model_name, version, "fingerprint", world.fingerprint)


def test_pytorch_flavor_loads_and_runs_a_batch_of_three(world: World, mlflow_server: str) -> None:
    mlflow.set_tracking_uri(mlflow_server)
    model = mlflow.pytorch.load_model(f"models:/{world.registry.model_name}@{world.challenger}")
    x = torch.rand(3, 3, 64, 64)  # logged with a batch-2 example: the batch stays dynamic
    boxes, _, probs, emb, _ = model(x)
    assert boxes.shape == (3, 4) and probs.shape == (3, 2) and emb.shape == (3, 16)
    with torch.no_grad():
        ref = world.net.encode(x)
    assert torch.allclose(emb, ref["embedding"], atol=1e-5)


def test_evaluation_is_logged_into_the_training_run(
    world: World, mlflow_server: str, tmp_path: Path
) -> None:
    report = {
        "identical_recall@10": 0.42,
        "model": {"identical_recall@10": 0.42, "category_acc_fused": 0.9, "box_iou_mean": None},
        "baselines": {"oracle": {"identical_recall@10": 0.6}, "colour": {"skipped": "no"}},
        "targets": {"identical_recall@10": {"target": 0.8, "value": 0.42, "met": False}},
        "warnings": ["none"],
    }
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(report))
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "recall_at_k.png").write_bytes((world.run / "history.json").read_bytes())
    run_id = read_run_info(world.run)["run_id"]
    logged = log_evaluation(
        run_id, path, plots, settings=world.settings, tracking_uri=mlflow_server
    )
    assert logged["eval/identical_recall_at_10"] == 0.42
    client = mlflow.MlflowClient(mlflow_server)
    metrics = client.get_run(run_id).data.metrics
    assert metrics["eval/baselines/oracle/identical_recall_at_10"] == 0.6
    assert metrics["eval/targets/identical_recall_at_10/met"] == 0.0
    arts = {a.path for a in client.list_artifacts(run_id, "evaluation")}
    assert arts == {"evaluation/metrics.json", "evaluation/plots"}
    assert world.registry.evaluation_report(world.challenger) == report  # exact names survive
    with pytest.raises(BadInput, match="not found"):
        log_evaluation("0" * 32, path, None, settings=world.settings, tracking_uri=mlflow_server)


def _params_file(world: World, tmp_path: Path) -> Path:
    """A params file naming this module's model (every other key at its default)."""
    out = tmp_path / "params.yaml"
    out.write_text(yaml.safe_dump({"registry": {"model_name": world.registry.model_name}}))
    return out


def test_first_promote_sets_champion_then_only_the_gate_may_move_it(
    world: World, tmp_path: Path, mlflow_server: str
) -> None:
    reg = world.registry
    params = _params_file(world, tmp_path)
    cli = CliRunner()
    first = cli.invoke(app, ["--params", str(params), "promote", "--json"])
    assert first.exit_code == 0, first.output
    promoted = json.loads(first.stdout)
    assert promoted["version"] == world.tracked.version and world.champion in promoted["aliases"]
    assert reg.get_version(world.champion).tags["promoted_by"] == "vsearch promote"
    # A second version (same logged model) cannot be promoted by hand...
    mlflow.set_tracking_uri(mlflow_server)
    mv = mlflow.register_model(world.tracked.model_uri, reg.model_name)
    second = cli.invoke(app, ["--params", str(params), "promote", "--version", str(mv.version)])
    assert second.exit_code == 2 and "promotion gate" in second.output
    with pytest.raises(BadInput, match="promotion gate"):
        reg.promote(str(mv.version))
    assert reg.promote(world.tracked.version).version == world.tracked.version  # no-op: is it
    # ...only by the promotion gate, which records the index release and the previous champion.
    now = reg.set_champion(str(mv.version), "20261126-120000")
    assert world.champion in now.aliases and now.tags["index_release"] == "20261126-120000"
    assert now.tags["previous_champion"] == world.tracked.version
    assert reg.aliases()[world.challenger] == world.tracked.version  # the challenger stays put


def test_unknown_version_and_unreachable_server_say_what_to_do(
    world: World, port_factory: Callable[[], int]
) -> None:
    with pytest.raises(BadInput, match="no version or alias 'nope'"):
        world.registry.get_version("nope")
    dead = f"http://127.0.0.1:{port_factory()}"
    with pytest.raises(TrackingUnavailable, match="vsearch services up"):
        TrainingTracker(world.settings, label_source="clicks", tracking_uri=dead).__enter__()
    with pytest.raises(TrackingUnavailable, match="vsearch services up"):
        ModelRegistry.from_settings(world.settings, tracking_uri=dead)


def test_register_cli_logs_a_baseline_run_without_registering_it(
    world: World, tmp_path: Path, mlflow_server: str
) -> None:
    run = tmp_path / "oracle"
    _fake_run(run, tiny_net(), "oracle")
    params = _params_file(world, tmp_path)
    before = world.registry.latest()
    res = CliRunner().invoke(
        app, ["--params", str(params), "register", str(run), "--drop", str(world.drop), "--json"]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)  # stdout carries only the JSON (MLflow's banner goes to stderr)
    assert out["version"] is None and out["label_source"] == "oracle"
    assert world.registry.latest() == before  # baselines never become versions
    tags = mlflow.MlflowClient(mlflow_server).get_run(out["run_id"]).data.tags
    assert tags["vsearch.label_source"] == "oracle" and "vsearch.dvc.drop" in tags


def test_a_failing_training_block_marks_the_run_failed(world: World, mlflow_server: str) -> None:
    tracker = TrainingTracker(
        world.settings, label_source="category", tracking_uri=mlflow_server, repo_root=world.repo
    )
    with pytest.raises(RuntimeError, match="boom"), tracker:
        tracker.log_epoch({"total": 1.5}, 0)
        raise RuntimeError("boom")
    run = mlflow.MlflowClient(mlflow_server).get_run(str(tracker.run_id))
    assert run.info.status == "FAILED" and run.data.metrics["train/total"] == 1.5
    assert mlflow.active_run() is None  # nothing left active for the next run

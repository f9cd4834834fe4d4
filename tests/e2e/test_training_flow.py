"""The offline loop end to end on real servers (Prefect, MLflow, BentoML, DVC):

training flow (DVC stages mine → train → evaluate; unchanged inputs skip every stage) →
release flow (a failed gate changes nothing; a passed one ships: CURRENT, champion; no baseline
figures exist yet: the gates never need them) → the baselines flow (``vsearch baselines``:
oracle, category-only, colour histogram, untrained, off the nightly path) and the report then
showing its figures, dated → a corrupted click-log drop fed to the nightly flow stops before
training, champion and serving index unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.kit import scratch_project, tiny_project
from vsearch.data.ingest import ingest_drop
from vsearch.errors import GateFailed
from vsearch.index.release import current_version
from vsearch.settings import ServicesSettings, load_settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
LEARNING_STAGES = ["mine", "train", "evaluate"]
BASELINE_STAGES = ["mine", "train_oracle", "train_category", "baselines"]
FIGURES = Path("reports") / "baselines" / "metrics.json"


def _set_floor(root: Path, metric: str, floor: float) -> None:
    params = root / "params.yaml"
    raw = yaml.safe_load(params.read_text())
    raw["registry"]["gates"]["floors"][metric] = floor
    params.write_text(yaml.safe_dump(raw))


def test_offline_loop_trains_gates_ships_and_stops_on_bad_clicks(
    prefect_server: str,
    mlflow_server: str,
    live_services: ServicesSettings,
    tiny_world: tuple[Path, Path],
    scratch_repo: Path,
    copy_drop,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mlflow
    from typer.testing import CliRunner

    from flows.training import training_flow
    from vsearch.cli import app

    s = tiny_project(load_settings(REPO_ROOT / "params.yaml"), live_services)
    scratch_project(scratch_repo, s)
    drop, truth = tiny_world
    res = ingest_drop(drop, s, scratch_repo, truth=truth)
    current = yaml.safe_load((scratch_repo / "data" / "current.yaml").read_text())
    assert current["drop"] == res.drop_id

    first = training_flow(repo_root=str(scratch_repo))
    assert first["stages"] == dict.fromkeys(LEARNING_STAGES, True)
    assert [r["stage"] for r in first["timings"]] == LEARNING_STAGES
    assert all(r["ran"] and r["seconds"] > 0 for r in first["timings"])
    metrics = json.loads(Path(first["metrics_path"]).read_text())
    assert {"identical_recall@10", "category_acc_fused", "box_iou_mean"} <= metrics.keys()
    # the baselines are not on this path: none trained, none measured, the report says so
    assert not (scratch_repo / "runs" / "oracle").exists()
    assert not (scratch_repo / "runs" / "category").exists()
    assert metrics["baselines"] == {} and metrics["seconds"].keys() == {"model"}
    assert "vsearch baselines" in metrics["baseline_figures"]["note"]
    assert 0 <= metrics["virtual_ids"]["purity"] <= 1
    first_fingerprint = metrics["model_fingerprint"]

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
    assert [r["ran"] for r in second["timings"]] == [False] * len(LEARNING_STAGES)
    again = client.get_model_version_by_alias(name, "challenger")
    assert again.version == challenger.version

    # Promotion gate, fail path: a floor the challenger cannot reach → nothing changes.
    from flows.nightly import nightly_flow
    from flows.promotion import promotion_flow

    indexes = scratch_repo / s.project.indexes_dir
    _set_floor(scratch_repo, "identical_recall@10", 0.999)
    with pytest.raises(GateFailed, match="identical_recall@10"):
        promotion_flow(repo_root=str(scratch_repo))
    assert current_version(indexes) is None
    assert "champion" not in client.get_registered_model(name).aliases

    # Pass path: floors it clears → CURRENT and champion move together.
    _set_floor(scratch_repo, "identical_recall@10", 0.0)
    _set_floor(scratch_repo, "category_acc_fused", 0.0)
    shipped = promotion_flow(repo_root=str(scratch_repo))
    assert shipped["shipped"] and current_version(indexes) == shipped["release"]
    champion = client.get_model_version_by_alias(name, "champion")
    assert champion.version == challenger.version
    assert champion.tags["index_release"] == shipped["release"]
    assert float(champion.tags["service_p95_ms"]) > 0  # the load run's p95 is kept for later
    again = promotion_flow(repo_root=str(scratch_repo))  # same model, same index: nothing to do
    assert again["shipped"] is False

    # The baselines, off the nightly path (`vsearch baselines`): both trainings, the four
    # figures on the model's eval set, then the model's report shows them, dated.
    monkeypatch.chdir(scratch_repo)
    out = CliRunner().invoke(app, ["--params", "params.yaml", "baselines"])
    assert out.exit_code == 0, out.output
    assert "baseline figures measured" in out.output and "time per stage" in out.output
    figures = json.loads((scratch_repo / FIGURES).read_text())
    for baseline in ("oracle", "category_only", "colour_histogram", "untrained"):
        assert 0 <= figures["baselines"][baseline]["identical_recall@10"] <= 1, baseline
    assert figures["data"]["drops"][0]["dvc_hash"] == res.dvc_hash
    metrics = json.loads(Path(first["metrics_path"]).read_text())  # evaluate ran again
    assert metrics["baselines"] == figures["baselines"]
    assert metrics["baseline_figures"]["measured_at"] == figures["measured_at"]
    assert metrics["baseline_figures"]["same_data"] is True
    assert "model_vs_oracle_identical_recall@10" in metrics["ratios"]
    assert metrics["model_fingerprint"] == first_fingerprint  # the same model, re-evaluated
    from flows.baselines import baselines_flow

    unchanged = baselines_flow(repo_root=str(scratch_repo))
    assert unchanged["stages"] == dict.fromkeys(BASELINE_STAGES, False)
    assert unchanged["evaluated"] is False
    third = training_flow(repo_root=str(scratch_repo))  # still nothing to do for the nightly
    assert third["stages"] == dict.fromkeys(LEARNING_STAGES, False)
    assert figures["measured_at"] in third["report_md"]
    assert promotion_flow(repo_root=str(scratch_repo))["shipped"] is False

    # A corrupted click log stops the nightly before training; nothing downstream moves.
    versions = len(client.search_model_versions(f"name='{name}'"))
    bad = copy_drop(drop, tmp_path / "bad")
    imp = pd.read_parquet(bad / "impressions.parquet")
    imp.loc[1, "event_id"] = imp.loc[0, "event_id"]  # a duplicated event id: critical
    imp.to_parquet(bad / "impressions.parquet", index=False)
    (bad / "drop.json").write_text(json.dumps({"drop_id": "bad-clicks"}))
    with pytest.raises(GateFailed, match="event_id"):
        nightly_flow(drop=str(bad), repo_root=str(scratch_repo))
    assert client.get_model_version_by_alias(name, "champion").version == champion.version
    assert len(client.search_model_versions(f"name='{name}'")) == versions
    assert current_version(indexes) == shipped["release"]
    assert yaml.safe_load((scratch_repo / "data" / "current.yaml").read_text())["drop"] == (
        res.drop_id
    )

    # Two nights never run at once: with the project lock held, a night does nothing.
    from prefect.exceptions import CancelledRun

    from vsearch.local.deployment import nightly_lock

    with nightly_lock(scratch_repo):
        try:
            out = nightly_flow(repo_root=str(scratch_repo))
        except CancelledRun:
            out = None
    assert not isinstance(out, dict)
    with nightly_lock(scratch_repo):  # nor a night and the baselines
        try:
            out = baselines_flow(repo_root=str(scratch_repo))
        except CancelledRun:
            out = None
    assert not isinstance(out, dict)
    assert nightly_lock(scratch_repo) is not None  # released again

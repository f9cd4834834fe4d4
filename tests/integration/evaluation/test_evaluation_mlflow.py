"""The evaluation stage's MLflow step: report, plots and loss curves land in the model's run."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest

from vsearch.evaluation.plots import LOSS_CURVES_FILE
from vsearch.evaluation.report import METRICS_FILE, PLOTS_DIR
from vsearch.evaluation.stage import log_to_training_run, plot_training_history
from vsearch.settings import Settings
from vsearch.trained import HISTORY_FILE, MODEL_DIR, RUN_INFO_FILE

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.integration
def test_evaluation_and_loss_curves_are_logged_into_the_training_run(
    mlflow_server: str, tmp_path: Path
) -> None:
    client = mlflow.MlflowClient(mlflow_server)
    experiment = client.create_experiment(f"eval-{tmp_path.name}")
    run_id = client.create_run(experiment).info.run_id
    run = tmp_path / "runs" / "train"
    (run / MODEL_DIR).mkdir(parents=True)
    (run / RUN_INFO_FILE).write_text(json.dumps({"run_id": run_id, "version": "3"}))
    epochs = [{"epoch": e, "total": 2.0 - e, "lr": 0.01} for e in range(3)]
    (run / HISTORY_FILE).write_text(json.dumps({"epochs": epochs, "metrics": {}}))
    out = tmp_path / "reports"
    (out / PLOTS_DIR).mkdir(parents=True)
    (out / METRICS_FILE).write_text(json.dumps({"identical_recall@10": 0.5, "model": {}}))
    (out / PLOTS_DIR / "recall_at_k.png").write_bytes(PNG)
    assert plot_training_history(run, out / LOSS_CURVES_FILE) is not None

    logged = log_to_training_run(Settings(), run, out)

    assert logged == {"run_id": run_id, "version": "3"}
    assert [a.path for a in client.list_artifacts(run_id, "plots")] == ["plots/loss_curves.png"]
    evaluation = {a.path for a in client.list_artifacts(run_id, "evaluation/plots")}
    assert evaluation == {"evaluation/plots/recall_at_k.png"}
    assert client.get_run(run_id).data.metrics["eval/identical_recall_at_10"] == 0.5

"""Fail-closed gates against the session's real MLflow server: the champion reference.

A champion alias pointing at a version whose model cannot be downloaded fails the gate with the
reason; a registry that does not answer fails it too; only a model with no champion alias at all
is the first release.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import mlflow
import pytest

from tests.conftest import free_port
from vsearch.registry.promotion import Candidate, champion_reference, run_gates
from vsearch.settings import Settings

pytestmark = pytest.mark.integration

LATENCY = {"p95_ms": 40.0, "requests": 6}


def _settings(settings: Settings) -> Settings:
    s = settings.model_copy(deep=True)
    s.registry.model_name = f"test-champion-{uuid.uuid4().hex[:8]}"  # a shared server: own name
    s.registry.connect_timeout_s = 2.0
    return s


def _cand(tmp_path: Path) -> Candidate:
    metrics = {
        "model": {"click_recall@10": 0.9, "click_category_acc_fused": 0.9},
        "eval_set": {"id": "shop:time0.2:40q:0123456789ab", "truth": False},
        "inputs": {"drop": str(tmp_path / "drop"), "truth": None, "mining": None},
    }
    return Candidate(tmp_path / "run", "f" * 64, "999", metrics)


def test_a_champion_that_cannot_be_loaded_fails_the_gate(
    settings: Settings, mlflow_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    s = _settings(settings)
    name = s.registry.model_name
    client = mlflow.MlflowClient(mlflow_server, registry_uri=mlflow_server)
    exp = client.create_experiment(f"{name}-exp")
    run = client.create_run(exp)  # a run without any model artifact
    client.set_terminated(run.info.run_id)
    client.create_registered_model(name)
    mv = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)
    client.set_registered_model_alias(name, s.registry.champion_alias, mv.version)

    cand = _cand(tmp_path)
    ref = champion_reference(s, tmp_path, cand)
    assert ref.version == str(mv.version) and not ref.first_release
    assert ref.error is not None and "could not be loaded or re-scored" in ref.error
    rep = run_gates(s, cand, LATENCY, ref)
    assert not rep.passed  # the challenger's own figures clear every floor: the champion fails
    assert [g.name for g in rep.failures] == ["champion re-scored"]
    assert f"champion version {mv.version}" in rep.summary()

    refused = champion_reference(s, tmp_path, cand, first_release=True)  # --first-release
    assert refused.error is not None and "not a first release" in refused.error


def test_no_champion_is_the_first_release_an_unreachable_registry_is_not(
    settings: Settings, mlflow_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    s = _settings(settings)  # nothing registered under this name
    cand = _cand(tmp_path)
    ref = champion_reference(s, tmp_path, cand)
    assert ref.first_release and ref.error is None
    assert run_gates(s, cand, LATENCY, ref).passed
    required = champion_reference(s, tmp_path, cand, first_release=False)
    assert required.error is not None and "--first-release" in required.error

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")  # nobody there
    dead = champion_reference(s, tmp_path, cand)
    assert not dead.first_release and dead.error is not None
    assert "could not be read" in dead.error
    assert not run_gates(s, cand, LATENCY, dead).passed

"""The champion's model folder for a warm start: downloaded and checked, or the reason why not."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import kit
from vsearch.model.export import save_model
from vsearch.settings import Settings
from vsearch.tracking.champion import download_champion
from vsearch.tracking.tracker import RAW_MODEL_ARTIFACT, TAG_FINGERPRINT

pytestmark = pytest.mark.unit


def _register(uri: str, settings: Settings, model: Path, fingerprint: str, store: Path) -> str:
    """Log ``model`` as a run's raw model folder (artifacts in ``store``) and register it."""
    import mlflow

    client = mlflow.MlflowClient(uri)
    exp = client.create_experiment("warm", artifact_location=store.as_uri())
    run = client.create_run(exp)
    client.log_artifacts(run.info.run_id, str(model), RAW_MODEL_ARTIFACT)
    client.set_terminated(run.info.run_id)
    name = settings.registry.model_name or settings.model.name
    client.create_registered_model(name)
    mv = client.create_model_version(
        name, f"runs:/{run.info.run_id}/{RAW_MODEL_ARTIFACT}", run.info.run_id
    )
    client.set_model_version_tag(name, mv.version, TAG_FINGERPRINT, fingerprint)
    return str(mv.version)


def test_the_champion_downloads_or_the_reason_is_given(tmp_path: Path) -> None:
    settings = kit.tiny_settings()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    import mlflow

    info = save_model(kit.tiny_net(), tmp_path / "model")
    name = settings.registry.model_name or settings.model.name
    got = download_champion(settings, tmp_path / "dl", tracking_uri=uri)
    assert isinstance(got, str) and "no champion" in got  # nothing registered yet
    version = _register(uri, settings, tmp_path / "model", info["fingerprint"], tmp_path / "store")
    got = download_champion(settings, tmp_path / "dl", tracking_uri=uri)
    assert isinstance(got, str) and "no champion" in got  # registered, no alias yet
    client = mlflow.MlflowClient(uri)
    client.set_registered_model_alias(name, settings.registry.champion_alias, version)
    folder, label = download_champion(settings, tmp_path / "dl", tracking_uri=uri)
    assert label == f"champion v{version}" and (folder / "model.json").is_file()
    client.set_model_version_tag(name, version, TAG_FINGERPRINT, "0" * 64)
    got = download_champion(settings, tmp_path / "dl2", tracking_uri=uri)
    assert isinstance(got, str) and "differs from its tag" in got

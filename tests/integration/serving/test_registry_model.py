"""The service's model comes from the MLflow registry's ``champion`` alias when MLflow is
configured: resolved to a version, downloaded, verified, and refused when it does not match the
release (real MLflow server of the session; the serving state is exercised in-process)."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest

from vsearch.registry.register import register_run
from vsearch.registry.registry import ModelRegistry
from vsearch.serving.state import ReloadRefused, ServingState
from vsearch.settings import load_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _run_folder(model_dir: Path, run: Path) -> Path:
    """A finished training run as the training loop writes it (model/ + history.json)."""
    shutil.copytree(model_dir, run / "model")
    history = {"epochs": [{"epoch": 0, "total": 1.0}], "metrics": {"label_source": "clicks"}}
    (run / "history.json").write_text(json.dumps(history))
    return run


def test_champion_from_the_registry_is_served(
    served_project, mlflow_server: str, tmp_path: Path
) -> None:
    s = load_settings(served_project.params)
    tag = uuid.uuid4().hex[:8]
    s.registry.model_name = f"serve-net-{tag}"  # the session's server is shared: own names
    s.registry.experiment = f"serve-{tag}"
    s.serving.model_source = "registry"
    s.serving.model_cache_dir = tmp_path / "cache"
    s.serving.admin_dir = tmp_path / "admin"

    state = ServingState(s, served_project.root)
    with pytest.raises(ReloadRefused, match="champion"):
        state.reload()  # nothing registered yet: refused, nothing served
    assert state.current is None

    run = _run_folder(served_project.root / "models" / "b", tmp_path / "run_b")
    tracked = register_run(s, run, tracking_uri=mlflow_server, repo_root=tmp_path)
    registry = ModelRegistry.from_settings(s, tracking_uri=mlflow_server)
    registry.promote(tracked.version)
    with pytest.raises(ReloadRefused, match="fingerprint"):
        state.reload()  # model B's champion does not match release v0001 (built by model A)

    s.registry.model_name = f"serve-net-a-{tag}"
    run = _run_folder(served_project.root / "models" / "a", tmp_path / "run_a")
    tracked = register_run(s, run, tracking_uri=mlflow_server, repo_root=tmp_path)
    registry = ModelRegistry.from_settings(s, tracking_uri=mlflow_server)
    registry.promote(tracked.version)
    served = state.reload()
    try:
        assert served.model["source"] == "registry" and served.model["alias"] == "champion"
        assert served.model["version"] == tracked.version
        assert served.model["fingerprint"] == served_project.fingerprints["a"]
        assert (s.serving.model_cache_dir / f"{s.registry.model_name}-v{tracked.version}").is_dir()
        assert served.release == "v0001"
    finally:
        state.close()

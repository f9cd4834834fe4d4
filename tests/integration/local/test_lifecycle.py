"""`vsearch services down` then `up` brings back every process down stopped: the nightly
deployment's runner (else its schedule stops firing, "Not Ready" in the Prefect UI) and the
search service; `services status` names a registered schedule that has no runner. Against the
session's real Prefect and MLflow servers (named as external, so down/up leave them alone)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from vsearch.local.deployment import deploy_up
from vsearch.local.lifecycle import (
    DEPLOYMENT,
    NO_RUNNER,
    SERVICE,
    down_all,
    read_stopped,
    status_all,
    up_all,
)
from vsearch.local.processes import pid_alive
from vsearch.local.service import ensure_detached
from vsearch.settings import Settings, load_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def project(
    tmp_path: Path, params_path: Path, mlflow_server: str, prefect_server: str, port_factory
) -> Iterator[tuple[Settings, Path]]:
    root = tmp_path / "project"
    (root / "indexes").mkdir(parents=True)  # no release: the service starts, not ready
    raw = yaml.safe_load(params_path.read_text())
    raw["services"]["state_dir"] = str(tmp_path / "state")
    raw["services"]["mlflow"]["tracking_uri"] = mlflow_server
    raw["services"]["prefect"]["api_url"] = prefect_server
    raw["serving"].update(port=port_factory(), stop_grace_s=10)
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    settings = load_settings(root / "params.yaml")
    saved = dict(os.environ)  # apply_client_env exports into this process
    try:
        yield settings, root
    finally:
        down_all(settings)
        os.environ.clear()
        os.environ.update(saved)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_up_brings_back_what_down_stopped_and_status_names_a_schedule_without_runner(
    project: tuple[Settings, Path],
) -> None:
    settings, root = project
    s = settings.serving
    dep = deploy_up(settings, root, Path("params.yaml"), settings.schedule.register_timeout_s)
    svc = ensure_detached(
        s.host, s.port, Path("params.yaml"), root, settings.services.state_dir, 120.0
    )
    url = f"http://{s.host}:{s.port}/livez"
    assert _answers(url)
    before = status_all(settings)
    assert before["problems"] == [] and before[DEPLOYMENT]["registered"] is True
    assert before[DEPLOYMENT]["runner_pid"] == dep["pid"]
    assert before[SERVICE]["pid"] == svc["pid"]

    stopped = down_all(settings)
    assert DEPLOYMENT in stopped and SERVICE in stopped
    assert not pid_alive(dep["pid"]) and not _answers(url)
    assert sorted(read_stopped(settings)) == sorted([DEPLOYMENT, SERVICE])
    after_down = status_all(settings)
    assert after_down[DEPLOYMENT]["registered"] is True  # the Prefect server still has it ...
    assert after_down["problems"] == [NO_RUNNER]  # ... and nothing runs it: said, not silent
    assert after_down["stopped"] == sorted([DEPLOYMENT, SERVICE])

    back = up_all(settings)
    runner = back[DEPLOYMENT]["pid"]
    assert runner != dep["pid"] and pid_alive(runner)
    assert back[SERVICE]["reused"] is False and _answers(url)
    assert read_stopped(settings) == {}
    final = status_all(settings)
    assert final["problems"] == [] and final[DEPLOYMENT]["runner_pid"] == runner
    deadline = time.monotonic() + 90  # a guard, not a timing assertion: the runner polls
    while status_all(settings)[DEPLOYMENT].get("prefect_status") != "READY":
        assert time.monotonic() < deadline, status_all(settings)[DEPLOYMENT]
        time.sleep(1)
